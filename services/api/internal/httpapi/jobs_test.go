package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/jobqueue"
)

func TestEnqueueAndGet(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	runAt := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	body := fmt.Sprintf(`{"type":"send_email","payload":{"to":"ada@example.com","subject":"hi","body":"hello"},
		"queue":"emails","priority":5,"run_at":%q,"max_attempts":3,"timeout":"30s",
		"backoff_base":"2s","backoff_max":"1m","idempotency_key":"order-1"}`, runAt.Format(time.RFC3339))

	created := mustStatus[jobBody](t, f.do("POST", "/v1/jobs", body), http.StatusCreated)
	j := created.Job
	if created.Duplicate || j.ID == 0 || j.Type != "send_email" || j.Queue != "emails" || j.Priority != 5 ||
		j.MaxAttempts != 3 || j.Status != jobqueue.StatusPending || !j.RunAt.Equal(runAt) ||
		j.IdempotencyKey == nil || *j.IdempotencyKey != "order-1" {
		t.Fatalf("created job = %+v (duplicate %v), want the request's fields", j, created.Duplicate)
	}
	if j.Timeout == nil || *j.Timeout != "30s" || j.BackoffBase == nil || *j.BackoffBase != "2s" || j.BackoffMax == nil ||
		*j.BackoffMax != "1m0s" {
		t.Fatalf("durations = %v %v %v, want 30s 2s 1m", j.Timeout, j.BackoffBase, j.BackoffMax)
	}

	got := mustStatus[jobBody](t, f.do("GET", fmt.Sprintf("/v1/jobs/%d", j.ID), ""), http.StatusOK)
	if got.Job.ID != j.ID || got.Job.Errors == nil || len(got.Job.Errors) != 0 {
		t.Fatalf("GET job = %+v, want id %d with an empty error history", got.Job, j.ID)
	}
	var payload map[string]string
	if err := json.Unmarshal(got.Job.Payload, &payload); err != nil || payload["to"] != "ada@example.com" {
		t.Fatalf("payload = %s, want the one sent", got.Job.Payload)
	}
}

func TestEnqueueDefaultsAndDelay(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	j := mustStatus[jobBody](t, f.do("POST", "/v1/jobs", `{"type":"noop"}`), http.StatusCreated).Job
	if j.Queue != jobqueue.DefaultQueue || j.MaxAttempts != jobqueue.DefaultMaxAttempts || string(j.Payload) != "{}" {
		t.Fatalf("job = %+v, want default queue and attempts and payload {}", j)
	}
	j = mustStatus[jobBody](t, f.do("POST", "/v1/jobs", `{"type":"noop","payload":{},"delay":"1h"}`), http.StatusCreated).Job
	if d := time.Until(j.RunAt); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("run_at in %s, want about 1h", d)
	}
}

func TestEnqueueIdempotentDuplicate(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	body := `{"type":"noop","idempotency_key":"k-1"}`
	first := mustStatus[jobBody](t, f.do("POST", "/v1/jobs", body), http.StatusCreated)
	again := mustStatus[jobBody](t, f.do("POST", "/v1/jobs", body), http.StatusOK)
	if !again.Duplicate || first.Duplicate || again.Job.ID != first.Job.ID {
		t.Fatalf("second enqueue = id %d duplicate %v, want id %d duplicate true", again.Job.ID, again.Duplicate, first.Job.ID)
	}
	if n := f.count(); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
}

func TestEnqueueConcurrentIdempotency(t *testing.T) {
	t.Parallel()
	const n = 50
	f := setup(t, &httpapi.Opts{MaxInFlight: n}) // this test is about idempotency, not shedding
	codes := make([]int, n)
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rec := f.do("POST", "/v1/jobs", `{"type":"noop","idempotency_key":"same"}`)
			codes[i] = rec.Code
			var b jobBody
			_ = json.Unmarshal(rec.Body.Bytes(), &b)
			ids[i] = b.Job.ID
		})
	}
	wg.Wait()
	created, dup := 0, 0
	for i, c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusOK:
			dup++
		default:
			t.Errorf("request %d: status %d", i, c)
		}
		if ids[i] != ids[0] {
			t.Errorf("request %d: job %d, want %d", i, ids[i], ids[0])
		}
	}
	if created != 1 || dup != n-1 {
		t.Fatalf("%d × 201 and %d × 200, want 1 and %d", created, dup, n-1)
	}
	if c := f.count(); c != 1 {
		t.Fatalf("%d jobs, want 1", c)
	}
}

