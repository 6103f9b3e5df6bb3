package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/diagnostic"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/schedule"
)

// The fuzz targets run the request path up to, not including, the
// database: decoding, validation and the error mapping. Their invariants:
// nothing panics; a refusal is an *apiError with a 4xx status and a short
// message (anything else would answer 500); an accepted request gives
// parameters within every documented bound, which survive a round trip.

// The fuzzed API's limits.
const (
	fuzzMaxPayload = 4096
	fuzzMaxBatch   = 5
)

func fuzzAPI() *api {
	return &api{opts: Opts{MaxPayloadBytes: fuzzMaxPayload, MaxBatchBytes: 16 << 10, MaxBatch: fuzzMaxBatch}}
}

// containsNUL reports whether a JSON payload holds U+0000 in a string,
// which jsonb cannot store.
func containsNUL(payload []byte) bool {
	var v any
	if json.Unmarshal(payload, &v) != nil {
		return false
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case string:
			return strings.ContainsRune(v, 0)
		case []any:
			return slices.ContainsFunc(v, walk)
		case map[string]any:
			for k, e := range v {
				if strings.ContainsRune(k, 0) || walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
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
	// toAPIError is what writeError answers with, so this is the response.
	ae := toAPIError(err)
	if ae.Status < 400 || ae.Status > 499 || ae.Message == "" {
		t.Fatalf("error %q (%T) answers %d %q, want a 4xx with a message", err, err, ae.Status, ae.Message)
	}
	if len(ae.Message) > 2*maxMessage || len(ae.Field) > 2*maxEcho+16 {
		t.Fatalf("refusal echoes too much: %d-byte message, %d-byte field", len(ae.Message), len(ae.Field))
	}
	return ae
}

// exactKeys fails unless every key of the object raw, and of the objects
// in its struct-typed fields, is exactly (case-sensitively) one of typ's
// JSON field names, and none is there twice: what the strict decoder
// accepted must mean one thing to every JSON reader, whether it matches
// names case-insensitively (encoding/json) or keeps the first or the last
// of two. It reads raw with encoding/json's tokenizer, independent of the
// decoder under test.
func exactKeys(t *testing.T, raw []byte, typ reflect.Type) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case typ == reflect.TypeFor[time.Time]():
		return
	case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Struct:
		var elems []json.RawMessage
		_ = json.Unmarshal(raw, &elems)
		for _, e := range elems {
			exactKeys(t, e, typ.Elem())
		}
		return
	case typ.Kind() != reflect.Struct:
		return
	}
	fields := jsonFields(typ)
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return // null, or no body at all
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("accepted %q, which encoding/json cannot read: %v", raw, err)
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			t.Fatalf("accepted %q, which encoding/json cannot read: %v", raw, err)
		}
		ft, known := fields[key]
		if !known || seen[key] {
			t.Fatalf("accepted key %q in a %s (an exact field name: %v; seen before: %v) in %q", key, typ, known, seen[key], raw)
		}
		seen[key] = true
		exactKeys(t, val, ft)
	}
}

// jsonFields maps the JSON names of a struct's fields, embedded structs'
// included, to their types.
func jsonFields(typ reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range typ.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case tag == "-":
		case f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct:
			maps.Copy(out, jsonFields(f.Type))
		case tag != "":
			out[tag] = f.Type
		case f.IsExported():
			out[f.Name] = f.Type
		}
	}
	return out
}

