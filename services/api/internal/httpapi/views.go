package httpapi

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/spoolq/spool/shared/jobqueue"
)

// The API's JSON shapes of the queue's plain types: the wire format lives
// here, not in the library.

type jobView struct {
	ID             int64           `json:"id"`
	Type           string          `json:"type"`
	Queue          string          `json:"queue"`
	Status         jobqueue.Status `json:"status"`
	Priority       int             `json:"priority"`
	Attempts       int             `json:"attempts"`
	MaxAttempts    int             `json:"max_attempts"`
	RunAt          time.Time       `json:"run_at"`
	Timeout        *string         `json:"timeout,omitempty"`
	BackoffBase    *string         `json:"backoff_base,omitempty"`
	BackoffMax     *string         `json:"backoff_max,omitempty"`
	IdempotencyKey *string         `json:"idempotency_key,omitempty"`
	WorkerID       *string         `json:"worker_id,omitempty"`
	LeaseUntil     *time.Time      `json:"lease_until,omitempty"`
	LastError      *string         `json:"last_error,omitempty"`
	// A list leaves the large fields out unless asked (include=...):
	// omitzero drops nil, and a job's own view always has them.
	Errors            []errorView     `json:"errors,omitzero"`
	ErrorsDropped     int             `json:"errors_dropped,omitempty"`
	Payload           json.RawMessage `json:"payload,omitzero"`
	Result            json.RawMessage `json:"result,omitempty"`
	WorkflowID        *int64          `json:"workflow_id,omitempty"`
	Step              *string         `json:"step,omitempty"`
	Parents           []int64         `json:"parents,omitempty"`
	ContinueOnFailure bool            `json:"continue_on_failure,omitempty"`
	RequestID         *string         `json:"request_id,omitempty"`
	CreatedAt         time.Time       `json:"created_at"`
	StartedAt         *time.Time      `json:"started_at,omitempty"`
	FinishedAt        *time.Time      `json:"finished_at,omitempty"`
}

type errorView struct {
	Attempt  int       `json:"attempt"`
	Error    string    `json:"error"`
	At       time.Time `json:"at"`
	WorkerID string    `json:"worker_id,omitempty"`
}

func duration(d time.Duration) *string {
	if d <= 0 {
		return nil
	}
	s := d.String()
	return &s
}

func viewJob(j *jobqueue.Job) *jobView {
	v := &jobView{ID: j.ID, Type: j.Kind, Queue: j.Queue, Status: j.Status, Priority: j.Priority, Attempts: j.Attempts,
		MaxAttempts: j.MaxAttempts, RunAt: j.RunAt, Timeout: duration(j.Timeout), BackoffBase: duration(j.BackoffBase),
		BackoffMax: duration(j.BackoffMax), IdempotencyKey: j.IdempotencyKey, WorkerID: j.WorkerID, LeaseUntil: j.LeaseUntil,
		LastError: j.LastError, Errors: make([]errorView, len(j.Errors)), Payload: j.Payload, Result: j.Result,
		WorkflowID: j.WorkflowID, Step: j.Step, Parents: j.Parents, ContinueOnFailure: j.ContinueOnFailure, RequestID: j.RequestID,
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt}
	for i, e := range j.Errors {
		v.Errors[i] = errorView(e)
	}
	v.ErrorsDropped = j.ErrorsDropped
	if len(v.Payload) == 0 {
		v.Payload = json.RawMessage(`{}`)
	}
	return v
}

// viewJobs is a list's view: the payload, history and result only if
// include names them.
func viewJobs(js []*jobqueue.Job, include []string) []*jobView {
	out := make([]*jobView, len(js))
	for i, j := range js {
		v := viewJob(j)
		if !slices.Contains(include, "payload") {
			v.Payload = nil
		}
		if !slices.Contains(include, "errors") {
			v.Errors = nil
		}
		if !slices.Contains(include, "result") {
			v.Result = nil
		}
		out[i] = v
	}
	return out
}

type workflowView struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Steps      []stepView `json:"steps"`
}

type stepView struct {
	Name       string          `json:"name"`
	JobID      int64           `json:"job_id"`
	Type       string          `json:"type"`
	Status     jobqueue.Status `json:"status"`
	Attempts   int             `json:"attempts"`
	DependsOn  []string        `json:"depends_on"`
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	// ResultOmitted: the step has a result, left out because the steps
	// before it used up the answer's budget (SPOOL_MAX_RESPONSE_BYTES);
	// GET /v1/jobs/{job_id} has it.
	ResultOmitted bool    `json:"result_omitted,omitempty"`
	LastError     *string `json:"last_error,omitempty"`
}

