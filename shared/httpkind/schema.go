package httpkind

import (
	"sort"
	"strings"

	"github.com/invopop/jsonschema"
)

// JSONSchemaExtend adds to the payload's published schema the checks of
// Validate that JSON Schema can say, so that the API, which validates
// against the catalog's schemas, refuses such payloads at enqueue (422
// naming the field): the URL's scheme and credentials, header names and
// values, the base64 body's alphabet and size, the timeout's form.
// Validate stays the full check (sizes of the JSON body, the timeout's
// bound) for Go clients and the worker.
func (Request) JSONSchemaExtend(s *jsonschema.Schema) {
	prop := func(name string) *jsonschema.Schema {
		p, _ := s.Properties.Get(name)
		return p
	}
	for name, d := range descriptions {
		if p := prop(name); p != nil {
			p.Description = d
		}
	}
	if p := prop("url"); p != nil {
		// http(s)://, an authority without '@' (no credentials), no
		// spaces or control characters.
		p.Pattern = `^` + anyCase("http") + `[Ss]?://[^/?#@\s]+([/?#]\S*)?$`
	}
	if p := prop("headers"); p != nil {
		p.MaxProperties = ptr(uint64(MaxHeaders))
		p.PropertyNames = &jsonschema.Schema{
			Pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
			Not:     &jsonschema.Schema{Pattern: "^(" + strings.Join(refusedNames(), "|") + ")$"},
		}
		p.AdditionalProperties = &jsonschema.Schema{Type: "string", Pattern: `^[^\r\n\x00]*$`}
	}
	if p := prop("body_base64"); p != nil {
		p.Pattern = `^[A-Za-z0-9+/]*={0,2}$`
		p.MaxLength = ptr(uint64((MaxBodyBytes + 2) / 3 * 4))
	}
	if p := prop("timeout"); p != nil {
		p.Pattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	}
}

// refusedNames are the header names a payload may not set, as
// case-insensitive patterns (JSON Schema has no flag for it).
func refusedNames() []string {
	var out []string
	for name := range hopByHop {
		out = append(out, anyCase(name))
	}
	for name := range signing {
		out = append(out, anyCase(name))
	}
	out = append(out, anyCase("proxy-")+".*")
	sort.Strings(out) // the same schema on every start
	return out
}

// descriptions are the fields' descriptions in the catalog (struct tags
// cannot hold commas).
var descriptions = map[string]string{
	"url":              "http or https URL without credentials, at most 2 KiB; its destination must be allowed by SPOOL_HTTP_ALLOWED_HOSTS",
	"method":           "default POST",
	"headers":          "request headers; no CR, LF or NUL in values, no hop-by-hop names (Connection, Host, Proxy-*, Transfer-Encoding…) and no webhook-* (Spool signs); the values of Authorization, Cookie and SPOOL_HTTP_SECRET_HEADERS are sealed by the API (SPOOL_HTTP_HEADER_KEY) and stored and shown only sealed",
	"body":             "any JSON value, sent as the request body (application/json); at most 1 MiB",
	"body_base64":      "instead of body: the body's bytes in standard base64, at most 1 MiB decoded",
	"timeout":          "the request's timeout as a Go duration (10s, 2m); default 30s, at most 5m",
	"follow_redirects": "follow up to 10 redirects, each to an allowed destination (http or https, never https down to http); default false: a 3xx fails the job",
}

// anyCase is a pattern matching s in any letter case.
func anyCase(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 'a' && c <= 'z' {
			b.WriteString("[" + strings.ToUpper(string(c)) + string(c) + "]")
		} else {
			b.WriteRune(c)
		}
	}
	return b.String()
}

func ptr[T any](v T) *T { return &v }
