package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// envelopeBytes is what a single-job body may hold beyond its payload: the
// other fields are short, so a payload at the limit still fits.
const envelopeBytes = 64 << 10

// decodeBody reads r's JSON body into v strictly (no unknown fields, one
// value, valid UTF-8, no key twice in an object), reading at most limit
// bytes.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if err := checkContentType(r); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return decodeError(err)
	}
	// encoding/json would turn invalid bytes into U+FFFD, so two different
	// idempotency keys could become one: refuse instead.
	if !utf8.Valid(body) {
		return &apiError{Status: http.StatusBadRequest, Message: "request body is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	// A second value, or garbage after the first, is as malformed as a
	// missing brace.
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err == nil {
			return &apiError{Status: http.StatusBadRequest, Message: "request body must hold one JSON value"}
		}
		return decodeError(err)
	}
	// encoding/json keeps the last of duplicate keys; a proxy in front may
	// have checked the first. Ambiguous input is refused.
	if key, ok := duplicateKey(body); ok {
		return &apiError{Status: http.StatusBadRequest, Field: clip(key), Message: fmt.Sprintf("key %q appears twice in one object", clip(key))}
	}
	return nil
}

// duplicateKey returns a key that appears twice in one object of b, which
// must be one valid JSON value (its depth already bounded by the decoder).
func duplicateKey(b []byte) (string, bool) {
	type level struct {
		keys    map[string]bool // nil in an array
		wantKey bool            // the next string in this object is a key
	}
	var stack []*level
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false // io.EOF: b was decoded before, so nothing else
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.keys != nil && top.wantKey {
			if top.keys[s] {
				return s, true
			}
			top.keys[s], top.wantKey = true, false
			continue
		}
		// Any other token is a value, or the start or end of one: in an
		// object, a key comes next.
		if top != nil && top.keys != nil {
			top.wantKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &level{keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &level{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

// decodeElement decodes one batch element strictly.
func decodeElement(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
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
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return &apiError{Status: http.StatusUnsupportedMediaType,
			Message: fmt.Sprintf("Content-Type must be application/json, got %q", ct)}
	}
	return nil
}

// decodeError maps a decoding failure to its status: too large 413, the
// rest (syntax, wrong type, unknown field) 400.
func decodeError(err error) error {
	var (
		tooBig  *http.MaxBytesError
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	bad := func(msg, field string) error {
		return &apiError{Status: http.StatusBadRequest, Message: msg, Field: field}
	}
	switch {
	case errors.As(err, &tooBig):
		return &apiError{Status: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)}
	case errors.Is(err, io.EOF):
		return bad("request body is empty; want a JSON object", "")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return bad("malformed JSON: "+strings.TrimPrefix(err.Error(), "json: "), "")
	case errors.As(err, &typeErr):
		return bad(fmt.Sprintf("%s must be %s, not %s", fieldName(typeErr.Field), jsonKind(typeErr.Type.Kind().String()), clip(typeErr.Value)), typeErr.Field)
	}
	// encoding/json has no typed error for an unknown field; its message is
	// the only signal, and a stable one since Go 1.10.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = clip(strings.Trim(name, `"`))
		return bad(fmt.Sprintf("unknown field %q", name), name)
	}
	return bad("invalid request body: "+clip(strings.TrimPrefix(err.Error(), "json: ")), "")
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
