package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/jobs"
)

// The fuzz targets run the request path up to, not including, the
// database: decoding, validation and the error mapping. Their invariants:
// nothing panics; a refusal is an *apiError with a 4xx status and a short
// message (anything else would answer 500); an accepted request gives
// parameters within every documented bound, which survive a round trip.

var fuzzLimits = limits{maxPayload: 4096, maxBatch: 5, diagnostic: true}

func fuzzAPI() *api {
	return &api{opts: Opts{MaxPayloadBytes: fuzzLimits.maxPayload, MaxBatchBytes: 16 << 10}, limits: fuzzLimits}
}

func jsonRequest(method, path string, body []byte) *http.Request {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// mustRefuse fails unless err would be answered with a 4xx and a short,
// non-empty message.
func mustRefuse(t *testing.T, err error) *apiError {
	t.Helper()
	var ae *apiError
	if !errors.As(err, &ae) {
		t.Fatalf("error %q (%T) is not an apiError: it would answer 500", err, err)
	}
	if ae.Status < 400 || ae.Status > 499 || ae.Message == "" {
		t.Fatalf("refusal %d %q, want a 4xx with a message", ae.Status, ae.Message)
	}
	if len(ae.Message) > 2*maxMessage || len(ae.Field) > 2*maxEcho+16 {
		t.Fatalf("refusal echoes too much: %d-byte message, %d-byte field", len(ae.Message), len(ae.Field))
	}
	return ae
}

// decodeEnqueue is POST /v1/jobs without the insert.
func decodeEnqueue(body []byte, now time.Time) (jobqueue.EnqueueParams, error) {
	var req enqueueRequest
	if err := decodeBody(httptest.NewRecorder(), jsonRequest("POST", "/v1/jobs", body), fuzzLimits.maxPayload+envelopeBytes, &req); err != nil {
		return jobqueue.EnqueueParams{}, err
	}
	return req.toParams(fuzzLimits, now)
}

// checkParams fails unless p is within every bound the API documents.
func checkParams(t *testing.T, p jobqueue.EnqueueParams, now time.Time) {
	t.Helper()
	payload, ok := p.Payload.(json.RawMessage)
	switch {
	case !fuzzLimits.typeAllowed(p.Type):
		t.Fatalf("accepted type %q", p.Type)
	case !ok || !json.Valid(payload) || jobs.HasNUL(payload):
		t.Fatalf("accepted payload %q, which jsonb cannot store", p.Payload)
	case p.Queue != "" && !queueName.MatchString(p.Queue):
		t.Fatalf("accepted queue %q", p.Queue)
	case p.Priority < minPriority || p.Priority > maxPriority:
		t.Fatalf("accepted priority %d", p.Priority)
	case p.MaxAttempts < 0 || p.MaxAttempts > maxAttemptsLimit:
		t.Fatalf("accepted max_attempts %d", p.MaxAttempts)
	case !p.RunAt.IsZero() && p.RunAt.After(now.Add(maxSchedule)):
		t.Fatalf("accepted run_at %s, over a year after %s", p.RunAt, now)
	case p.IdempotencyKey != "" && (len(p.IdempotencyKey) > maxKeyBytes || !utf8.ValidString(p.IdempotencyKey) || strings.ContainsRune(p.IdempotencyKey, 0)):
		t.Fatalf("accepted idempotency key %q", p.IdempotencyKey)
	case p.BackoffBase > 0 && p.BackoffMax > 0 && p.BackoffMax < p.BackoffBase:
		t.Fatalf("accepted backoff_max %s below backoff_base %s", p.BackoffMax, p.BackoffBase)
	}
	for _, d := range []time.Duration{p.Timeout, p.BackoffBase, p.BackoffMax} {
		if d != 0 && (d < time.Millisecond || d > maxDuration) {
			t.Fatalf("accepted duration %s", d)
		}
	}
	if again, err := jobs.Normalize(p.Type, payload); err != nil || !bytes.Equal(again, payload) {
		t.Fatalf("payload %s is not canonical: normalizes to %s, %v", payload, again, err)
	}
}

// requestFor is the request that asks for exactly p.
func requestFor(p jobqueue.EnqueueParams) []byte {
	req := map[string]any{"type": p.Type, "payload": p.Payload, "priority": p.Priority}
	if p.Queue != "" {
		req["queue"] = p.Queue
	}
	if p.MaxAttempts != 0 {
		req["max_attempts"] = p.MaxAttempts
	}
	if !p.RunAt.IsZero() {
		req["run_at"] = p.RunAt.Format(time.RFC3339Nano)
	}
	for name, d := range map[string]time.Duration{"timeout": p.Timeout, "backoff_base": p.BackoffBase, "backoff_max": p.BackoffMax} {
		if d != 0 {
			req[name] = d.String()
		}
	}
	if p.IdempotencyKey != "" {
		req["idempotency_key"] = p.IdempotencyKey
	}
	b, _ := json.Marshal(req)
	return b
}

func sameParams(a, b jobqueue.EnqueueParams) bool {
	if !a.RunAt.Equal(b.RunAt) {
		return false
	}
	a.RunAt, b.RunAt = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

var enqueueSeeds = []string{
	`{"type":"noop"}`,
	`{"type":"noop","payload":null,"queue":"a.b-c_9","priority":-1000,"max_attempts":100,"timeout":"24h","backoff_base":"1ms","backoff_max":"1ms","idempotency_key":"k"}`,
	`{"type":"send_email","payload":{"to":"a@example.com","subject":"s","body":"<b>&amp;</b>"},"run_at":"2030-06-01T00:00:00.123456789+05:30"}`,
	`{"type":"sleep","payload":{"ms":3600000},"delay":"8760h"}`,
	`{"type":"sleep","payload":{"ms":1e309}}`,
	`{"type":"sleep","priority":9223372036854775808}`,
	`{"type":"noop","priority":-0}`,
	`{"type":"noop","max_attempts":-0}`,
	`{"type":"noop","run_at":"0000-01-01T00:00:00+23:59"}`,
	`{"type":"noop","run_at":"9999-12-31T23:59:59Z"}`,
	`{"type":"noop","delay":"-0s"}`,
	`{"type":"noop","delay":"2562047h47m16.854775807s"}`,
	`{"type":"noop","timeout":"9223372036854775807ns"}`,
	`{"type":"noop","idempotency_key":"\u0000"}`,
	`{"type":"fail","payload":{"message":"\u0000"}}`,
	`{"type":"fail","payload":{"message":"\\u0000"}}`,
	`{"type":"noop","type":"fail"}`,
	`{"type":"noop","payload":{"seq":1,"seq":2}}`,
	`{"type":"noop","Type":"fail"}`,
	`{"type":"noop","queue":"x' OR '1'='1"}`,
	`{"type":"noop; DROP TABLE spool_jobs; --"}`,
	"{\"type\":\"noop\",\"idempotency_key\":\"\xff\"}",
	`{"type":"noop"}}`,
	`{"type":"noop"} []`,
	`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`,
	`{"type":"fail","payload":{"message":"` + strings.Repeat("x", 5000) + `"}}`,
	`{"type":"` + strings.Repeat("t", 300) + `"}`,
}

func FuzzEnqueueRequest(f *testing.F) {
	for _, s := range enqueueSeeds {
		f.Add([]byte(s))
	}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodeEnqueue(body, now)
		if err != nil {
			mustRefuse(t, err)
			return
		}
		checkParams(t, p, now)
		again, err := decodeEnqueue(requestFor(p), now)
		if err != nil || !sameParams(again, p) {
			t.Fatalf("round trip of %+v: %+v, %v", p, again, err)
		}
	})
}

