package httpapi_test

import (
	"fmt"
	"testing"

	"github.com/spoolq/spool/shared/jobqueue"
)

type workflowBody struct {
	Workflow wireWorkflow `json:"workflow"`
}

func TestCreateWorkflowFanOutFanIn(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	body := `{"name":"fan","steps":[
		{"name":"start","type":"noop"},
		{"name":"a","type":"noop","depends_on":["start"]},
		{"name":"b","type":"sleep","payload":{"ms":1},"depends_on":["start"],"continue_on_failure":true},
		{"name":"c","type":"noop","depends_on":["start"],"queue":"emails","priority":5},
		{"name":"end","type":"noop","depends_on":["a","b","c"]}]}`
	rec := f.do("POST", "/v1/workflows", body, "X-Request-ID: req-wf-1")
	created := mustStatus[workflowBody](t, rec, 201)
	if len(created.Workflow.Steps) != 5 || created.Workflow.ID == 0 {
		t.Fatalf("workflow = %+v, want 5 steps and an id", created.Workflow)
	}
	got := mustStatus[workflowBody](t, f.do("GET", fmt.Sprintf("/v1/workflows/%d", created.Workflow.ID), ""), 200)
	statuses := map[string]jobqueue.Status{}
	for _, s := range got.Workflow.Steps {
		statuses[s.Name] = s.Status
	}
	if statuses["start"] != jobqueue.StatusPending || statuses["a"] != jobqueue.StatusBlocked || statuses["end"] != jobqueue.StatusBlocked {
		t.Fatalf("statuses = %v, want start pending and the rest blocked", statuses)
	}
	var traced int
	_ = f.db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM spool.spool_jobs WHERE request_id = 'req-wf-1'`).Scan(&traced)
	if traced != 5 {
		t.Errorf("%d steps carry the request id, want 5", traced)
	}
	cancelled := mustStatus[workflowBody](t, f.do("POST", fmt.Sprintf("/v1/workflows/%d/cancel", created.Workflow.ID), ""), 200)
	if cancelled.Workflow.Status != "cancelled" {
		t.Fatalf("status after cancel = %s", cancelled.Workflow.Status)
	}
	mustStatus[errBody](t, f.do("POST", fmt.Sprintf("/v1/workflows/%d/cancel", created.Workflow.ID), ""), 409)
}

func TestWorkflowRefusalsWriteNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	for name, tc := range map[string]struct {
		body   string
		status int
	}{
		"cycle":        {`{"name":"x","steps":[{"name":"a","type":"noop","depends_on":["b"]},{"name":"b","type":"noop","depends_on":["a"]}]}`, 422},
		"unknown step": {`{"name":"x","steps":[{"name":"a","type":"noop","depends_on":["ghost"]}]}`, 422},
		"unknown type": {`{"name":"x","steps":[{"name":"a","type":"noop"},{"name":"b","type":"teleport","depends_on":["a"]}]}`, 422},
		"bad payload":  {`{"name":"x","steps":[{"name":"a","type":"sleep","payload":{"ms":"long"}}]}`, 422},
		"duplicate":    {`{"name":"x","steps":[{"name":"a","type":"noop"},{"name":"a","type":"noop"}]}`, 422},
		"no steps":     {`{"name":"x","steps":[]}`, 422},
		"no name":      {`{"steps":[{"name":"a","type":"noop"}]}`, 422},
		"step key":     {`{"name":"x","steps":[{"name":"a","type":"noop","idempotency_key":"k"}]}`, 422},
		"unknown":      {`{"name":"x","steps":[{"name":"a","type":"noop","colour":1}]}`, 400},
		"malformed":    {`{"name":"x","steps":[`, 400},
	} {
		before := f.workflowState()
		rec := f.do("POST", "/v1/workflows", tc.body)
		if e := mustStatus[errBody](t, rec, tc.status); e.Error == "" {
			t.Errorf("%s: no error message", name)
		}
		if after := f.workflowState(); after != before {
			t.Errorf("%s: rows written although refused", name)
		}
	}
	mustStatus[errBody](t, f.do("GET", "/v1/workflows/999", ""), 404)
}

func (f *fixture) workflowState() string {
	f.t.Helper()
	var n int
	_ = f.db.Pool.QueryRow(f.t.Context(), `SELECT count(*) FROM spool.spool_workflows`).Scan(&n)
	return fmt.Sprintf("%s, %d workflows", f.snapshot(), n)
}

func TestEnqueuedJobsCarryTheirRequestID(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	one := mustStatus[jobBody](t, f.do("POST", "/v1/jobs", `{"type":"noop"}`, "X-Request-ID: req-single"), 201)
	mustStatus[map[string]any](t, f.do("POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop"},{"type":"noop"}]}`, "X-Request-ID: req-batch"), 201)
	got := mustStatus[jobBody](t, f.do("GET", fmt.Sprintf("/v1/jobs/%d", one.Job.ID), ""), 200)
	if got.Job.RequestID == nil || *got.Job.RequestID != "req-single" {
		t.Fatalf("request_id = %v, want req-single", got.Job.RequestID)
	}
	var batch int
	_ = f.db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM spool.spool_jobs WHERE request_id = 'req-batch'`).Scan(&batch)
	if batch != 2 {
		t.Fatalf("%d batch jobs carry the request id, want 2", batch)
	}
}