type listBody struct {
	Jobs      []wireJob `json:"jobs"`
	NextAfter *int64    `json:"next_after"`
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	var ids []int64
	for range 3 {
		ids = append(ids, f.enqueue(jobqueue.EnqueueParams{Queue: "q1"}))
	}
	f.enqueue(jobqueue.EnqueueParams{Queue: "other"})
	f.exec(makeCompleted, f.enqueue(jobqueue.EnqueueParams{Queue: "q1"}))

	page1 := mustStatus[listBody](t, f.do("GET", "/v1/jobs?queue=q1&status=pending&type=noop&limit=2", ""), http.StatusOK)
	if len(page1.Jobs) != 2 || page1.Jobs[0].ID != ids[2] || page1.Jobs[1].ID != ids[1] ||
		page1.NextAfter == nil || *page1.NextAfter != ids[1] {
		t.Fatalf("page 1 = %v next %v, want jobs %d, %d and next_after %d", jobIDs(page1.Jobs), page1.NextAfter, ids[2], ids[1], ids[1])
	}
	page2 := mustStatus[listBody](t, f.do("GET", fmt.Sprintf("/v1/jobs?queue=q1&status=pending&limit=2&after=%d", *page1.NextAfter), ""), http.StatusOK)
	if len(page2.Jobs) != 1 || page2.Jobs[0].ID != ids[0] || page2.NextAfter != nil {
		t.Fatalf("page 2 = %v next %v, want job %d and next_after null", jobIDs(page2.Jobs), page2.NextAfter, ids[0])
	}
	all := mustStatus[listBody](t, f.do("GET", "/v1/jobs", ""), http.StatusOK)
	if len(all.Jobs) != 5 || all.NextAfter != nil {
		t.Fatalf("unfiltered list = %v next %v, want all 5 jobs", jobIDs(all.Jobs), all.NextAfter)
	}
	none := f.do("GET", "/v1/jobs?type=send_email", "")
	if none.Code != http.StatusOK || jsonString(t, none.Body.Bytes(), "jobs") != "[]" {
		t.Fatalf("empty list = %d %s, want 200 with jobs []", none.Code, none.Body)
	}
}

func jobIDs(js []wireJob) []int64 {
	out := make([]int64, len(js))
	for i, j := range js {
		out[i] = j.ID
	}
	return out
}

func jsonString(t *testing.T, b []byte, key string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %s", b)
	}
	return string(m[key])
}

func TestCancel(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	for _, st := range []string{"pending", "running"} {
		id := f.enqueue(jobqueue.EnqueueParams{})
		if st == "running" {
			f.exec(makeRunning, id)
		}
		got := mustStatus[jobBody](t, f.do("POST", fmt.Sprintf("/v1/jobs/%d/cancel", id), ""), http.StatusOK)
		if got.Job.Status != jobqueue.StatusCancelled || got.Job.FinishedAt == nil {
			t.Fatalf("cancel %s job: %+v, want cancelled with finished_at", st, got.Job)
		}
	}
}

func TestRetryDeadJob(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	id := f.enqueue(jobqueue.EnqueueParams{MaxAttempts: 2})
	f.exec(makeDead, id)
	got := mustStatus[jobBody](t, f.do("POST", fmt.Sprintf("/v1/jobs/%d/retry", id), ""), http.StatusOK).Job
	if got.Status != jobqueue.StatusPending || got.Attempts != 0 || got.FinishedAt != nil {
		t.Fatalf("retried job = %+v, want pending with 0 attempts", got)
	}
	if len(got.Errors) != 1 || got.Errors[0].Error != "boom" {
		t.Fatalf("error history = %+v, want the dead attempt kept", got.Errors)
	}
	again := mustStatus[jobBody](t, f.do("GET", fmt.Sprintf("/v1/jobs/%d", id), ""), http.StatusOK).Job
	if again.Status != jobqueue.StatusPending {
		t.Fatalf("stored status = %s, want pending", again.Status)
	}
	// A cancelled job can be retried too; a pending one cannot (409).
	mustStatus[jobBody](t, f.do("POST", fmt.Sprintf("/v1/jobs/%d/cancel", id), ""), http.StatusOK)
	if got := mustStatus[jobBody](t, f.do("POST", fmt.Sprintf("/v1/jobs/%d/retry", id), ""), http.StatusOK).Job; got.Status != jobqueue.StatusPending {
		t.Fatalf("retried cancelled job is %s, want pending", got.Status)
	}
	mustStatus[map[string]any](t, f.do("POST", fmt.Sprintf("/v1/jobs/%d/retry", id), ""), http.StatusConflict)
}

type statsBody struct {
	Queues map[string]struct {
		Counts                  map[string]int64 `json:"counts"`
		OldestPendingAgeSeconds float64          `json:"oldest_pending_age_seconds"`
	} `json:"queues"`
}