func FuzzBatchRequest(f *testing.F) {
	for _, s := range enqueueSeeds[:8] {
		f.Add([]byte(`{"jobs":[` + s + `]}`))
	}
	for _, s := range []string{
		`{"jobs":[]}`, `{}`, `{"jobs":null}`, `{"jobs":[null]}`, `{"jobs":{}}`, `{"jobs":[1,"x",[]]}`,
		`{"jobs":[{"type":"noop"},{"type":"noop"},{"type":"noop"},{"type":"noop"},{"type":"noop"},{"type":"noop"}]}`,
		`{"jobs":[{"type":"noop","idempotency_key":"a"},{"type":"noop","idempotency_key":"a"}]}`,
		`{"jobs":[{"type":"noop"}],"jobs":[]}`,
		`{"jobs":[{"type":"noop","prio":1}]}`,
	} {
		f.Add([]byte(s))
	}
	a := fuzzAPI()
	f.Fuzz(func(t *testing.T, body []byte) {
		var req struct {
			Jobs []json.RawMessage `json:"jobs"`
		}
		err := decodeBody(httptest.NewRecorder(), jsonRequest("POST", "/v1/jobs/batch", body), a.opts.MaxBatchBytes, &req)
		var params []jobqueue.EnqueueParams
		if err == nil {
			params, err = a.batchParams(req.Jobs)
		}
		if err != nil {
			ae := mustRefuse(t, err)
			if ae.Index != nil {
				i := *ae.Index
				if i < 0 || i >= len(req.Jobs) || !strings.HasPrefix(ae.Field, fmt.Sprintf("jobs[%d]", i)) {
					t.Fatalf("refusal points at element %d, field %q, of %d", i, ae.Field, len(req.Jobs))
				}
			}
			return
		}
		if len(params) == 0 || len(params) > fuzzLimits.maxBatch || len(params) != len(req.Jobs) {
			t.Fatalf("accepted a batch of %d jobs from %d elements", len(params), len(req.Jobs))
		}
		for _, p := range params {
			checkParams(t, p, time.Now())
		}
	})
}