// loneSurrogate reports whether the JSON text b escapes a UTF-16 surrogate
// that is not half of a pair (high, then low): encoding/json read every
// such one as U+FFFD, so \ud800 and \udfff were one idempotency key.
func loneSurrogate(b []byte) bool {
	hex4 := func(i int) (uint64, bool) {
		if i+4 > len(b) {
			return 0, false
		}
		r, err := strconv.ParseUint(string(b[i:i+4]), 16, 16)
		return r, err == nil
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		i++ // the escaped character: \\ is one escape, not the start of another
		if i >= len(b) || b[i] != 'u' {
			continue
		}
		r, ok := hex4(i + 1)
		if !ok {
			continue
		}
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		case r >= 0xD800 && r <= 0xDBFF:
			lo, ok := hex4(i + 3)
			if i+2 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' || !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}

// checkStrict fails unless an accepted body is keyed exactly as typ and
// holds no lone surrogate.
func checkStrict(t *testing.T, body []byte, typ reflect.Type) {
	t.Helper()
	exactKeys(t, body, typ)
	if loneSurrogate(body) {
		t.Fatalf("accepted %q, which escapes a lone surrogate", body)
	}
}

// decodeEnqueue is POST /v1/jobs without the insert.
func decodeEnqueue(body []byte, now time.Time) (jobqueue.EnqueueParams, error) {
	var req enqueueRequest
	if err := decodeBody(httptest.NewRecorder(), jsonRequest("POST", "/v1/jobs", body), fuzzMaxPayload+envelopeBytes, &req); err != nil {
		return jobqueue.EnqueueParams{}, err
	}
	return req.check(now)
}

// checkParams fails unless p is within every bound the API documents.
func checkParams(t *testing.T, p jobqueue.EnqueueParams, now time.Time) {
	t.Helper()
	payload, ok := p.Payload.(json.RawMessage)
	switch {
	case jobqueue.CheckKindName(p.Kind) != nil:
		t.Fatalf("accepted type %q", p.Kind)
	case !ok || (len(payload) > 0 && !json.Valid(payload)) || containsNUL(payload):
		t.Fatalf("accepted payload %q, which jsonb cannot store", p.Payload)
	case p.Queue != "" && jobqueue.CheckQueueName(p.Queue) != nil:
		t.Fatalf("accepted queue %q", p.Queue)
	case p.Priority < jobqueue.MinPriority || p.Priority > jobqueue.MaxPriority:
		t.Fatalf("accepted priority %d", p.Priority)
	case p.MaxAttempts < 0 || p.MaxAttempts > maxAttempts:
		t.Fatalf("accepted max_attempts %d", p.MaxAttempts)
	case !p.RunAt.IsZero() && p.RunAt.After(now.Add(maxSchedule)):
		t.Fatalf("accepted run_at %s, over a year after %s", p.RunAt, now)
	case p.IdempotencyKey != "" && (len(p.IdempotencyKey) > jobqueue.MaxKeyBytes || !utf8.ValidString(p.IdempotencyKey) || strings.ContainsRune(p.IdempotencyKey, 0)):
		t.Fatalf("accepted idempotency key %q", p.IdempotencyKey)
	case p.BackoffBase > 0 && p.BackoffMax > 0 && p.BackoffMax < p.BackoffBase:
		t.Fatalf("accepted backoff_max %s below backoff_base %s", p.BackoffMax, p.BackoffBase)
	}
	for _, d := range []time.Duration{p.Timeout, p.BackoffBase, p.BackoffMax} {
		if d != 0 && (d < time.Millisecond || d > jobqueue.MaxJobDuration) {
			t.Fatalf("accepted duration %s", d)
		}
	}
}

// requestFor is the request that asks for exactly p.
func requestFor(p jobqueue.EnqueueParams) []byte {
	b, _ := json.Marshal(requestFields(p))
	return b
}

// requestFields are the fields of the request that asks for exactly p.
func requestFields(p jobqueue.EnqueueParams) map[string]any {
	req := map[string]any{"type": p.Kind, "payload": p.Payload, "priority": p.Priority}
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
	return req
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
	`{"type":"fail","payload":{"message":"<b>&amp;</b>"},"run_at":"2030-06-01T00:00:00.123456789+05:30"}`,
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
	`{"type":"noop","TYPE":"fail"}`,
	`{"TYPE":"noop"}`,
	`{"type":"noop","idempotency_\u212aey":"k"}`,
	"{\"type\":\"noop\",\"idempotency_\u212aey\":\"k\"}",
	`{"type":"noop","idempotency_key":"\ud800"}`,
	`{"type":"noop","idempotency_key":"\udbff"}`,
	`{"type":"noop","idempotency_key":"\udfff"}`,
	`{"type":"noop","idempotency_key":"\ud83d\ude00"}`,
	`{"type":"noop","idempotency_key":"\\ud800"}`,
	`{"type":"fail","payload":{"message":"\udc00\ud800"}}`,
	`{"type":"noop","queue":"x' OR '1'='1"}`,
	`{"type":"noop; DROP TABLE spool.spool_jobs; --"}`,
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
		checkStrict(t, body, reflect.TypeFor[enqueueRequest]())
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
		`{"jobs":[{"type":"noop","TYPE":"fail"}]}`,
		`{"jobs":[{"type":"noop"}],"JOBS":[]}`,
		`{"jobs":[{"type":"noop","idempotency_\u212aey":"a"},{"type":"noop","idempotency_key":"a"}]}`,
		`{"jobs":[{"type":"noop","idempotency_key":"\ud800"},{"type":"noop","idempotency_key":"\udfff"}]}`,
	} {
		f.Add([]byte(s))
	}
	a := fuzzAPI()
	f.Fuzz(func(t *testing.T, body []byte) {
		var req struct {
			Jobs []json.RawMessage `json:"jobs"`
		}
		err := decodeBody(httptest.NewRecorder(), jsonRequest("POST", "/v1/jobs/batch", body), a.opts.MaxBatchBytes, &req)
		var reqs []enqueueRequest
		if err == nil {
			reqs, err = a.batchRequests(req.Jobs)
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
		checkStrict(t, body, reflect.TypeFor[struct {
			Jobs []enqueueRequest `json:"jobs"`
		}]())
		if len(reqs) == 0 || len(reqs) > fuzzMaxBatch || len(reqs) != len(req.Jobs) {
			t.Fatalf("accepted a batch of %d jobs from %d elements", len(reqs), len(req.Jobs))
		}
		for _, r := range reqs {
			p, err := r.check(time.Now())
			if err != nil {
				t.Fatalf("accepted element %+v that does not check: %v", r, err)
			}
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
		case !typeFilter(p.Kind):
			t.Fatalf("accepted type filter %q", p.Kind)
		case p.Queue != "" && jobqueue.CheckQueueName(p.Queue) != nil:
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
		{"host", "api.example.com", `{"rate_per_second":5}`},
		{"host", "API.example.com", `{"rate_per_second":5}`},
		{"host", "127.0.0.1", `{"max_running":1}`},
		{"queue", "x' OR 1=1 --", `{"max_running":1}`},
	} {
		f.Add(s.scope, s.name, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, scope, name string, body []byte) {
		r := jsonRequest("PUT", "/v1/limits/x/y", body)
		err := limitName(scope, name)
		var l jobqueue.Limit
		if err == nil {
			l, err = limitBody(httptest.NewRecorder(), r, scope, name)
		}
		if err != nil {
			mustRefuse(t, toAPIError(err))
			return
		}
		switch {
		case jobqueue.CheckLimit(l) != nil:
			t.Fatalf("accepted %+v, which the queue refuses: %v", l, jobqueue.CheckLimit(l))
		case l.Scope != scope || l.Name != name:
			t.Fatalf("limit %s/%s from %s/%s", l.Scope, l.Name, scope, name)
		case l.Scope == jobqueue.ScopeQueue && jobqueue.CheckQueueName(l.Name) != nil, l.Scope == jobqueue.ScopeKind && jobqueue.CheckKindName(l.Name) != nil,
			l.Scope == jobqueue.ScopeHost && (jobqueue.CheckHostName(l.Name) != nil || l.MaxRunning != nil):
			t.Fatalf("accepted %s name %q", l.Scope, l.Name)
		case l.Burst < 1:
			t.Fatalf("accepted burst %d", l.Burst)
		case l.RatePerSecond != nil && (*l.RatePerSecond < jobqueue.MinRatePerSecond || *l.RatePerSecond > 1e6):
			t.Fatalf("accepted rate %g", *l.RatePerSecond)
		}
	})
}

func FuzzScheduleRequest(f *testing.F) {
	for _, s := range []struct{ name, body string }{
		{"daily", `{"spec":"0 9 * * *","timezone":"Europe/Berlin","type":"fail","payload":{"message":"daily"},"queue":"emails","priority":3,"catch_up":true}`},
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
		{"x'; DROP TABLE spool.spool_schedules;--", `{"spec":"@hourly","type":"noop"}`},
		{"x", `{"spec":"' OR 1=1 --","type":"noop"}`},
		{"x", `{"spec":"@hourly","type":"noop","TYPE":"fail"}`},
		{"x", `{"spec":"@hourly","type":"noop","\u212aind":"x"}`},
		{"x", `{"spec":"@hourly","type":"noop","queue":"\ud800"}`},
		{"x", `{"spec":"@hourly","type":"fail","payload":{"message":"\udfff"}}`},
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
		if err == nil {
			err = s.Validate(context.Background(), fuzzKinds)
		}
		if err != nil {
			mustRefuse(t, scheduleError(err))
			return
		}
		checkStrict(t, body, reflect.TypeFor[schedule.Schedule]())
		if s.Name != name || s.Source != "api" || s.LastTick != nil || jobqueue.CheckKindName(s.Type) != nil || containsNUL(s.Payload) {
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
		if err := again.Validate(context.Background(), fuzzKinds); err != nil || !reflect.DeepEqual(&again, s) {
			t.Fatalf("validating %+v again: %v, %+v", s, err, again)
		}
	})
}

// decodeWorkflow is POST /v1/workflows without the insert; req is nil
// unless the body decoded (a decoder error may leave it half filled).
func decodeWorkflow(a *api, body []byte) (*workflowRequest, jobqueue.WorkflowParams, error) {
	var req workflowRequest
	if err := decodeBody(httptest.NewRecorder(), jsonRequest("POST", "/v1/workflows", body), a.opts.MaxBatchBytes, &req); err != nil {
		return nil, jobqueue.WorkflowParams{}, err
	}
	p, err := a.workflowParams(req, "fuzz-request")
	return &req, p, err
}

// storableName reports whether s may name a workflow or a step.
func storableName(s string) bool {
	return s != "" && len(s) <= 128 && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// acyclic reports whether the steps' dependencies, all known, form a DAG,
// by depth-first search: an independent check of the queue's Kahn's
// algorithm.
func acyclic(steps []jobqueue.WorkflowStep) bool {
	deps := map[string][]string{}
	for _, s := range steps {
		deps[s.Name] = s.DependsOn
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var visit func(string) bool
	visit = func(n string) bool {
		switch state[n] {
		case onPath:
			return false
		case done:
			return true
		}
		state[n] = onPath
		for _, d := range deps[n] {
			if !visit(d) {
				return false
			}
		}
		state[n] = done
		return true
	}
	for _, s := range steps {
		if !visit(s.Name) {
			return false
		}
	}
	return true
}

// workflowRequestFor is the request that asks for exactly p.
func workflowRequestFor(p jobqueue.WorkflowParams) []byte {
	steps := make([]map[string]any, len(p.Steps))
	for i, s := range p.Steps {
		m := requestFields(s.Params)
		m["name"], m["depends_on"], m["continue_on_failure"] = s.Name, s.DependsOn, s.ContinueOnFailure
		steps[i] = m
	}
	b, _ := json.Marshal(map[string]any{"name": p.Name, "steps": steps})
	return b
}

func FuzzWorkflowRequest(f *testing.F) {
	for _, s := range []string{
		`{"name":"fan","steps":[{"name":"start","type":"noop"},{"name":"a","type":"noop","depends_on":["start"]},{"name":"b","type":"sleep","payload":{"ms":1},"depends_on":["start"],"continue_on_failure":true},{"name":"end","type":"noop","depends_on":["a","b"],"queue":"emails","priority":5}]}`,
		`{"name":"w","steps":[{"name":"a","type":"send_email","payload":{"to":"a@example.com","subject":"s","body":"b"},"max_attempts":3,"timeout":"30s","backoff_base":"1s","backoff_max":"1m"}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop","depends_on":["b"]},{"name":"b","type":"noop","depends_on":["a"]}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop","depends_on":["a"]}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop","depends_on":["ghost"]}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop"},{"name":"b","type":"noop","depends_on":["a","a"]}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop"},{"name":"a","type":"noop"}]}`,
		`{"name":"w","steps":[]}`,
		`{"name":"w","steps":null}`,
		`{"name":"","steps":[{"name":"a","type":"noop"}]}`,
		`{"name":"w","steps":[{"name":"","type":"noop"}]}`,
		`{"name":"w\u0000","steps":[{"name":"a","type":"noop"}]}`,
		`{"name":"w","steps":[{"name":"\u0000","type":"noop"},{"name":"b","type":"noop","depends_on":["\u0000"]}]}`,
		`{"name":"w","steps":[{"name":"a\ud800","type":"noop"}]}`,
		"{\"name\":\"w\xff\",\"steps\":[{\"name\":\"a\",\"type\":\"noop\"}]}",
		`{"name":"w","steps":[{"name":"a","type":"noop","run_at":"2030-01-01T00:00:00Z"}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop","delay":"1s"}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop","idempotency_key":"k"}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop"},{"name":"b","type":"noop","priority":1001}]}`,
		`{"name":"w","steps":[{"name":"a","type":"fail","payload":{"message":"\u0000"}}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop"},{"name":"b","type":"noop"},{"name":"c","type":"noop"},{"name":"d","type":"noop"},{"name":"e","type":"noop"},{"name":"f","type":"noop"}]}`,
		`{"name":"w","name":"v","steps":[{"name":"a","type":"noop"}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop","colour":1}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop","depends_on":"a"}]}`,
		`{"name":"` + strings.Repeat("w", 129) + `","steps":[{"name":"a","type":"noop"}]}`,
		`{"name":"` + strings.Repeat("é", 64) + `","steps":[{"name":"a","type":"noop"}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop","depends_on":["` + strings.Repeat("d", 1000) + `"]}]}`,
		`{"name":"x'); DROP TABLE spool.spool_workflows; --","steps":[{"name":"' OR 1=1","type":"noop"}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop","TYPE":"fail"}]}`,
		`{"name":"w","Steps":[],"steps":[{"name":"a","type":"noop"}]}`,
		`{"name":"w","steps":[{"name":"a","type":"noop","depends_on":[],"DEPENDS_ON":["a"]}]}`,
		`{"name":"w","steps":[{"name":"\udbff","type":"noop"}]}`,
	} {
		f.Add([]byte(s))
	}
	a := fuzzAPI()
	f.Fuzz(func(t *testing.T, body []byte) {
		req, p, err := decodeWorkflow(a, body)
		if err != nil {
			ae := mustRefuse(t, err)
			if req == nil {
				return
			}
			if len(req.Steps) > a.opts.MaxBatch && ae.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("%d steps refused with %d %q, want 413", len(req.Steps), ae.Status, ae.Message)
			}
			if ae.Index != nil {
				i := *ae.Index
				if i < 0 || i >= len(req.Steps) || !strings.HasPrefix(ae.Field, fmt.Sprintf("steps[%d]", i)) {
					t.Fatalf("refusal points at step %d, field %q, of %d", i, ae.Field, len(req.Steps))
				}
			}
			return
		}
		switch {
		case p.Name != req.Name || !storableName(p.Name):
			t.Fatalf("accepted workflow name %q (from %q)", p.Name, req.Name)
		case len(p.Steps) == 0 || len(p.Steps) > a.opts.MaxBatch || len(p.Steps) != len(req.Steps):
			t.Fatalf("accepted %d steps from %d", len(p.Steps), len(req.Steps))
		case p.OnFailure != nil || p.RequestID != "fuzz-request":
			t.Fatalf("accepted on_failure %v, request id %q", p.OnFailure, p.RequestID)
		case !acyclic(p.Steps):
			t.Fatalf("accepted a cycle: %+v", p.Steps)
		}
		checkStrict(t, body, reflect.TypeFor[workflowRequest]())
		names := map[string]bool{}
		for _, s := range p.Steps {
			if !storableName(s.Name) || names[s.Name] {
				t.Fatalf("accepted step name %q (unstorable or twice)", s.Name)
			}
			names[s.Name] = true
		}
		for i, s := range p.Steps {
			deps := map[string]bool{}
			for _, d := range s.DependsOn {
				if !names[d] || deps[d] {
					t.Fatalf("step %q accepted with dependency %q (unknown or twice)", s.Name, d)
				}
				deps[d] = true
			}
			if s.ContinueOnFailure != req.Steps[i].ContinueOnFailure || s.Params.RequestID != p.RequestID ||
				!s.Params.RunAt.IsZero() || s.Params.IdempotencyKey != "" {
				t.Fatalf("step %d accepted as %+v from %+v", i, s, req.Steps[i])
			}
			q := s.Params
			q.RequestID = ""
			checkParams(t, q, time.Now())
		}
		if err := jobqueue.ValidateWorkflow(p); err != nil {
			t.Fatalf("accepted %+v, which the queue refuses: %v", p, err)
		}
		_, again, err := decodeWorkflow(a, workflowRequestFor(p))
		if err != nil || !reflect.DeepEqual(normalDeps(again), normalDeps(p)) {
			t.Fatalf("round trip of %+v: %+v, %v", p, again, err)
		}
	})
}

// normalDeps is p with empty dependency lists nil, which JSON cannot tell
// apart.
func normalDeps(p jobqueue.WorkflowParams) jobqueue.WorkflowParams {
	p.Steps = slices.Clone(p.Steps)
	for i := range p.Steps {
		if len(p.Steps[i].DependsOn) == 0 {
			p.Steps[i].DependsOn = nil
		}
	}
	return p
}

// decodeDeadFilter is POST /v1/dead/retry up to the update.
func decodeDeadFilter(body []byte) (deadFilter, error) {
	return deadFilterBody(httptest.NewRecorder(), jsonRequest("POST", "/v1/dead/retry", body))
}

func FuzzDeadFilter(f *testing.F) {
	for _, s := range []struct{ body, query string }{
		{``, `all=true`},
		{`{}`, ``},
		{`{"type":"send_email","queue":"emails"}`, `type=send_email&queue=emails`},
		{`{"type":"noop"}`, `type=noop&type=fail`},
		{`{"queue":"a.b-c_9"}`, `queue=a.b-c_9&all=false`},
		{`{"type":"` + strings.Repeat("t", 129) + `"}`, `type=` + strings.Repeat("t", 129)},
		{`{"type":"\u0000"}`, `type=%00`},
		{`{"queue":"\u0000"}`, `queue=%00`},
		{"{\"type\":\"\xff\"}", `type=%FF%FE`},
		{`{"type":"\ud800"}`, `type=%ED%A0%80`},
		{`{"queue":"Emails"}`, `queue=Emails`},
		{`{"type":"noop","type":"fail"}`, `type=noop;queue=x`},
		{`{"type":"noop","colour":"red"}`, `%zz=1&type=%`},
		{`{"type":1}`, `queue=x'%20OR%20'1'='1`},
		{`null`, `type=noop'--`},
		{`[]`, `all=true&type=`},
		{`{"type":"x' OR '1'='1","queue":"'; DROP TABLE spool.spool_jobs; --"}`, `type=%27%3B%20DROP%20TABLE%20spool_jobs%3B--`},
		{`{"id":42}`, `id=42`},
		{`{"id":-1}`, `id=-1`},
		{`{"id":1e3}`, `id=1e3`},
		{`{"id":"7"}`, `id=9223372036854775808`},
		{`{"id":0,"type":"noop"}`, `id=&type=noop`},
		{`{"type":"noop","TYPE":"fail"}`, `type=noop`},
		{`{"\u212a":1,"type":"\udfff"}`, `type=noop`},
	} {
		f.Add([]byte(s.body), s.query)
	}
	storable := func(t *testing.T, fl deadFilter) {
		t.Helper()
		switch {
		case len(fl.Type) > 128 || !utf8.ValidString(fl.Type) || strings.ContainsRune(fl.Type, 0):
			t.Fatalf("accepted type filter %q", fl.Type)
		case fl.Queue != "" && jobqueue.CheckQueueName(fl.Queue) != nil:
			t.Fatalf("accepted queue filter %q", fl.Queue)
		case fl.ID < 0:
			t.Fatalf("accepted id %d", fl.ID)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, rawQuery string) {
		// POST /v1/dead/retry: the filter in the body.
		fl, err := decodeDeadFilter(body)
		if err != nil {
			mustRefuse(t, err)
		} else {
			storable(t, fl)
			checkStrict(t, body, reflect.TypeFor[deadFilter]())
			b, _ := json.Marshal(fl)
			if again, err := decodeDeadFilter(b); err != nil || again != fl {
				t.Fatalf("round trip of %+v: %+v, %v", fl, again, err)
			}
		}
		// DELETE /v1/dead: the filter in the query.
		fl, err = deadFilterQuery((&url.URL{RawQuery: rawQuery}).Query())
		if err != nil {
			if ae := mustRefuse(t, err); ae.Status != http.StatusUnprocessableEntity || ae.Field == "" {
				t.Fatalf("refusal %d on field %q, want 422 naming the field", ae.Status, ae.Field)
			}
			return
		}
		storable(t, fl)
	})
}

// fuzzKinds validates payloads against the kinds' Go types in memory, as the
// catalog validates them against their published schemas.
var fuzzKinds = func() catalog.Local {
	k := jobqueue.NewKinds()
	diagnostic.Add(k)
	return catalog.Local{Kinds: k}
}()

func TestLoneSurrogate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		`"a"`: false, `"\ud83d\ude00"`: false, `"\\ud800"`: false, `"\\\ud800"`: true, `"\ud800"`: true,
		`"\udbff"`: true, `"\udfff"`: true, `"\udc00\ud800"`: true, `"\ud800\u0041"`: true, `"\ud800x"`: true,
		`"\uD83D\uDE00"`: false, `"\ud800\ud800\udc00"`: true, `{"\udfff":1}`: true,
	} {
		if got := loneSurrogate([]byte(in)); got != want {
			t.Errorf("loneSurrogate(%s) = %v, want %v", in, got, want)
		}
	}
}
