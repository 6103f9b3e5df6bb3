package apiext

import (
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// strict are the options of Unmarshal. Most are the JSON v2 defaults,
// spelled out because each closes a parser differential (issue 17): with
// encoding/json, {"type":"noop","TYPE":"fail"} was taken as "fail", a key
// spelled with the Kelvin sign (U+212A) matched one spelled with k, and
// the lone surrogates \ud800, \udbff and \udfff all became U+FFFD, so
// three idempotency keys were one.
var strict = json.JoinOptions(
	json.RejectUnknownMembers(true),       // a field we do not know is a mistake, not ignored
	json.MatchCaseInsensitiveNames(false), // "TYPE" is not "type", and K (U+212A) is not k
	jsontext.AllowDuplicateNames(false),   // a key twice in one object, payloads included, after exact matching
	jsontext.AllowInvalidUTF8(false),      // invalid UTF-8 and lone surrogate escapes
)

// Unmarshal decodes data, which must be exactly one JSON value, into v
// strictly: keys match field names exactly (case-sensitively); unknown
// fields, a key twice in one object, invalid UTF-8, lone UTF-16 surrogate
// escapes and trailing data are refused; so no two different bodies can
// decode to one value. It is the rule of Request.Decode and of every /v1
// route, for code that has the bytes (an application's tests).
//
// Its errors are the JSON v2 package's (github.com/go-json-experiment/json):
// *json.SemanticError and *jsontext.SyntacticError, with the JSON pointer of
// the value at fault.
func Unmarshal(data []byte, v any) error {
	return json.Unmarshal(data, v, strict)
}