func FuzzListParams(f *testing.F) {
	for _, q := range []string{
		"", "status=dead&type=noop&queue=emails&limit=500&after=9223372036854775807",
		"status=pending&status=dead", "limit=0", "limit=-1", "limit=1e3", "limit=501", "after=0", "after=-1",
		"after=9223372036854775808", "type=%00", "type=%FF%FE", "type=x%27%20OR%20%271%27%3D%271", "queue=a;b",
		"queue=%27%3B%20DROP%20TABLE%20spool_jobs%3B--", "status=pending%27--", "status=%E2%80%AEdead", "%zz=1&limit=%",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		r := &http.Request{Method: "GET", URL: &url.URL{Path: "/v1/jobs", RawQuery: rawQuery}}
		p, err := listParams(r)
		if err != nil {
			ae := mustRefuse(t, err)
			if ae.Status != http.StatusBadRequest || ae.Field == "" {
				t.Fatalf("refusal %d on field %q, want 400 naming the field", ae.Status, ae.Field)
			}
			return
		}
		switch {
		case p.Status != "" && !p.Status.Valid():
			t.Fatalf("accepted status %q", p.Status)
		case !typeFilter(p.Type):
			t.Fatalf("accepted type filter %q", p.Type)
		case p.Queue != "" && !queueName.MatchString(p.Queue):
			t.Fatalf("accepted queue %q", p.Queue)
		case p.Limit < 1 || p.Limit > maxListLimit:
			t.Fatalf("accepted limit %d", p.Limit)
		case p.After < 0:
			t.Fatalf("accepted after %d", p.After)
		}
	})
}

