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
)

// envelopeBytes is what a single-job body may hold beyond its payload: the
// other fields are short, so a payload at the limit still fits.
const envelopeBytes = 64 << 10

// decodeBody reads r's JSON body into v strictly (no unknown fields, one
// value), reading at most limit bytes.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if err := checkContentType(r); err != nil {
		return err
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	// A second value, or garbage after the first, is as malformed as a
	// missing brace; reading on also enforces the limit on trailing bytes.
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err == nil {
			return &apiError{Status: http.StatusBadRequest, Message: "request body must hold one JSON value"}
		}
		return decodeError(err)
	}
	return nil
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
		return bad(fmt.Sprintf("%s must be %s, not %s", fieldName(typeErr.Field), jsonKind(typeErr.Type.Kind().String()), typeErr.Value), typeErr.Field)
	}
	// encoding/json has no typed error for an unknown field; its message is
	// the only signal, and a stable one since Go 1.10.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return bad(fmt.Sprintf("unknown field %q", name), name)
	}
	return bad("invalid request body: "+strings.TrimPrefix(err.Error(), "json: "), "")
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
