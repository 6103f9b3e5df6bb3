package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/services/api/internal/openapi/openapitest"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/postgres"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	f := setup(t, &httpapi.Opts{Tokens: []httpapi.Token{{Secret: "reader-secret", Scope: httpapi.ScopeRead}, {Secret: "writer-secret", Scope: httpapi.ScopeWrite}}})
	id := f.enqueue(jobqueue.EnqueueParams{})
	before := f.snapshot()
	cases := []struct {
		name, method, path, body, auth string
		status                         int
	}{
		{"no token", "GET", "/v1/stats", "", "", 401},
		{"wrong token", "GET", "/v1/stats", "", "Bearer nope", 401},
		{"prefix of a token", "GET", "/v1/stats", "", "Bearer reader", 401},
		{"not bearer", "GET", "/v1/stats", "", "Basic cmVhZGVyLXNlY3JldA==", 401},
		{"no token, write", "POST", "/v1/jobs", `{"type":"noop"}`, "", 401},
		{"read-only token writes", "POST", "/v1/jobs", `{"type":"noop"}`, "Bearer reader-secret", 403},
		{"read-only token cancels", "POST", fmt.Sprintf("/v1/jobs/%d/cancel", id), "", "Bearer reader-secret", 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(tc.method, tc.path, tc.body, "Authorization: "+tc.auth)
			b := mustStatus[errBody](t, rec, tc.status)
			if b.Error == "" {
				t.Fatalf("no error message: %s", rec.Body)
			}
			if tc.status == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", rec.Header().Get("WWW-Authenticate"))
			}
			if after := f.snapshot(); after != before {
				t.Fatalf("job table changed: %s → %s", before, after)
			}
		})
	}
	mustStatus[map[string]any](t, f.do("GET", "/v1/stats", "", "Authorization: Bearer reader-secret"), http.StatusOK)
	mustStatus[map[string]any](t, f.do("GET", "/v1/stats", "", "Authorization: bearer writer-secret"), http.StatusOK)
	mustStatus[jobBody](t, f.do("POST", "/v1/jobs", `{"type":"noop"}`, "Authorization: Bearer writer-secret"), http.StatusCreated)
}

// TestDatabaseOutage: with the database unreachable every route that needs
// it answers 503 with Retry-After, quickly, whether the connection is
// refused or hangs.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	hang, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hang.Close() })
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }() // until the client gives up
		}
	}()
	for name, addr := range map[string]string{"refused": "127.0.0.1:1", "hanging": hang.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool, err := postgres.Connect(context.Background(), "postgres://spool@"+addr+"/spool?sslmode=disable", nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			h := openapitest.Handler(t, httpapi.New(mustClient(t, pool), &httpapi.Opts{RequestTimeout: 500 * time.Millisecond}))
			for _, r := range []struct{ method, path, body string }{
				{"POST", "/v1/jobs", `{"type":"noop"}`},
				{"POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop"}]}`},
				{"GET", "/v1/jobs/1", ""},
				{"GET", "/v1/jobs", ""},
				{"POST", "/v1/jobs/1/cancel", ""},
				{"POST", "/v1/jobs/1/retry", ""},
				{"GET", "/v1/stats", ""},
			} {
				start := time.Now()
				rec := serve(h, request(r.method, r.path, r.body))
				elapsed := time.Since(start)
				b := mustStatus[errBody](t, rec, http.StatusServiceUnavailable)
				if rec.Header().Get("Retry-After") == "" || b.Error == "" {
					t.Errorf("%s %s: Retry-After %q, error %q; want both set", r.method, r.path, rec.Header().Get("Retry-After"), b.Error)
				}
				if elapsed > 2*time.Second {
					t.Errorf("%s %s took %s, want under 2s", r.method, r.path, elapsed)
				}
			}
		})
	}
}

func TestMetricsUseRouteTemplates(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	f.do("GET", "/v1/jobs/123", "")
	f.do("GET", "/v1/jobs/456", "")
	f.do("POST", "/v1/jobs/789/cancel", "")
	f.do("GET", "/v1/nope/123", "")
	f.do("DELETE", "/v1/jobs/123", "")
	f.do("POST", "/v1/jobs", `{"type":"noop"}`)

	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	requests := counters(families, "spool_http_requests_total")
	want := map[string]float64{
		"route=/v1/jobs/{id} method=GET code=404":         2,
		"route=/v1/jobs/{id}/cancel method=POST code=404": 1,
		"route=unmatched method=GET code=404":             1,
		"route=unmatched method=DELETE code=405":          1,
		"route=/v1/jobs method=POST code=201":             1,
	}
	for k, v := range want {
		if requests[k] != v {
			t.Errorf("spool_http_requests_total{%s} = %v, want %v (all: %v)", k, requests[k], v, requests)
		}
	}
	for _, fam := range families {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, "123") || strings.Contains(v, "456") || strings.Contains(v, "789") {
					t.Errorf("%s has a raw path or id in label %s=%q", fam.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	if got := counters(families, "spool_jobs_enqueued_total")["type=noop"]; got != 1 {
		t.Errorf("spool_jobs_enqueued_total{type=noop} = %v, want 1", got)
	}
	if counters(families, "spool_http_request_duration_seconds") == nil {
		t.Error("no spool_http_request_duration_seconds series")
	}
}

// counters maps "route=… method=… code=…" (labels in that order, absent
// ones skipped) to the counter, or histogram sample count, of family name.
func counters(families []*dto.MetricFamily, name string) map[string]float64 {
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		out := map[string]float64{}
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			var key []string
			for _, n := range []string{"type", "route", "method", "code"} {
				if v, ok := labels[n]; ok {
					key = append(key, n+"="+v)
				}
			}
			v := m.GetCounter().GetValue()
			if h := m.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			out[strings.Join(key, " ")] = v
		}
		return out
	}
	return nil
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	h := openapitest.Handler(t, httpapi.New(mustClient(t, nil), nil)) // the routes below touch no database
	cases := []struct{ sent, want string }{
		{"abc-123.x:y_z", "abc-123.x:y_z"},
		{"has space", ""},
		{strings.Repeat("a", 129), ""},
		{"", ""},
	}
	for _, tc := range cases {
		rec := serve(h, request("GET", "/v1/job-types", "", "X-Request-ID: "+tc.sent))
		got := rec.Header().Get("X-Request-ID")
		switch {
		case tc.want != "" && got != tc.want:
			t.Errorf("sent %q: echoed %q, want it kept", tc.sent, got)
		case tc.want == "" && (got == "" || got == tc.sent):
			t.Errorf("sent %q: echoed %q, want a generated id", tc.sent, got)
		}
	}
}
