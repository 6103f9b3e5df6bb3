package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/spoolq/spool/services/api/internal/openapi/genclient"
)

// A client generated from the OpenAPI document by oapi-codegen enqueues a
// job with a stock kind's typed payload and the Idempotency-Key header,
// reads it back, and reads a refusal as problem details; the router
// checks each exchange against the document too.
func TestGeneratedClientEnqueues(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	c, err := genclient.NewClientWithResponses(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var payload genclient.Payload
	if err := payload.FromSleepPayload(genclient.SleepPayload{Ms: 10}); err != nil {
		t.Fatal(err)
	}
	key := `"order-7"` // a Structured Field string, as the draft has it
	body := genclient.EnqueueRequest{Type: "sleep", Payload: &payload, Queue: ptr("reports")}
	res, err := c.EnqueueJobWithResponse(t.Context(), &genclient.EnqueueJobParams{IdempotencyKey: &key}, body)
	if err != nil || res.JSON201 == nil {
		t.Fatalf("enqueue: %v; status %d, body %s", err, res.StatusCode(), res.Body)
	}
	job := res.JSON201.Job
	if job.Type != "sleep" || job.Queue != "reports" || job.Status != genclient.JobStatusPending || job.IdempotencyKey == nil || *job.IdempotencyKey != "order-7" {
		t.Errorf("enqueued %+v, want a pending sleep job in reports with key order-7", job)
	}

	again, err := c.EnqueueJobWithResponse(t.Context(), &genclient.EnqueueJobParams{IdempotencyKey: &key}, body)
	if err != nil || again.JSON200 == nil || !again.JSON200.Duplicate || again.JSON200.Job.Id != job.Id {
		t.Fatalf("enqueue again: %v; status %d, body %s; want 200, the same job, duplicate", err, again.StatusCode(), again.Body)
	}

	got, err := c.GetJobWithResponse(t.Context(), job.Id, nil)
	if err != nil || got.JSON200 == nil {
		t.Fatalf("get: %v; status %d", err, got.StatusCode())
	}
	if sleep, err := got.JSON200.Job.Payload.AsSleepPayload(); err != nil || sleep.Ms != 10 {
		t.Errorf("payload %+v (%v), want ms 10", sleep, err)
	}

	bad, err := c.EnqueueJobWithResponse(t.Context(), nil, genclient.EnqueueRequest{Type: "sleep", Priority: ptr(5000)})
	if err != nil || bad.ApplicationproblemJSON422 == nil {
		t.Fatalf("bad priority: %v; status %d, body %s; want 422 problem details", err, bad.StatusCode(), bad.Body)
	}
	if p := bad.ApplicationproblemJSON422; p.Status != http.StatusUnprocessableEntity || p.Field == nil || *p.Field != "priority" {
		t.Errorf("problem %+v, want status 422 naming priority", p)
	}
}

func ptr[T any](v T) *T { return &v }
