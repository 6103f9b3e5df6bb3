package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/shared/jobqueue"
)

// errorCase is one rejected request. In path, {pending}, {running},
// {completed}, {dead} and {cancelled} stand for a seeded job in that status.
type errorCase struct {
	name    string
	method  string
	path    string
	body    string
	headers []string

	status int
	field  string // want this "field", if set
	index  *int   // want this "index", if set
	allow  string // want this Allow header, if set
}

func at(i int) *int { return &i }

// Limits of the router under test, small so that 413s are cheap to provoke.
const (
	testMaxPayload    = 1024
	testMaxBatch      = 3
	testMaxBatchBytes = 8 << 10
)

var errorCases = []errorCase{
	// 400: not JSON, or not the JSON we take.
	{name: "malformed JSON", method: "POST", path: "/v1/jobs", body: `{"type":`, status: 400},
	{name: "not JSON", method: "POST", path: "/v1/jobs", body: `hello`, status: 400},
	{name: "empty body", method: "POST", path: "/v1/jobs", status: 400},
	{name: "array body", method: "POST", path: "/v1/jobs", body: `[]`, status: 400},
	{name: "two values", method: "POST", path: "/v1/jobs", body: `{"type":"noop"} {"type":"noop"}`, status: 400},
	{name: "trailing brace", method: "POST", path: "/v1/jobs", body: `{"type":"noop"}}`, status: 400},
	{name: "unknown field", method: "POST", path: "/v1/jobs", body: `{"type":"noop","colour":"red"}`, status: 400, field: "colour"},
	{name: "type not a string", method: "POST", path: "/v1/jobs", body: `{"type":5}`, status: 400, field: "type"},
	{name: "priority not a number", method: "POST", path: "/v1/jobs", body: `{"type":"noop","priority":"high"}`, status: 400, field: "priority"},
	{name: "priority fractional", method: "POST", path: "/v1/jobs", body: `{"type":"noop","priority":1.5}`, status: 400, field: "priority"},
	{name: "run_at not a string", method: "POST", path: "/v1/jobs", body: `{"type":"noop","run_at":12}`, status: 400, field: "run_at"},
	{name: "batch jobs not an array", method: "POST", path: "/v1/jobs/batch", body: `{"jobs":{}}`, status: 400, field: "jobs"},
	{name: "batch element wrong type", method: "POST", path: "/v1/jobs/batch", body: `{"jobs":[{"type":"noop"},{"type":"noop","max_attempts":"3"}]}`, status: 400, field: "jobs[1].max_attempts", index: at(1)},
	{name: "batch element unknown field", method: "POST", path: "/v1/jobs/batch", body: `{"jobs":[{"type":"noop","prio":1}]}`, status: 400, field: "jobs[0].prio", index: at(0)},
	{name: "list unknown status", method: "GET", path: "/v1/jobs?status=finished", status: 400, field: "status"},
	{name: "list limit zero", method: "GET", path: "/v1/jobs?limit=0", status: 400, field: "limit"},
	{name: "list limit too big", method: "GET", path: "/v1/jobs?limit=501", status: 400, field: "limit"},
	{name: "list limit not a number", method: "GET", path: "/v1/jobs?limit=ten", status: 400, field: "limit"},
	{name: "list after negative", method: "GET", path: "/v1/jobs?after=-1", status: 400, field: "after"},
	{name: "list bad queue", method: "GET", path: "/v1/jobs?queue=No%20Such", status: 400, field: "queue"},

	// 422: well-formed, but not a job we can run.
	{name: "missing type", method: "POST", path: "/v1/jobs", body: `{"payload":{}}`, status: 422, field: "type"},
	{name: "unknown type", method: "POST", path: "/v1/jobs", body: `{"type":"sned_email","payload":{}}`, status: 422, field: "type"},
	{name: "idempotency key in Spool's namespace", method: "POST", path: "/v1/jobs", body: `{"type":"noop","idempotency_key":"spool:workflow:1:failed"}`, status: 422, field: "idempotency_key"},
	{name: "schedule key in Spool's namespace", method: "POST", path: "/v1/jobs", body: `{"type":"noop","idempotency_key":"spool:schedule:nightly:2026-03-01T02:00:00Z"}`, status: 422, field: "idempotency_key"},
	{name: "Spool's namespace in a batch", method: "POST", path: "/v1/jobs/batch", body: `{"jobs":[{"type":"noop"},{"type":"noop","idempotency_key":"spool:workflow:1:failed"}]}`, status: 422, field: "jobs[1].idempotency_key"},
	{name: "kind nobody published", method: "POST", path: "/v1/jobs", body: `{"type":"never_published"}`, status: 422, field: "type"},
	{name: "payload fails validation", method: "POST", path: "/v1/jobs", body: `{"type":"send_email","payload":{"to":"nobody","subject":"s"}}`, status: 422, field: "payload.to"},
	{name: "payload unknown field", method: "POST", path: "/v1/jobs", body: `{"type":"sleep","payload":{"ms":1,"seconds":2}}`, status: 422, field: "payload.seconds"},
	{name: "payload wrong type", method: "POST", path: "/v1/jobs", body: `{"type":"sleep","payload":{"ms":"1"}}`, status: 422, field: "payload.ms"},
	{name: "payload not an object", method: "POST", path: "/v1/jobs", body: `{"type":"sleep","payload":[1]}`, status: 422, field: "payload"},
	{name: "payload out of range", method: "POST", path: "/v1/jobs", body: `{"type":"sleep","payload":{"ms":-1}}`, status: 422, field: "payload.ms"},
	{name: "payload with NUL", method: "POST", path: "/v1/jobs", body: `{"type":"fail","payload":{"message":"a\u0000b"}}`, status: 422, field: "payload"},
	{name: "queue with capitals", method: "POST", path: "/v1/jobs", body: `{"type":"noop","queue":"Emails"}`, status: 422, field: "queue"},
	{name: "queue empty", method: "POST", path: "/v1/jobs", body: `{"type":"noop","queue":""}`, status: 422, field: "queue"},
	{name: "queue too long", method: "POST", path: "/v1/jobs", body: `{"type":"noop","queue":"` + strings.Repeat("q", 65) + `"}`, status: 422, field: "queue"},
	{name: "priority too high", method: "POST", path: "/v1/jobs", body: `{"type":"noop","priority":1001}`, status: 422, field: "priority"},
	{name: "priority too low", method: "POST", path: "/v1/jobs", body: `{"type":"noop","priority":-1001}`, status: 422, field: "priority"},
	{name: "max_attempts zero", method: "POST", path: "/v1/jobs", body: `{"type":"noop","max_attempts":0}`, status: 422, field: "max_attempts"},
	{name: "max_attempts too many", method: "POST", path: "/v1/jobs", body: `{"type":"noop","max_attempts":101}`, status: 422, field: "max_attempts"},
	{name: "timeout zero", method: "POST", path: "/v1/jobs", body: `{"type":"noop","timeout":"0s"}`, status: 422, field: "timeout"},
	{name: "timeout over a day", method: "POST", path: "/v1/jobs", body: `{"type":"noop","timeout":"25h"}`, status: 422, field: "timeout"},
	{name: "timeout unparseable", method: "POST", path: "/v1/jobs", body: `{"type":"noop","timeout":"soon"}`, status: 422, field: "timeout"},
	{name: "timeout below a millisecond", method: "POST", path: "/v1/jobs", body: `{"type":"noop","timeout":"10us"}`, status: 422, field: "timeout"},
	{name: "backoff_base negative", method: "POST", path: "/v1/jobs", body: `{"type":"noop","backoff_base":"-1s"}`, status: 422, field: "backoff_base"},
	{name: "backoff_max below base", method: "POST", path: "/v1/jobs", body: `{"type":"noop","backoff_base":"1m","backoff_max":"1s"}`, status: 422, field: "backoff_max"},
	{name: "run_at unparseable", method: "POST", path: "/v1/jobs", body: `{"type":"noop","run_at":"tomorrow"}`, status: 422, field: "run_at"},
	{name: "run_at without zone", method: "POST", path: "/v1/jobs", body: `{"type":"noop","run_at":"2030-01-02T15:04:05"}`, status: 422, field: "run_at"},
	{name: "run_at over a year ahead", method: "POST", path: "/v1/jobs", body: fmt.Sprintf(`{"type":"noop","run_at":%q}`, time.Now().AddDate(1, 1, 0).Format(time.RFC3339)), status: 422, field: "run_at"},
	{name: "run_at and delay", method: "POST", path: "/v1/jobs", body: `{"type":"noop","run_at":"2030-01-02T15:04:05Z","delay":"1s"}`, status: 422, field: "delay"},
	{name: "delay negative", method: "POST", path: "/v1/jobs", body: `{"type":"noop","delay":"-5s"}`, status: 422, field: "delay"},
	{name: "delay over a year", method: "POST", path: "/v1/jobs", body: `{"type":"noop","delay":"9000h"}`, status: 422, field: "delay"},
	{name: "idempotency_key too long", method: "POST", path: "/v1/jobs", body: `{"type":"noop","idempotency_key":"` + strings.Repeat("k", 256) + `"}`, status: 422, field: "idempotency_key"},
	{name: "idempotency_key empty", method: "POST", path: "/v1/jobs", body: `{"type":"noop","idempotency_key":""}`, status: 422, field: "idempotency_key"},
	{name: "batch empty", method: "POST", path: "/v1/jobs/batch", body: `{"jobs":[]}`, status: 422, field: "jobs"},
	{name: "batch missing jobs", method: "POST", path: "/v1/jobs/batch", body: `{}`, status: 422, field: "jobs"},
	{name: "batch over max", method: "POST", path: "/v1/jobs/batch", body: `{"jobs":[{"type":"noop"},{"type":"noop"},{"type":"noop"},{"type":"noop"}]}`, status: 422, field: "jobs"},
	{name: "batch one unknown type", method: "POST", path: "/v1/jobs/batch", body: `{"jobs":[{"type":"noop"},{"type":"noop"},{"type":"nope"}]}`, status: 422, field: "jobs[2].type", index: at(2)},
	{name: "batch one bad payload", method: "POST", path: "/v1/jobs/batch", body: `{"jobs":[{"type":"sleep","payload":{"ms":-3}},{"type":"noop"}]}`, status: 422, field: "jobs[0].payload.ms", index: at(0)},
	{name: "batch null element", method: "POST", path: "/v1/jobs/batch", body: `{"jobs":[{"type":"noop"},null]}`, status: 422, field: "jobs[1].type", index: at(1)},

	// 413: too large.
	{name: "payload over limit", method: "POST", path: "/v1/jobs", body: `{"type":"fail","payload":{"message":"` + strings.Repeat("x", testMaxPayload) + `"}}`, status: 413, field: "payload"},
	{name: "body over limit", method: "POST", path: "/v1/jobs", body: `{"type":"fail","payload":{"message":"` + strings.Repeat("x", 100<<10) + `"}}`, status: 413},
	{name: "batch body over limit", method: "POST", path: "/v1/jobs/batch", body: `{"jobs":[{"type":"fail","payload":{"message":"` + strings.Repeat("x", testMaxBatchBytes) + `"}}]}`, status: 413},
	{name: "batch payload over limit", method: "POST", path: "/v1/jobs/batch", body: `{"jobs":[{"type":"noop"},{"type":"fail","payload":{"message":"` + strings.Repeat("x", testMaxPayload) + `"}}]}`, status: 413, field: "jobs[1].payload", index: at(1)},

	// 415: a body that does not say it is JSON.
	{name: "text/plain body", method: "POST", path: "/v1/jobs", body: `{"type":"noop"}`, headers: []string{"Content-Type: text/plain"}, status: 415},
	{name: "no Content-Type", method: "POST", path: "/v1/jobs", body: `{"type":"noop"}`, headers: []string{"Content-Type:"}, status: 415},
	{name: "form body", method: "POST", path: "/v1/jobs/batch", body: `{"jobs":[{"type":"noop"}]}`, headers: []string{"Content-Type: application/x-www-form-urlencoded"}, status: 415},

	// 404: no such job, or no such route.
	{name: "unknown id", method: "GET", path: "/v1/jobs/987654321", status: 404},
	{name: "non-numeric id", method: "GET", path: "/v1/jobs/abc", status: 404},
	{name: "zero id", method: "GET", path: "/v1/jobs/0", status: 404},
	{name: "id out of range", method: "GET", path: "/v1/jobs/99999999999999999999", status: 404},
	{name: "cancel unknown id", method: "POST", path: "/v1/jobs/987654321/cancel", status: 404},
	{name: "retry non-numeric id", method: "POST", path: "/v1/jobs/x/retry", status: 404},
	{name: "unknown route", method: "GET", path: "/v1/nope", status: 404},
	{name: "trailing slash", method: "GET", path: "/v1/jobs/", status: 404},
	{name: "root", method: "GET", path: "/", status: 404},

	// 405: a route that exists, with another method.
	{name: "DELETE a job", method: "DELETE", path: "/v1/jobs/{pending}", status: 405, allow: "GET"},
	{name: "PUT jobs", method: "PUT", path: "/v1/jobs", body: `{"type":"noop"}`, status: 405, allow: "GET, POST"},
	{name: "GET cancel", method: "GET", path: "/v1/jobs/{pending}/cancel", status: 405, allow: "POST"},
	{name: "POST stats", method: "POST", path: "/v1/stats", status: 405, allow: "GET"},

	// 409: a state change the job's status forbids.
	{name: "cancel completed", method: "POST", path: "/v1/jobs/{completed}/cancel", status: 409},
	{name: "cancel dead", method: "POST", path: "/v1/jobs/{dead}/cancel", status: 409},
	{name: "cancel cancelled", method: "POST", path: "/v1/jobs/{cancelled}/cancel", status: 409},
	{name: "retry pending", method: "POST", path: "/v1/jobs/{pending}/retry", status: 409},
	{name: "retry running", method: "POST", path: "/v1/jobs/{running}/retry", status: 409},
	{name: "retry completed", method: "POST", path: "/v1/jobs/{completed}/retry", status: 409},
}