func FuzzLimitRequest(f *testing.F) {
	for _, s := range []struct{ scope, name, body string }{
		{"queue", "emails", `{"max_running":2}`},
		{"type", "send_email", `{"rate_per_second":20,"burst":5}`},
		{"type", "noop", `{"max_running":1,"rate_per_second":0.001,"burst":100000}`},
		{"queue", "emails", `{}`},
		{"queue", "emails", `{"max_running":0}`},
		{"queue", "emails", `{"max_running":100001}`},
		{"queue", "emails", `{"rate_per_second":-0}`},
		{"queue", "emails", `{"rate_per_second":1e-300}`},
		{"queue", "emails", `{"rate_per_second":1e309}`},
		{"queue", "emails", `{"rate_per_second":5e-324}`},
		{"queue", "emails", `{"max_running":1,"burst":-1}`},
		{"queue", "emails", `{"max_running":1,"burst":9223372036854775808}`},
		{"queue", "Emails", `{"max_running":1}`},
		{"type", "nope", `{"max_running":1}`},
		{"planet", "mars", `{"max_running":1}`},
		{"queue", "x' OR 1=1 --", `{"max_running":1}`},
	} {
		f.Add(s.scope, s.name, []byte(s.body))
	}
	a := fuzzAPI()
	f.Fuzz(func(t *testing.T, scope, name string, body []byte) {
		r := mux.SetURLVars(jsonRequest("PUT", "/v1/limits/x/y", body), map[string]string{"scope": scope, "name": name})
		l, err := a.limitRequest(httptest.NewRecorder(), r)
		if err != nil {
			mustRefuse(t, err)
			return
		}
		switch {
		case l.Validate() != nil:
			t.Fatalf("accepted %+v, which the queue refuses: %v", l, l.Validate())
		case l.Scope != scope || l.Name != name:
			t.Fatalf("limit %s/%s from %s/%s", l.Scope, l.Name, scope, name)
		case l.Scope == jobqueue.ScopeQueue && !queueName.MatchString(l.Name), l.Scope == jobqueue.ScopeType && !fuzzLimits.typeAllowed(l.Name):
			t.Fatalf("accepted %s name %q", l.Scope, l.Name)
		case l.Burst < 1:
			t.Fatalf("accepted burst %d", l.Burst)
		case l.RatePerSecond != nil && (*l.RatePerSecond < minRatePerSecond || math.IsInf(*l.RatePerSecond, 0)):
			t.Fatalf("accepted rate %g", *l.RatePerSecond)
		}
	})
}

func FuzzScheduleRequest(f *testing.F) {
	for _, s := range []struct{ name, body string }{
		{"daily", `{"spec":"0 9 * * *","timezone":"Europe/Berlin","type":"send_email","payload":{"to":"ops@example.com","subject":"daily"},"queue":"emails","priority":3,"catch_up":true}`},
		{"x", `{"name":"x","spec":"@every 1s","type":"noop"}`},
		{"x", `{"name":"y","spec":"@hourly","type":"noop"}`},
		{"x", `{"spec":"@hourly","type":"noop","source":"file","last_tick":"2020-01-01T00:00:00Z","next_run":"2020-01-01T00:00:00Z","created_at":"2020-01-01T00:00:00Z"}`},
		{"x", `{"spec":"@hourly","type":"noop","created_at":"not a time"}`},
		{"x", `{"spec":"@hourly","type":"fail","payload":{"message":"\u0000"}}`},
		{"x", `{"spec":"@hourly","type":"fail","payload":{"message":"` + strings.Repeat("x", 5000) + `"}}`},
		{"x", `{"spec":"@every 10ms","type":"noop"}`},
		{"x", `{"spec":"@hourly","type":"noop","timezone":"Local"}`},
		{"x", `{"spec":"@hourly","type":"noop","timezone":"../../../etc/passwd"}`},
		{"x", `{"spec":"@hourly","type":"noop","priority":1e309}`},
		{"bad name", `{"spec":"@hourly","type":"noop"}`},
		{"x'; DROP TABLE spool_schedules;--", `{"spec":"@hourly","type":"noop"}`},
		{"x", `{"spec":"' OR 1=1 --","type":"noop"}`},
	} {
		f.Add(s.name, []byte(s.body))
	}
	a := fuzzAPI()
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		r := mux.SetURLVars(jsonRequest("PUT", "/v1/schedules/x", body), map[string]string{"name": name})
		if n, err := scheduleName(r); err == nil && n != name {
			t.Fatalf("scheduleName = %q from %q", n, name)
		}
		s, err := a.scheduleRequest(httptest.NewRecorder(), r)
		if err != nil {
			mustRefuse(t, scheduleError(err))
			return
		}
		if s.Name != name || s.Source != "api" || s.LastTick != nil || !fuzzLimits.typeAllowed(s.Type) || jobs.HasNUL(s.Payload) {
			t.Fatalf("accepted %+v from name %q", s, name)
		}
		if _, err := scheduleName(r); err != nil {
			t.Fatalf("accepted name %q that GET and DELETE refuse", name)
		}
		for _, v := range []string{s.Spec, s.Timezone, s.Queue} {
			if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				t.Fatalf("accepted %q, which text columns cannot hold", v)
			}
		}
		again := *s
		if err := again.Validate(); err != nil || !reflect.DeepEqual(&again, s) {
			t.Fatalf("validating %+v again: %v, %+v", s, err, again)
		}
	})
}
