package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/jobqueue"
)

// flowState is a snapshot of everything the flow routes write.
func (f *fixture) flowState() string {
	f.t.Helper()
	var s string
	err := f.db.Pool.QueryRow(context.Background(), `SELECT concat_ws('|',
		(SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY name), '')) FROM spool.spool_queues t),
		(SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY scope, name), '')) FROM spool.spool_limits t),
		(SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY name), '')) FROM spool.spool_schedules t))`).Scan(&s)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.snapshot() + "|" + s
}

func TestDeadLetterRoutes(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	var dead []int64
	for _, p := range []jobqueue.EnqueueParams{{Kind: "noop"}, {Kind: "noop", Queue: "emails"}, {Kind: "send_email", Payload: map[string]string{"to": "a@b.c", "subject": "s"}}} {
		id := f.enqueue(p)
		f.exec(makeDead, id)
		dead = append(dead, id)
	}
	list := mustStatus[struct{ Jobs []wireJob }](t, f.do("GET", "/v1/jobs?status=dead&type=noop", ""), 200)
	if len(list.Jobs) != 2 {
		t.Fatalf("dead noop jobs listed = %d, want 2", len(list.Jobs))
	}
	got := mustStatus[map[string]int](t, f.do("POST", "/v1/dead/retry", `{"type":"noop","queue":"emails"}`), 200)
	if got["retried"] != 1 {
		t.Fatalf("retried = %d, want 1", got["retried"])
	}
	if j, _ := f.client.Get(context.Background(), dead[1]); j.Status != jobqueue.StatusPending || len(j.Errors) != 1 {
		t.Fatalf("retried job: %s with %d errors, want pending with its history", j.Status, len(j.Errors))
	}
	got = mustStatus[map[string]int](t, f.do("DELETE", "/v1/dead?type=send_email", ""), 200)
	if got["deleted"] != 1 {
		t.Fatalf("deleted = %d, want 1", got["deleted"])
	}
	got = mustStatus[map[string]int](t, f.do("POST", "/v1/dead/retry", ""), 200)
	if got["retried"] != 1 {
		t.Fatalf("retry of all dead = %d, want 1", got["retried"])
	}
	// One job by id: only while it is dead.
	if got = mustStatus[map[string]int](t, f.do("DELETE", fmt.Sprintf("/v1/dead?id=%d", dead[0]), ""), 200); got["deleted"] != 0 {
		t.Fatalf("deleted a pending job by id: %v", got)
	}
	f.exec(makeDead, dead[0])
	f.exec(makeDead, dead[1])
	if got = mustStatus[map[string]int](t, f.do("POST", "/v1/dead/retry", fmt.Sprintf(`{"id":%d}`, dead[1])), 200); got["retried"] != 1 {
		t.Fatalf("retry by id = %v, want 1", got)
	}
	if got = mustStatus[map[string]int](t, f.do("DELETE", fmt.Sprintf("/v1/dead?id=%d", dead[0]), ""), 200); got["deleted"] != 1 {
		t.Fatalf("delete by id = %v, want 1", got)
	}
	if _, err := f.client.Get(context.Background(), dead[0]); !errors.Is(err, jobqueue.ErrNotFound) {
		t.Fatalf("job %d after delete by id: %v, want not found", dead[0], err)
	}
	if j, _ := f.client.Get(context.Background(), dead[1]); j.Status != jobqueue.StatusPending {
		t.Fatalf("job %d is %s, want pending", dead[1], j.Status)
	}
	for _, q := range []string{"id=0", "id=-3", "id=x", "id=1e3", "id="} {
		if res := f.do("DELETE", "/v1/dead?"+q, ""); res.Code != 422 {
			t.Errorf("DELETE /v1/dead?%s = %d, want 422", q, res.Code)
		}
	}
}

func TestQueuePauseRoutes(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	f.enqueue(jobqueue.EnqueueParams{Queue: "emails"})
	mustStatus[map[string]any](t, f.do("POST", "/v1/queues/emails/pause", ""), 200)
	qs := mustStatus[struct{ Queues []wireQueue }](t, f.do("GET", "/v1/queues", ""), 200)
	if len(qs.Queues) != 1 || !qs.Queues[0].Paused || qs.Queues[0].Counts[jobqueue.StatusPending] != 1 {
		t.Fatalf("queues = %+v, want emails paused with one pending job", qs.Queues)
	}
	mustStatus[map[string]any](t, f.do("POST", "/v1/queues/emails/resume", ""), 200)
	qs = mustStatus[struct{ Queues []wireQueue }](t, f.do("GET", "/v1/queues", ""), 200)
	if qs.Queues[0].Paused {
		t.Fatal("queue still paused after resume")
	}
}

