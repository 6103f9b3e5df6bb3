package httpapi_test

import (
	"net/http"
	"testing"
)

// Requests the API takes in forms the other tests do not send: the
// router's document check (newRouter) fails any the document refuses, so
// the document is not stricter than the API.
func TestDocumentTakesWhatTheAPITakes(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/v1/jobs?status=&queue=&type=&include=", "", http.StatusOK}, // empty filters: none
		{"POST", "/v1/jobs", `{"type":"noop","delay":"0"}`, http.StatusCreated},
		{"POST", "/v1/jobs", `{"type":"noop","timeout":".5s","backoff_base":"+1s","backoff_max":"1h30m"}`, http.StatusCreated},
		{"POST", "/v1/jobs", `{"type":"noop","payload":null}`, http.StatusCreated},
		{"POST", "/v1/dead/retry", "", http.StatusOK}, // no body: every dead job
		{"DELETE", "/v1/dead?queue=&all=true", "", http.StatusOK},
	} {
		if rec := f.do(tc.method, tc.path, tc.body); rec.Code != tc.want {
			t.Errorf("%s %s %s: %d, want %d: %s", tc.method, tc.path, tc.body, rec.Code, tc.want, rec.Body)
		}
	}
}
