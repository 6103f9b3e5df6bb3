package httpapi

import (
	"net/http"
	"strings"
)

// idempotencyHeader is the request header of the IETF draft "The
// Idempotency-Key HTTP Header Field" (draft-ietf-httpapi-idempotency-key-header).
const idempotencyHeader = "Idempotency-Key"

// headerKey reads POST /v1/jobs's Idempotency-Key header into req: the
// same key as the body's idempotency_key, so giving both is allowed only
// when they agree. The draft makes the value a Structured Field string
// ("key", RFC 8941); a bare value, as many clients send, is taken as it is.
func headerKey(r *http.Request, req *enqueueRequest) error {
	values := r.Header.Values(idempotencyHeader)
	if len(values) == 0 {
		return nil
	}
	if len(values) > 1 {
		return invalid(idempotencyHeader, "give the header once")
	}
	key, ok := parseKey(values[0])
	switch {
	case !ok:
		return invalid(idempotencyHeader, `must be a string such as "8e03978e-40d5-43e8"`)
	case key == "":
		return invalid(idempotencyHeader, "must not be empty")
	case req.IdempotencyKey != nil && *req.IdempotencyKey != key:
		return invalid(idempotencyHeader, "differs from the body's idempotency_key; give one, or both the same")
	}
	req.IdempotencyKey = &key
	return nil
}

// parseKey decodes an RFC 8941 sf-string (quoted, with \" and \\ the only
// escapes, printable ASCII), or takes an unquoted value as it is.
func parseKey(v string) (string, bool) {
	v = strings.Trim(v, " \t")
	if !strings.HasPrefix(v, `"`) {
		return v, !strings.Contains(v, `"`)
	}
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && i+1 < len(v) && (v[i+1] == '"' || v[i+1] == '\\'):
			i++
			b.WriteByte(v[i])
		case c == '"':
			return b.String(), i == len(v)-1
		case c < 0x20 || c > 0x7e || c == '\\':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return "", false // no closing quote
}

// noHeaderKey refuses the Idempotency-Key header where it would name more
// than one job (a batch, a workflow): each job there has its own key, or
// none, and a client must not believe the request as a whole is protected.
func noHeaderKey(r *http.Request) error {
	if r.Header.Get(idempotencyHeader) == "" {
		return nil
	}
	return invalid(idempotencyHeader, "applies to POST /v1/jobs only; give each job its own idempotency_key")
}
