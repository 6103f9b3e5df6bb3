package httpapi_test

import (
	"net/http"
	"testing"
)

// TestCrossSiteRequestsRefused replays issue 17's attack with
// authentication off: a page on another localhost port sends no-cors
// POSTs with empty bodies to pause a queue, retry all dead jobs and cancel
// a job. Each variant a browser can send without a preflight is refused,
// and nothing changes.
func TestCrossSiteRequestsRefused(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	f.seedAll()
	before := f.dbState()
	// What a page at http://localhost:3000 sends to the API at
	// localhost:8080: Sec-Fetch-Site (modern browsers) or only Origin
	// (older ones), and a simple Content-Type or none.
	browser := [][]string{
		{"Content-Type:", "Sec-Fetch-Site: same-site", "Origin: http://localhost:3000"},
		{"Content-Type: text/plain", "Sec-Fetch-Site: same-site", "Origin: http://localhost:3000"},
		{"Content-Type: application/x-www-form-urlencoded", "Sec-Fetch-Site: cross-site", "Origin: http://evil.example"},
		{"Content-Type: multipart/form-data; boundary=x", "Origin: http://localhost:3000"},
		{"Content-Type:", "Origin: null"},
		// Passing the Content-Type rule needs a preflight, which the API
		// never answers; a browser that skipped it is still refused.
		{"Content-Type: application/json", "Sec-Fetch-Site: same-site", "Origin: http://localhost:3000"},
		{"Content-Type: application/json", "Origin: http://localhost:3000"},
		{"Content-Type: application/json", "Sec-Fetch-Site: cross-site"},
		// Without a browser's headers, an unsafe request must still say it
		// sends JSON.
		{"Content-Type:"},
		{"Content-Type: text/plain"},
	}
	for _, target := range []struct{ method, path string }{
		{"POST", "/v1/queues/emails/pause"},
		{"POST", "/v1/dead/retry"},
		{"POST", "/v1/jobs/5/cancel"}, // the pending seeded job
		{"DELETE", "/v1/dead?all=true"},
		{"PUT", "/v1/limits/queue/emails"},
		{"DELETE", "/v1/schedules/kept"},
		{"POST", "/v1/workflows/1/cancel"},
		{"PATCH", "/v1/jobs/5"}, // no such route: refused all the same
	} {
		for _, h := range browser {
			req := request(target.method, target.path, "", h...)
			req.Host = "localhost:8080"
			rec := serve(f.h, req)
			want := http.StatusForbidden
			if req.Header.Get("Sec-Fetch-Site") == "" && req.Header.Get("Origin") == "" {
				want = http.StatusUnsupportedMediaType
			}
			if target.method == "PATCH" {
				want = http.StatusMethodNotAllowed
			}
			if rec.Code != want {
				t.Errorf("%s %s %q: %d %s, want %d", target.method, target.path, h, rec.Code, rec.Body, want)
				continue
			}
			mustStatus[errBody](t, rec, want)
		}
	}
	if after := f.dbState(); after != before {
		t.Fatalf("database changed:\nbefore %s\nafter  %s", before, after)
	}
}

// TestSameOriginAndNonBrowserRequestsPass: the dashboard (same origin),
// a URL typed by the user (Sec-Fetch-Site: none) and curl or Go (neither
// header) get through with Content-Type: application/json; reads are
// never refused.
func TestSameOriginAndNonBrowserRequestsPass(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	for _, h := range [][]string{
		{},
		{"Sec-Fetch-Site: same-origin", "Origin: http://localhost:8080"},
		{"Sec-Fetch-Site: none"},
		{"Origin: http://localhost:8080"},
		{"Content-Type: application/json; charset=utf-8"},
	} {
		req := request("POST", "/v1/queues/emails/pause", "", h...)
		req.Host = "localhost:8080"
		if rec := serve(f.h, req); rec.Code != http.StatusOK {
			t.Errorf("pause with %q: %d %s, want 200", h, rec.Code, rec.Body)
		}
	}
	req := request("GET", "/v1/queues", "", "Sec-Fetch-Site: cross-site", "Origin: http://evil.example")
	if rec := serve(f.h, req); rec.Code != http.StatusOK {
		t.Errorf("cross-site GET: %d %s, want 200 (a read; CORS keeps the answer from the page)", rec.Code, rec.Body)
	}
	if rec := f.do("POST", "/v1/jobs", `{"type":"noop"}`, "Sec-Fetch-Site: same-origin"); rec.Code != http.StatusCreated {
		t.Errorf("same-origin enqueue: %d %s, want 201", rec.Code, rec.Body)
	}
}