func TestLimitRoutes(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	l := mustStatus[struct{ Limit wireLimit }](t, f.do("PUT", "/v1/limits/type/sync_inventory", `{"max_running":2}`), 200)
	if l.Limit.MaxRunning == nil || *l.Limit.MaxRunning != 2 || l.Limit.Burst != 1 {
		t.Fatalf("limit = %+v, want max_running 2, burst 1", l.Limit)
	}
	mustStatus[map[string]any](t, f.do("PUT", "/v1/limits/queue/emails", `{"rate_per_second":20,"burst":5}`), 200)
	ls := mustStatus[struct{ Limits []wireLimit }](t, f.do("GET", "/v1/limits", ""), 200)
	if len(ls.Limits) != 2 {
		t.Fatalf("limits = %+v, want 2", ls.Limits)
	}
	qs := mustStatus[struct{ Queues []wireQueue }](t, f.do("GET", "/v1/queues", ""), 200)
	if len(qs.Queues) != 1 || qs.Queues[0].Limit == nil || *qs.Queues[0].Limit.RatePerSecond != 20 {
		t.Fatalf("queues = %+v, want emails with its rate limit", qs.Queues)
	}
	mustStatus[map[string]any](t, f.do("DELETE", "/v1/limits/queue/emails", ""), 200)
	mustStatus[errBody](t, f.do("DELETE", "/v1/limits/queue/emails", ""), 404)
}

// A destination host's limit: a rate, keyed by a lower-case host name or
// an IP in canonical form.
func TestHostLimitRoutes(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	l := mustStatus[struct{ Limit wireLimit }](t, f.do("PUT", "/v1/limits/host/api.example.com", `{"rate_per_second":5,"burst":2}`), 200)
	if l.Limit.RatePerSecond == nil || *l.Limit.RatePerSecond != 5 || l.Limit.Burst != 2 || l.Limit.MaxRunning != nil {
		t.Fatalf("limit = %+v, want rate 5, burst 2", l.Limit)
	}
	mustStatus[map[string]any](t, f.do("PUT", "/v1/limits/host/127.0.0.1", `{"rate_per_second":1}`), 200)
	ls := mustStatus[struct{ Limits []wireLimit }](t, f.do("GET", "/v1/limits", ""), 200)
	if len(ls.Limits) != 2 {
		t.Fatalf("limits = %+v, want 2", ls.Limits)
	}
	before := f.flowState()
	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/v1/limits/host/API.example.com", `{"rate_per_second":5}`, 422},
		{"/v1/limits/host/api.example.com.", `{"rate_per_second":5}`, 422},
		{"/v1/limits/host/api..example.com", `{"rate_per_second":5}`, 422},
		{"/v1/limits/host/exa%20mple.com", `{"rate_per_second":5}`, 422},
		{"/v1/limits/host/127.000.0.1", `{"rate_per_second":5}`, 422},
		{"/v1/limits/host/" + strings.Repeat("a", 129), `{"rate_per_second":5}`, 422},
		{"/v1/limits/host/api.example.com", `{"max_running":3}`, 422},
		{"/v1/limits/host/api.example.com", `{"max_running":3,"rate_per_second":5}`, 422},
		{"/v1/limits/host/api.example.com", `{}`, 422},
	} {
		r := f.do("PUT", tc.path, tc.body)
		if r.Code != tc.status {
			t.Errorf("PUT %s %s = %d %s, want %d", tc.path, tc.body, r.Code, r.Body, tc.status)
		}
	}
	if after := f.flowState(); after != before {
		t.Error("a refused host limit wrote something")
	}
	mustStatus[map[string]any](t, f.do("DELETE", "/v1/limits/host/api.example.com", ""), 200)
	mustStatus[errBody](t, f.do("DELETE", "/v1/limits/host/api.example.com", ""), 404)
}

