// Package openapitest checks HTTP traffic against the API's OpenAPI
// document with libopenapi-validator, so that the tests that exercise the
// API also keep the document true.
package openapitest

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"

	"github.com/spoolq/spool/services/api/internal/openapi"
)

// Validator is the document's validator, built once per test binary.
var Validator = sync.OnceValues(func() (validator.Validator, error) {
	doc, err := libopenapi.NewDocument(openapi.Document)
	if err != nil {
		return nil, err
	}
	// Authentication is the API's own business (auth_test.go covers it),
	// and a server without tokens takes requests without one: the
	// validator does not enforce the security requirements.
	v, errs := validator.NewValidator(doc, config.WithoutSecurityValidation(), config.WithFormatAssertions(),
		config.WithStrictMode(), config.WithStrictIgnoredHeadersExtra(browserHeaders...), config.WithStrictIgnorePaths(freeForm...))
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return v, nil
})

// Strict mode reports any member or header the document does not name,
// so that an answer cannot grow an undocumented field. These are free-form
// by design: a job's payload (its kind's schema says what it holds) and
// result, a kind's published JSON Schema, and the document itself.
var freeForm = []string{
	"$.body.payload.*", "$.body.**.payload.*", "$.body.**.result.*", "$.body.kinds[*].schema.*",
	"$.body.info.*", "$.body.servers[*].*", "$.body.paths**", "$.body.components.*", "$.body.tags[*].*", "$.body.security[*].*",
}

// browserHeaders are sent by browsers (the CSRF tests send them),
// X-Content-Type-Options by the API on every answer, and W3C Trace Context
// by tracing clients and proxies: none is part of the contract.
var browserHeaders = []string{"Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Referer", "X-Content-Type-Options",
	"Traceparent", "Tracestate"}

// Handler serves h and fails t when a request and its answer break the
// document: a successful answer to a request the document refuses (the
// API is looser than its contract), or any answer the document does not
// describe. A request the document refuses may be answered 4xx: that is
// the API refusing it too. Requests for routes the document lacks must be
// answered 404 or 405 (or 401: without a token, not even that is shown).
// It reports with t.Errorf, not Fatal, so that it may from a server's
// goroutines.
func Handler(t testing.TB, h http.Handler) http.Handler {
	v, err := Validator()
	if err != nil {
		t.Fatalf("openapi document: %v", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tee := &teeBody{r: r.Body}
		if r.Body != nil {
			r.Body = tee
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		check(t, v, r, tee.buf.Bytes(), rec)
	})
}

// check validates one exchange; body is what the handler read of the
// request's body (all of it, unless it refused the request early).
func check(t testing.TB, v validator.Validator, r *http.Request, body []byte, rec *recorder) {
	t.Helper()
	what := r.Method + " " + r.URL.RequestURI()
	if rec.status >= 400 {
		// A refused request may break the document: only its route
		// matters, and not reading its body keeps the large-body tests
		// prompt.
		body = nil
	}
	reqOK, reqErrs := validateRequest(v, r, body)
	if unknownRoute(reqErrs) {
		switch rec.status {
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusUnauthorized:
			// Unmatched requests need a token before the 404 or 405.
		default:
			t.Errorf("openapi: %s is not in the document, yet answered %d", what, rec.status)
		}
		return
	}
	if !reqOK && rec.status < 400 {
		t.Errorf("openapi: the document refuses %s, the API answered %d:\n%s", what, rec.status, describe(reqErrs))
	}
	if ok, errs := validateResponse(v, r, rec); !ok {
		t.Errorf("openapi: the answer %d to %s breaks the document:\n%s\nbody: %.2000s", rec.status, what, describe(errs), rec.body.Bytes())
	}
	if got, ok := problemStatus(rec); ok && got != rec.status {
		t.Errorf("openapi: the answer %d to %s is a problem with status %d: RFC 9457's status is the HTTP status", rec.status, what, got)
	}
}

// validating serializes the validator's use: its strict mode renders
// shared schemas as it goes (a data race between parallel tests, seen with
// -race on libopenapi-validator v0.16.3).
var validating sync.Mutex

func validateRequest(v validator.Validator, r *http.Request, body []byte) (bool, []*verrors.ValidationError) {
	req := r.Clone(r.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	validating.Lock()
	defer validating.Unlock()
	return v.ValidateHttpRequestSync(req)
}

func validateResponse(v validator.Validator, r *http.Request, rec *recorder) (bool, []*verrors.ValidationError) {
	req := r.Clone(r.Context())
	req.Body = http.NoBody
	res := &http.Response{StatusCode: rec.status, Header: rec.Header().Clone(), Request: req,
		Body: io.NopCloser(bytes.NewReader(rec.body.Bytes()))}
	validating.Lock()
	defer validating.Unlock()
	return v.ValidateHttpResponse(req, res)
}

// problemStatus reads the status member of a problem details answer.
func problemStatus(rec *recorder) (int, bool) {
	mt, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type"))
	var p struct {
		Status int `json:"status"`
	}
	if mt != "application/problem+json" || json.Unmarshal(rec.body.Bytes(), &p) != nil {
		return 0, false
	}
	return p.Status, true
}

func unknownRoute(errs []*verrors.ValidationError) bool {
	for _, e := range errs {
		if e.IsPathMissingError() || e.IsOperationMissingError() {
			return true
		}
	}
	return false
}

func describe(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("  " + e.Error() + "\n")
		for _, f := range e.SchemaValidationErrors {
			b.WriteString("    " + f.Error() + "\n")
		}
	}
	return b.String()
}

// teeBody keeps what the handler reads of a request's body. Reading it
// as it goes, rather than first, keeps the slow-body tests' timing: the
// API's own deadline, not this wrapper, decides when to give up.
type teeBody struct {
	r   io.ReadCloser
	buf bytes.Buffer
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.buf.Write(p[:n])
	return n, err
}

func (t *teeBody) Close() error { return t.r.Close() }

// recorder passes an answer through and keeps a copy of it.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	r.body.Write(p)
	return r.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the writer's deadlines.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