// TestErrors sends every rejected request and checks its status, its error
// body, and that the job table is exactly as it was.
func TestErrors(t *testing.T) {
	t.Parallel()
	f := setup(t, &httpapi.Opts{MaxPayloadBytes: testMaxPayload, MaxBatch: testMaxBatch, MaxBatchBytes: testMaxBatchBytes})
	seeds := map[string]int64{}
	for _, st := range []struct{ status, sql string }{
		{"pending", ""}, {"running", makeRunning}, {"completed", makeCompleted}, {"dead", makeDead},
		{"cancelled", `UPDATE spool.spool_jobs SET status = 'cancelled', finished_at = now() WHERE id = $1`},
	} {
		id := f.enqueue(jobqueue.EnqueueParams{IdempotencyKey: "seed-" + st.status})
		if st.sql != "" {
			f.exec(st.sql, id)
		}
		seeds[st.status] = id
	}
	before := f.snapshot()

	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			for st, id := range seeds {
				path = strings.ReplaceAll(path, "{"+st+"}", fmt.Sprint(id))
			}
			h := f.h
			rec := serve(h, request(tc.method, path, tc.body, tc.headers...))
			checkError(t, rec, tc)
			if after := f.snapshot(); after != before {
				t.Fatalf("job table changed: before %s, after %s", before, after)
			}
		})
	}
}