func TestStats(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	f.enqueue(jobqueue.EnqueueParams{RunAt: time.Now().Add(-time.Minute)})
	f.enqueue(jobqueue.EnqueueParams{})
	f.exec(makeDead, f.enqueue(jobqueue.EnqueueParams{Queue: "emails"}))

	st := mustStatus[statsBody](t, f.do("GET", "/v1/stats", ""), http.StatusOK)
	def, emails := st.Queues["default"], st.Queues["emails"]
	if def.Counts["pending"] != 2 || def.Counts["dead"] != 0 || emails.Counts["dead"] != 1 || emails.Counts["pending"] != 0 {
		t.Fatalf("stats = %+v, want default 2 pending, emails 1 dead", st)
	}
	for _, s := range jobqueue.AllStatuses {
		if _, ok := def.Counts[string(s)]; !ok {
			t.Errorf("status %s missing from the default queue's counts", s)
		}
	}
	if def.OldestPendingAgeSeconds < 59 || emails.OldestPendingAgeSeconds != 0 {
		t.Fatalf("oldest pending ages = %v, %v; want ≥ 59s and 0", def.OldestPendingAgeSeconds, emails.OldestPendingAgeSeconds)
	}
}

type batchBody struct {
	Jobs []struct {
		ID        int64 `json:"id"`
		Duplicate bool  `json:"duplicate"`
	} `json:"jobs"`
}

func TestBatch(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	existing := f.enqueue(jobqueue.EnqueueParams{IdempotencyKey: "old"})
	body := `{"jobs":[
		{"type":"noop"},
		{"type":"send_email","payload":{"to":"a@example.com","subject":"s"},"queue":"emails","idempotency_key":"new"},
		{"type":"noop","idempotency_key":"old"},
		{"type":"sleep","payload":{"ms":5},"delay":"10s"}]}`
	got := mustStatus[batchBody](t, f.do("POST", "/v1/jobs/batch", body), http.StatusCreated)
	if len(got.Jobs) != 4 || got.Jobs[2].ID != existing || !got.Jobs[2].Duplicate || got.Jobs[0].Duplicate || got.Jobs[1].Duplicate {
		t.Fatalf("batch answer = %+v, want 4 results with only the third a duplicate of %d", got.Jobs, existing)
	}
	if n := f.count(); n != 4 {
		t.Fatalf("%d jobs, want 4 (1 existing + 3 new)", n)
	}
	j, err := f.client.Get(context.Background(), got.Jobs[1].ID)
	if err != nil || j.Kind != "send_email" || j.Queue != "emails" {
		t.Fatalf("second batch job = %+v, %v; want the send_email job in queue emails", j, err)
	}
}

func TestKindsCatalog(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	type kindBody struct {
		Name        string          `json:"name"`
		Schema      json.RawMessage `json:"schema"`
		MaxAttempts int             `json:"max_attempts"`
		Timeout     *string         `json:"timeout"`
		Workers     []string        `json:"workers"`
		Open        bool            `json:"open"`
		Waiting     int64           `json:"waiting"`
		Unserved    bool            `json:"unserved"`
	}
	kinds := func(h http.Handler) map[string]kindBody {
		t.Helper()
		out := map[string]kindBody{}
		for _, k := range mustStatus[struct{ Kinds []kindBody }](t, serve(h, request("GET", "/v1/kinds", "")), http.StatusOK).Kinds {
			out[k.Name] = k
		}
		return out
	}
	all := kinds(f.h)
	email, noop := all["send_email"], all["noop"]
	if email.MaxAttempts != 8 || email.Timeout == nil || *email.Timeout != "30s" || !strings.Contains(string(email.Schema), `"format":"email"`) {
		t.Fatalf("send_email = %+v, want its policy (8 attempts, 30s) and its payload schema", email)
	}
	if noop.Name == "" || len(noop.Workers) != 0 || noop.Unserved {
		t.Fatalf("noop = %+v, want it listed, with no live worker and nothing waiting", noop)
	}
	// A job waits for a kind no live worker runs: the catalog marks it.
	mustStatus[jobBody](t, f.do("POST", "/v1/jobs", `{"type":"noop"}`), http.StatusCreated)
	if got := kinds(f.h)["noop"]; got.Waiting != 1 || !got.Unserved {
		t.Fatalf("noop after one enqueue = %+v, want 1 waiting and unserved", got)
	}
	// An operator's open kind is accepted without a published schema.
	open := newRouter(t, f.client, nil, &httpapi.Opts{Catalog: catalog.New(f.client, []string{"legacy.import"})})
	mustStatus[errBody](t, serve(open, request("POST", "/v1/jobs", `{"type":"other.kind"}`)), http.StatusUnprocessableEntity)
	mustStatus[errBody](t, serve(open, request("POST", "/v1/jobs", `{"type":"legacy.import","payload":[1]}`)), http.StatusUnprocessableEntity)
	mustStatus[jobBody](t, serve(open, request("POST", "/v1/jobs", `{"type":"legacy.import","payload":{"any":["thing"]}}`)), http.StatusCreated)
	if got := kinds(open)["legacy.import"]; !got.Open || got.Waiting != 1 || !got.Unserved {
		t.Fatalf("open kind = %+v, want open, 1 waiting, unserved", got)
	}
}
