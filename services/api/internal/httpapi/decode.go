package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/spoolq/spool/shared/apiext"
)

// envelopeBytes is what a single-job body may hold beyond its payload: the
// other fields are short, so a payload at the limit still fits.
const envelopeBytes = 64 << 10

// decodeBody reads r's JSON body into v strictly (apiext.Unmarshal: exact,
// case-sensitive keys, no unknown fields, no key twice in an object, valid
// UTF-8 with no lone surrogate escapes, one value), reading at most limit
// bytes.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if err := checkContentType(r); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return decodeError(err)
	}
	if len(bytes.Trim(body, jsonSpace)) == 0 {
		return &apiError{Status: http.StatusBadRequest, Message: "request body is empty; want a JSON object"}
	}
	if err := apiext.Unmarshal(body, v); err != nil {
		return decodeError(err)
	}
	return nil
}

// jsonSpace is the whitespace JSON allows between tokens.
const jsonSpace = " \t\r\n"

// decodeElement decodes one batch element strictly.
func decodeElement(raw json.RawMessage, v any) error {
	if err := apiext.Unmarshal(raw, v); err != nil {
		return decodeError(err)
	}
	return nil
}

// checkContentType requires application/json (any parameters) on a body;
// an empty body is left to the decoder, which reports it as missing.
func checkContentType(r *http.Request) error {
	if r.ContentLength == 0 {
		return nil
	}
	return requireJSON(r)
}

// requireJSON refuses a request whose Content-Type is not application/json
// (any parameters) with 415.
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return &apiError{Status: http.StatusUnsupportedMediaType,
			Message: fmt.Sprintf("Content-Type must be application/json, got %q", clip(ct))}
	}
	return nil
}

// decodeError maps a decoding failure to its status: too large 413, the
// rest (syntax, duplicate key, invalid text, wrong type, unknown field)
// 400, naming the field at fault where there is one.
func decodeError(err error) error {
	var (
		tooBig   *http.MaxBytesError
		syntax   *jsontext.SyntacticError
		semantic *jsonv2.SemanticError
	)
	bad := func(msg, field string) error {
		return &apiError{Status: http.StatusBadRequest, Message: clipTo(msg, maxMessage), Field: field}
	}
	switch {
	case errors.As(err, &tooBig):
		return &apiError{Status: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)}
	case errors.Is(err, jsontext.ErrDuplicateName) && errors.As(err, &syntax):
		// Keys are compared exactly, after unescaping: "\u0074ype" is "type".
		key := clip(syntax.JSONPointer.LastToken())
		return bad(fmt.Sprintf("key %q appears twice in one object", key), fieldPath(syntax.JSONPointer))
	case errors.As(err, &syntax):
		// Invalid UTF-8 and lone surrogate escapes are syntax errors too:
		// text is never mangled into U+FFFD.
		msg := "malformed JSON: " + syntax.Err.Error()
		if f := fieldPath(syntax.JSONPointer); f != "" {
			msg += " at " + clip(f)
		}
		return bad(msg, clip(fieldPath(syntax.JSONPointer)))
	case errors.Is(err, jsonv2.ErrUnknownName) && errors.As(err, &semantic):
		name := clip(fieldPath(semantic.JSONPointer))
		return bad(fmt.Sprintf("unknown field %q (field names are case-sensitive)", name), name)
	case errors.As(err, &semantic):
		field := clip(fieldPath(semantic.JSONPointer))
		if semantic.GoType == nil || semantic.JSONKind == jsontext.KindInvalid {
			msg := "invalid request body"
			if semantic.Err != nil {
				msg += ": " + semantic.Err.Error()
			}
			return bad(msg, field)
		}
		return bad(fmt.Sprintf("%s must be %s, not %s", fieldName(field), jsonKind(semantic.GoType.Kind().String()), jsonValue(semantic)), field)
	}
	return bad("invalid request body: "+err.Error(), "")
}

// fieldPath spells a JSON pointer as the API names fields: /steps/1/type
// is steps[1].type. The request types have no maps, so a number is an
// index.
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// jsonValue describes the value a type error was about: the number itself,
// or its kind.
func jsonValue(e *jsonv2.SemanticError) string {
	switch e.JSONKind {
	case '0':
		if len(e.JSONValue) > 0 {
			return "number " + clip(string(e.JSONValue))
		}
		return "a number"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 'n':
		return "null"
	}
	return "JSON " + e.JSONKind.String()
}

// How much of a client's input an error quotes back: a value, or a whole
// message from another package that may quote one.
const (
	maxEcho    = 64
	maxMessage = 320
)

// clip shortens a client's value for quoting in an error, so a huge value
// is not echoed back in full.
func clip(s string) string { return clipTo(s, maxEcho) }

// clipTo shortens s to at most n bytes, on a rune boundary, marking the cut.
func clipTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func join(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	}
	return prefix + "." + field
}

func fieldName(f string) string {
	if f == "" {
		return "request body"
	}
	return f
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "true or false"
	case kind == "slice":
		return "an array"
	case kind == "struct", kind == "map":
		return "an object"
	}
	return "a " + kind
}
