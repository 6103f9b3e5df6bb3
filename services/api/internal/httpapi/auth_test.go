package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/services/api/internal/openapi/openapitest"
	"github.com/spoolq/spool/shared/apiext"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/telemetry"
)

// TestEveryRouteNeedsAToken walks the router itself, so a route added
// later is covered without editing this test: every one answers 401
// without a valid token, a read-only token may only GET, and unmatched
// requests reveal nothing without a token. The admin handler is separate
// and needs none.
func TestEveryRouteNeedsAToken(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	opts := &Opts{Tokens: []Token{{Secret: "ro-secret", Scope: ScopeRead}, {Secret: "rw-secret", Scope: ScopeWrite}}}
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := openapitest.Handler(t, New(client, opts))

	type route struct{ method, path string }
	var routes []route
	vars := strings.NewReplacer("{id}", "1", "{name}", "default", "{scope}", "queue")
	err = newAPI(client, opts).router().Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tmpl, err := r.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := r.GetMethods()
		if err != nil {
			return err
		}
		for _, m := range methods {
			routes = append(routes, route{m, vars.Replace(tmpl)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range routes {
		seen[r.method+" "+r.path] = true
	}
	for _, want := range []string{"POST /v1/jobs", "GET /v1/jobs", "POST /v1/dead/retry", "DELETE /v1/dead", "GET /v1/queues",
		"POST /v1/queues/default/pause", "PUT /v1/limits/queue/default", "DELETE /v1/schedules/default"} {
		if !seen[want] {
			t.Fatalf("route %s not found by the walk (found %v)", want, routes)
		}
	}

	send := func(method, path, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, r := range routes {
		read := r.method == http.MethodGet || r.method == http.MethodHead
		for _, auth := range []string{"", "Bearer", "Bearer wrong", "Basic cnctc2VjcmV0", "Bearer rw-secret2", "Bearer  ro-secre"} {
			rec := send(r.method, r.path, auth)
			if rec.Code != http.StatusUnauthorized || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with %q: %d, challenge %q; want 401 with a Bearer challenge", r.method, r.path, auth, rec.Code, rec.Header().Get("WWW-Authenticate"))
			}
		}
		rec := send(r.method, r.path, "Bearer ro-secret")
		switch {
		case read && (rec.Code == 401 || rec.Code == 403):
			t.Errorf("%s %s with the read-only token: %d, want it allowed", r.method, r.path, rec.Code)
		case !read && rec.Code != http.StatusForbidden:
			t.Errorf("%s %s with the read-only token: %d, want 403", r.method, r.path, rec.Code)
		}
		if rec := send(r.method, r.path, "Bearer rw-secret"); rec.Code == 401 || rec.Code == 403 || rec.Code >= 500 {
			t.Errorf("%s %s with the read-write token: %d %s, want it allowed", r.method, r.path, rec.Code, rec.Body)
		}
	}

	for _, r := range []route{{"GET", "/v1/nope"}, {"GET", "/"}, {"GET", "/metrics"}, {"DELETE", "/v1/jobs/1"}, {"PATCH", "/v1/schedules/x"}} {
		rec := send(r.method, r.path, "")
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("Allow") != "" {
			t.Errorf("unmatched %s %s without a token: %d, Allow %q; want 401 revealing nothing", r.method, r.path, rec.Code, rec.Header().Get("Allow"))
		}
		if rec := send(r.method, r.path, "Bearer rw-secret"); rec.Code != 404 && rec.Code != 405 {
			t.Errorf("unmatched %s %s with a token: %d, want 404 or 405", r.method, r.path, rec.Code)
		}
	}

	admin := telemetry.AdminHandler(prometheus.NewRegistry(), func(context.Context) error { return nil })
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("admin %s without a token: %d, want 200 (the admin listener is separate and open)", path, rec.Code)
		}
	}
}

// TestDuplicateKey: the decoder refuses a key twice in any object of the
// body, compared exactly after unescaping, and names it.
func TestDuplicateKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want string // "" for none
	}{
		{`{"a":1,"b":2}`, ""},
		{`{"a":"a","b":"a"}`, ""},
		{`[{"a":1},{"a":1}]`, ""},
		{`{"a":{"a":{"a":1}}}`, ""},
		{`{"a":[1,{"b":1}],"b":[{"a":1,"b":2}]}`, ""},
		{`"a"`, ""},
		{`{"a":1,"A":2}`, ""},      // two keys: matching is exact
		{`{"k":1,"\u212a":2}`, ""}, // the Kelvin sign is not k
		{`{"a":1,"a":2}`, "a"},
		{`{"a":1,"\u0061":2}`, "a"},
		{`{"x":{"b":[],"b":{}}}`, "b"},
		{`[1,[{"k":{},"j":1,"k":null}]]`, "k"},
		{`{"a":{"x":1},"b":2,"a":3}`, "a"},
	}
	for _, tc := range cases {
		var v any
		err := apiext.Unmarshal([]byte(tc.in), &v)
		if tc.want == "" {
			if err != nil {
				t.Errorf("Unmarshal(%s) = %v, want no error", tc.in, err)
			}
			continue
		}
		ae := toAPIError(decodeError(err))
		if want := fmt.Sprintf("key %q appears twice", tc.want); ae.Status != 400 || !strings.Contains(ae.Message, want) {
			t.Errorf("Unmarshal(%s): %d %q, want 400 saying %s", tc.in, ae.Status, ae.Message, want)
		}
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	if got := clip("short"); got != "short" {
		t.Errorf("clip(short) = %q, want it whole", got)
	}
	got := clip("x" + strings.Repeat("é", 100)) // two bytes each: byte 64 is mid-rune
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…") || len(got) > maxEcho+len("…") {
		t.Errorf("clip = %q (%d bytes), want valid UTF-8 of at most %d bytes with a marked cut", got, len(got), maxEcho)
	}
}
