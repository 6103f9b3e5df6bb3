package openapitest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spoolq/spool/services/api/internal/openapi/openapitest"
)

// spy records what Handler reports instead of failing the test.
type spy struct {
	testing.TB
	errs []string
}

func (s *spy) Helper() {}

func (s *spy) Errorf(format string, args ...any) {
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
}

// The checker is only worth something if it catches a broken exchange:
// each case is a request and a canned answer, and whether the document
// allows the pair.
func TestHandlerCatchesBreaches(t *testing.T) {
	t.Parallel()
	const stats = `{"queues":{},"as_of":"2030-01-02T15:04:05Z"}`
	const problem = `{"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"x","error":"x"}`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		contentType, answer      string
		ok                       bool
	}{
		{"good answer", "GET", "/v1/stats", "", 200, "application/json", stats, true},
		{"answer missing a member", "GET", "/v1/stats", "", 200, "application/json", `{"queues":{}}`, false},
		{"answer of the wrong type", "GET", "/v1/stats", "", 200, "application/json", `{"queues":[],"as_of":"2030-01-02T15:04:05Z"}`, false},
		{"error as problem details", "POST", "/v1/jobs", `{"type":"noop","priority":5000}`, 422, "application/problem+json", problem, true},
		{"problem with another status", "POST", "/v1/jobs", `{"type":"noop","priority":5000}`, 400, "application/problem+json", problem, false},
		{"error as plain JSON", "POST", "/v1/jobs", `{"type":"noop","priority":5000}`, 422, "application/json", `{"error":"x"}`, false},
		{"refused request accepted", "POST", "/v1/jobs", `{"type":"noop","colour":"red"}`, 201, "application/json", `{"job":{},"duplicate":false}`, false},
		{"route the document lacks, answered 404", "GET", "/v1/nothing", "", 404, "application/problem+json", problem, true},
		{"route the document lacks, answered 200", "GET", "/v1/nothing", "", 200, "application/json", `{}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &spy{TB: t}
			h := openapitest.Handler(s, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = r.Body.Read(make([]byte, 1<<10))
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.answer))
			}))
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if got := len(s.errs) == 0; got != tc.ok {
				t.Errorf("allowed = %v, want %v; reports: %q", got, tc.ok, s.errs)
			}
		})
	}
}