func TestScheduleRoutes(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	body := `{"spec":"0 9 * * *","timezone":"Europe/Berlin","type":"send_email","payload":{"to":"ops@example.com","subject":"daily"},"queue":"emails"}`
	s := mustStatus[struct{ Schedule map[string]any }](t, f.do("PUT", "/v1/schedules/daily-report", body), 200)
	if s.Schedule["name"] != "daily-report" || s.Schedule["next_run"] == nil {
		t.Fatalf("schedule = %v, want named daily-report with a next run", s.Schedule)
	}
	next, _ := time.Parse(time.RFC3339, s.Schedule["next_run"].(string))
	if berlin, _ := time.LoadLocation("Europe/Berlin"); next.In(berlin).Hour() != 9 {
		t.Errorf("next run %s is not 09:00 in Berlin", next)
	}
	list := mustStatus[struct{ Schedules []map[string]any }](t, f.do("GET", "/v1/schedules", ""), 200)
	if len(list.Schedules) != 1 {
		t.Fatalf("schedules listed = %d, want 1", len(list.Schedules))
	}
	mustStatus[map[string]any](t, f.do("GET", "/v1/schedules/daily-report", ""), 200)
	mustStatus[map[string]any](t, f.do("DELETE", "/v1/schedules/daily-report", ""), 200)
	mustStatus[errBody](t, f.do("GET", "/v1/schedules/daily-report", ""), 404)
}

func TestFlowRouteErrorsWriteNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	f.enqueue(jobqueue.EnqueueParams{})
	mustStatus[map[string]any](t, f.do("PUT", "/v1/schedules/kept", `{"spec":"@hourly","type":"noop"}`), 200)
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"DELETE", "/v1/dead", "", 400},
		{"DELETE", "/v1/dead?queue=Bad%20Queue", "", 422},
		{"POST", "/v1/dead/retry", `{"type":1}`, 400},
		{"POST", "/v1/dead/retry", `{"colour":"red"}`, 400},
		{"POST", "/v1/queues/Bad!/pause", "", 422},
		{"PUT", "/v1/limits/type/no_such_type", `{"max_running":1}`, 422},
		{"PUT", "/v1/limits/planet/mars", `{"max_running":1}`, 404},
		{"PUT", "/v1/limits/type/noop", `{}`, 422},
		{"PUT", "/v1/limits/type/noop", `{"max_running":0}`, 422},
		{"PUT", "/v1/limits/type/noop", `{"rate_per_second":-5}`, 422},
		{"PUT", "/v1/limits/type/noop", `{"max_running":"two"}`, 400},
		{"DELETE", "/v1/limits/type/noop", "", 404},
		{"PUT", "/v1/schedules/x", `{"spec":"every hour","type":"noop"}`, 422},
		{"PUT", "/v1/schedules/x", `{"spec":"@hourly","type":"nope"}`, 422},
		{"PUT", "/v1/schedules/x", `{"spec":"@hourly","type":"noop","timezone":"Mars/Base"}`, 422},
		{"PUT", "/v1/schedules/x", `{"spec":"@hourly","type":"noop","payload":{"bad":1}}`, 422},
		{"PUT", "/v1/schedules/x", `{"spec":"@every 10ms","type":"noop"}`, 422},
		{"PUT", "/v1/schedules/x", `{"name":"y","spec":"@hourly","type":"noop"}`, 422},
		{"PUT", "/v1/schedules/bad%20name", `{"spec":"@hourly","type":"noop"}`, 422},
		{"PUT", "/v1/schedules/x", `{"spec":"@hourly"`, 400},
		{"PUT", "/v1/schedules/x", `{"spec":"@hourly","type":"noop","extra":true}`, 400},
		{"DELETE", "/v1/schedules/nope", "", 404},
		{"GET", "/v1/schedules/nope", "", 404},
		{"PATCH", "/v1/schedules/kept", "", 405},
	} {
		before := f.flowState()
		rec := f.do(tc.method, tc.path, tc.body)
		e := mustStatus[errBody](t, rec, tc.status)
		if e.Error == "" {
			t.Errorf("%s %s: empty error message", tc.method, tc.path)
		}
		if after := f.flowState(); after != before {
			t.Errorf("%s %s %s: state changed although refused", tc.method, tc.path, tc.body)
		}
	}
}