func checkError(t *testing.T, rec *httptest.ResponseRecorder, tc errorCase) {
	t.Helper()
	res := rec.Result()
	var b errBody
	if res.StatusCode != tc.status {
		t.Fatalf("status = %d, want %d", res.StatusCode, tc.status)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	if err := decodeJSON(res, &b); err != nil || b.Error == "" {
		t.Fatalf("body: %v, %+v; want JSON with an \"error\"", err, b)
	}
	// RFC 9457's members, and error kept equal to detail for older clients.
	if b.Type != "about:blank" || b.Title != http.StatusText(tc.status) || b.Status != tc.status || b.Detail != b.Error {
		t.Errorf("problem = %+v; want type about:blank, title %q, status %d, detail equal to error", b, http.StatusText(tc.status), tc.status)
	}
	if b.RequestID == "" || b.RequestID != res.Header.Get("X-Request-ID") {
		t.Errorf("request_id = %q, header %q; want the same non-empty id", b.RequestID, res.Header.Get("X-Request-ID"))
	}
	if tc.field != "" && b.Field != tc.field {
		t.Errorf("field = %q, want %q (error %q)", b.Field, tc.field, b.Error)
	}
	if tc.index != nil && (b.Index == nil || *b.Index != *tc.index) {
		t.Errorf("index = %v, want %d (error %q)", b.Index, *tc.index, b.Error)
	}
	if tc.allow != "" && res.Header.Get("Allow") != tc.allow {
		t.Errorf("Allow = %q, want %q", res.Header.Get("Allow"), tc.allow)
	}
	if tc.status == 409 && b.JobStatus == "" {
		t.Errorf("409 body has no current status: %+v", b)
	}
	if tc.status == 422 && tc.field == "type" && b.Error != "type: is required" && len(b.KnownTypes) == 0 {
		t.Errorf("unknown type error lists no known types: %+v", b)
	}
}
