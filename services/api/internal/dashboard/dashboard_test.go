package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/spoolq/spool/services/api/internal/dashboard"
)

// apiStub stands in for the API: it answers every request it gets with 418
// and its path, so the tests see which requests pass through.
var apiStub = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusTeapot)
	_, _ = io.WriteString(w, "api:"+r.URL.Path)
})

func get(t *testing.T, h http.Handler, method, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestMountServesPageAndPassesTheRest(t *testing.T) {
	t.Parallel()
	h := dashboard.Mount(apiStub)
	for _, tc := range []struct {
		method, path string
		status       int
		contentType  string
		bodyHas      string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `<script src="ui/app.js"`},
		{"HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/ui/app.js", 200, "text/javascript; charset=utf-8", "'use strict'"},
		{"GET", "/ui/style.css", 200, "text/css; charset=utf-8", "--accent"},
		{"GET", "/ui/index.html", 200, "text/html; charset=utf-8", "<title>Spool</title>"},
		{"GET", "/ui/nope.js", 404, "text/plain; charset=utf-8", "not found"},
		{"GET", "/ui/../dashboard.go", 404, "", ""},
		{"POST", "/", 405, "text/plain; charset=utf-8", ""},
		// Everything else is the API's, unchanged (auth, 404s and all).
		{"GET", "/v1/jobs", 418, "", "api:/v1/jobs"},
		{"POST", "/v1/jobs/1/retry", 418, "", "api:/v1/jobs/1/retry"},
		{"GET", "/index.html", 418, "", "api:/index.html"},
		{"GET", "/uix", 418, "", "api:/uix"},
		{"GET", "/ui", 418, "", "api:/ui"},
	} {
		res := get(t, h, tc.method, tc.path)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d (body %q)", tc.method, tc.path, res.StatusCode, tc.status, clip(body))
			continue
		}
		if tc.contentType != "" && res.Header.Get("Content-Type") != tc.contentType {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.path, res.Header.Get("Content-Type"), tc.contentType)
		}
		if !strings.Contains(string(body), tc.bodyHas) {
			t.Errorf("%s %s: body %q does not contain %q", tc.method, tc.path, clip(body), tc.bodyHas)
		}
		if tc.status == 405 && res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", tc.method, tc.path, res.Header.Get("Allow"))
		}
	}
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

func TestSecurityHeadersAndRevalidation(t *testing.T) {
	t.Parallel()
	h := dashboard.Mount(apiStub)
	res := get(t, h, "GET", "/")
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("Content-Security-Policy %q allows inline or eval'd script", csp)
	}
	for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-cache"} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	etag := res.Header.Get("ETag")
	if !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(etag) {
		t.Fatalf("ETag %q", etag)
	}
	if res := get(t, h, "GET", "/", "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the current ETag: status %d, want 304", res.StatusCode)
	}
}

// TestPageUsesOnlyTheAPIAndNoInlineCode: the page must work under its own
// Content-Security-Policy (no inline script or style, no other origins)
// and build its DOM without innerHTML.
func TestPageUsesOnlyTheAPIAndNoInlineCode(t *testing.T) {
	t.Parallel()
	h := dashboard.Mount(apiStub)
	index := readBody(t, h, "/")
	app := readBody(t, h, "/ui/app.js")
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(index) || strings.Contains(index, "<style") ||
		regexp.MustCompile(`\son[a-z]+=`).MatchString(index) || strings.Contains(index, "style=") {
		t.Error("index.html has inline script, style or event handlers, which the CSP blocks")
	}
	if m := regexp.MustCompile(`https?://`).FindString(index + app); m != "" {
		t.Errorf("the page refers to another origin (%q)", m)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(app, bad) {
			t.Errorf("app.js uses %s; build the DOM with h() and textContent", bad)
		}
	}
	// Every API call is relative (v1/…), so the page works behind a path prefix too.
	if !strings.Contains(app, "fetch('v1/' + path") {
		t.Error("app.js should call the API through api(), with relative v1/ paths")
	}
}

func readBody(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	res := get(t, h, "GET", path)
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", path, res.StatusCode, err)
	}
	return string(b)
}