// viewWorkflow carries step results up to budget bytes in all (1,000
// steps of up to 64 KiB each would be 64 MiB) and reports whether it left
// any out.
func viewWorkflow(w *jobqueue.Workflow, budget int64) (*workflowView, bool) {
	v := &workflowView{ID: w.ID, Name: w.Name, Status: w.Status, CreatedAt: w.CreatedAt, FinishedAt: w.FinishedAt,
		Steps: make([]stepView, len(w.Steps))}
	omitted := false
	for i, s := range w.Steps {
		deps := s.DependsOn
		if deps == nil {
			deps = []string{}
		}
		v.Steps[i] = stepView{Name: s.Name, JobID: s.JobID, Type: s.Kind, Status: s.Status, Attempts: s.Attempts, DependsOn: deps,
			StartedAt: s.StartedAt, FinishedAt: s.FinishedAt, Result: s.Result, LastError: s.LastError}
		if budget -= int64(len(s.Result)); budget < 0 && len(s.Result) > 0 {
			v.Steps[i].Result, v.Steps[i].ResultOmitted, omitted = nil, true, true
		}
	}
	return v, omitted
}

type limitView struct {
	Scope         string   `json:"scope"`
	Name          string   `json:"name"`
	MaxRunning    *int     `json:"max_running,omitempty"`
	RatePerSecond *float64 `json:"rate_per_second,omitempty"`
	Burst         int      `json:"burst"`
}

func viewLimit(l jobqueue.Limit) limitView { return limitView(l) }

type queueView struct {
	Name   string                    `json:"name"`
	Paused bool                      `json:"paused"`
	Counts map[jobqueue.Status]int64 `json:"counts"`
	// OldestDueAge is how long the oldest due, unclaimed job has waited.
	OldestDueAge float64    `json:"oldest_pending_age_seconds"`
	Limit        *limitView `json:"limit,omitempty"`
}

type statsView struct {
	Counts       map[jobqueue.Status]int64 `json:"counts"`
	OldestDueAge float64                   `json:"oldest_pending_age_seconds"`
}

// allCounts has every status, zeros included, so clients need not
// special-case absent keys.
func allCounts(c map[jobqueue.Status]int64) map[jobqueue.Status]int64 {
	out := make(map[jobqueue.Status]int64, len(jobqueue.AllStatuses))
	for _, s := range jobqueue.AllStatuses {
		out[s] = c[s]
	}
	return out
}

func viewQueue(q jobqueue.QueueInfo) queueView {
	v := queueView{Name: q.Name, Paused: q.Paused, Counts: allCounts(q.Counts), OldestDueAge: q.OldestDueAge.Seconds()}
	if q.Limit != nil {
		l := viewLimit(*q.Limit)
		v.Limit = &l
	}
	return v
}

type kindView struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	MaxAttempts int             `json:"max_attempts,omitempty"`
	Timeout     *string         `json:"timeout,omitempty"`
	BackoffBase *string         `json:"backoff_base,omitempty"`
	BackoffMax  *string         `json:"backoff_max,omitempty"`
	UpdatedAt   *time.Time      `json:"updated_at,omitempty"`
	Workers     []string        `json:"workers"`
	Open        bool            `json:"open,omitempty"`
	Waiting     int64           `json:"waiting"`
	Unserved    bool            `json:"unserved"`
}

func viewKind(k jobqueue.KindInfo) kindView {
	v := kindView{Name: k.Name, Description: k.Description, Schema: k.Schema, MaxAttempts: k.Policy.MaxAttempts,
		Timeout: duration(k.Policy.Timeout), BackoffBase: duration(k.Policy.Backoff.Base), BackoffMax: duration(k.Policy.Backoff.Max),
		Workers: k.Workers}
	if !k.UpdatedAt.IsZero() {
		v.UpdatedAt = &k.UpdatedAt
	}
	if v.Workers == nil {
		v.Workers = []string{}
	}
	return v
}

type workerView struct {
	ID          string         `json:"id"`
	Host        string         `json:"host"`
	Version     string         `json:"version"`
	Queues      map[string]int `json:"queues"`
	Types       []string       `json:"types"`
	Running     int            `json:"running"`
	StartedAt   time.Time      `json:"started_at"`
	HeartbeatAt time.Time      `json:"heartbeat_at"`
	Live        bool           `json:"live"`
}

func viewWorker(w jobqueue.WorkerInfo) workerView {
	return workerView{ID: w.ID, Host: w.Host, Version: w.Version, Queues: w.Queues, Types: w.Kinds, Running: w.Running,
		StartedAt: w.StartedAt, HeartbeatAt: w.HeartbeatAt, Live: w.Live}
}
