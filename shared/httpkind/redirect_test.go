package httpkind_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/spoolq/spool/shared/httpkind"
	"github.com/spoolq/spool/shared/jobqueue"
)

// A redirect is followed only when the job asks, and then every hop passes
// the destination check: an allowed hop completes the job with the final
// response; a hop to a refused address, to another scheme, or a loop
// fails the job at once, without sending anything to a refused address.
func TestRedirectsOnlyWhenAskedAndEveryHopChecked(t *testing.T) {
	var rc *receiver
	rc = newReceiver(t, map[string]func(int, http.ResponseWriter){
		"/moved": func(_ int, w http.ResponseWriter) { redirectTo(w, rc.srv.URL+"/final", http.StatusFound) },
		"/kept":  func(_ int, w http.ResponseWriter) { redirectTo(w, rc.srv.URL+"/final", http.StatusPermanentRedirect) },
		"/final": answer(http.StatusOK, map[string]string{"Content-Type": "application/json"}, `{"here":true}`),
		"/metadata": func(_ int, w http.ResponseWriter) {
			redirectTo(w, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		},
		"/ftp":  func(_ int, w http.ResponseWriter) { redirectTo(w, "ftp://127.0.0.1/x", http.StatusFound) },
		"/loop": func(_ int, w http.ResponseWriter) { redirectTo(w, rc.srv.URL+"/loop", http.StatusFound) },
	})
	b := setup(t, httpkind.Settings{AllowedHosts: "127.0.0.1/32"})
	cases := []struct {
		path, errPart string
		follow        bool
		finalRequests int
	}{
		{"/moved", `HTTP 302: redirect to "` + rc.srv.URL + `/final" not followed`, false, 0},
		{"/moved", "", true, 1},
		{"/kept", "", true, 2},
		{"/metadata", "destination 169.254.169.254 (169.254.169.254) refused", true, 2},
		{"/ftp", "redirect refused: to a ftp: URL", true, 2},
		{"/loop", "redirect refused: stopped after 10 redirects", true, 2},
	}
	for _, c := range cases {
		id := b.enqueue(t, httpkind.Request{URL: rc.srv.URL + c.path, Body: []byte(`{"n":1}`), FollowRedirects: c.follow}, 3)
		j := b.final(t, id)
		want := jobqueue.StatusDead
		if c.errPart == "" {
			want = jobqueue.StatusCompleted
		}
		if j.Status != want || j.Attempts != 1 || !strings.Contains(lastError(j), c.errPart) {
			t.Errorf("%s (follow %v): %s after %d attempts (%q); want %s after 1 with %q", c.path, c.follow, j.Status, j.Attempts, lastError(j), want, c.errPart)
		}
		var res httpkind.Result
		if want == jobqueue.StatusCompleted && (json.Unmarshal(j.Result, &res) != nil || res.Status != 200) {
			t.Errorf("%s: result %s, want the final response's", c.path, j.Result)
		}
		if n := len(rc.requests("/final")); n != c.finalRequests {
			t.Errorf("after %s (follow %v): /final got %d requests, want %d", c.path, c.follow, n, c.finalRequests)
		}
	}
	if n := len(rc.requests("/loop")); n != httpkind.MaxRedirects+1 {
		t.Errorf("/loop got %d requests, want %d", n, httpkind.MaxRedirects+1)
	}
	// A 308 repeats the method and the signed body on the next hop.
	if got := rc.requests("/final"); len(got) == 2 && (got[1].method != "POST" || string(got[1].body) != `{"n": 1}` && string(got[1].body) != `{"n":1}`) {
		t.Errorf("after a 308: %s %q, want POST with the body", got[1].method, got[1].body)
	}
}

func redirectTo(w http.ResponseWriter, url string, code int) {
	w.Header().Set("Location", url)
	w.WriteHeader(code)
}
