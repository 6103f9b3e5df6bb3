// Package jobqueue owns the spool_jobs table: enqueueing (alone or inside a
// caller's transaction), claiming with SKIP LOCKED, recording outcomes,
// rescuing jobs of lost workers, and the worker runtime that drives them.
//
// The worker runtime lives here rather than in the worker service because
// the benchmark harness and tests drive the same code the service runs.
package jobqueue

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Status is a job's place in its life cycle.
type Status string

// The statuses a user can see.
const (
	StatusPending   Status = "pending"   // due at run_at, waiting for a worker
	StatusRunning   Status = "running"   // claimed by a worker holding a lease
	StatusRetrying  Status = "retrying"  // failed, waiting out its backoff
	StatusCompleted Status = "completed" // finished successfully
	StatusDead      Status = "dead"      // out of attempts, or failed permanently
	StatusCancelled Status = "cancelled" // cancelled by a user
	StatusBlocked   Status = "blocked"   // waiting for workflow parents
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusRunning, StatusRetrying, StatusCompleted, StatusDead, StatusCancelled, StatusBlocked:
		return true
	}
	return false
}

// AllStatuses lists every status, for stats and metrics.
var AllStatuses = []Status{StatusPending, StatusRunning, StatusRetrying, StatusCompleted, StatusDead, StatusCancelled, StatusBlocked}

// DefaultQueue is the queue of jobs enqueued without one.
const DefaultQueue = "default"

// DefaultMaxAttempts applies when neither the job nor its type sets one.
const DefaultMaxAttempts = 10

// AttemptError is one failed attempt in a job's history.
type AttemptError struct {
	Attempt  int       `json:"attempt"`
	Error    string    `json:"error"`
	At       time.Time `json:"at"`
	WorkerID string    `json:"worker_id,omitempty"`
}

// Job is one row of spool_jobs.
type Job struct {
	ID             int64           `json:"id"`
	Type           string          `json:"type"`
	Queue          string          `json:"queue"`
	Status         Status          `json:"status"`
	Priority       int             `json:"priority"`
	Attempts       int             `json:"attempts"`
	MaxAttempts    int             `json:"max_attempts"`
	RunAt          time.Time       `json:"run_at"`
	Timeout        *Duration       `json:"timeout,omitempty"`
	BackoffBase    *Duration       `json:"backoff_base,omitempty"`
	BackoffMax     *Duration       `json:"backoff_max,omitempty"`
	IdempotencyKey *string         `json:"idempotency_key,omitempty"`
	WorkerID       *string         `json:"worker_id,omitempty"`
	LeaseUntil     *time.Time      `json:"lease_until,omitempty"`
	LastError      *string         `json:"last_error,omitempty"`
	Errors         []AttemptError  `json:"errors"`
	Payload        json.RawMessage `json:"payload"`
	Result         json.RawMessage `json:"result,omitempty"`
	WorkflowID     *int64          `json:"workflow_id,omitempty"`
	Step           *string         `json:"step,omitempty"`
	Parents        []int64         `json:"parents,omitempty"`
	// ContinueOnFailure: when this workflow step dies, its dependants run anyway.
	ContinueOnFailure bool       `json:"continue_on_failure,omitempty"`
	RequestID         *string    `json:"request_id,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	StartedAt         *time.Time `json:"started_at,omitempty"`
	FinishedAt        *time.Time `json:"finished_at,omitempty"`
}

// jobColumns is the select list every query that returns jobs uses, in the
// order scanJob expects.
const jobColumns = `id, type, queue, status, priority, attempts, max_attempts, run_at,
	timeout_ms, backoff_base_ms, backoff_max_ms, idempotency_key, worker_id, lease_until,
	last_error, errors, payload, result, created_at, started_at, finished_at,
	workflow_id, step, parents, continue_on_failure, request_id`

func scanJob(row pgx.Row) (*Job, error) {
	var (
		j                    Job
		timeout, bbase, bmax *int32
		errs                 []byte
		payload, result      []byte
	)
	err := row.Scan(&j.ID, &j.Type, &j.Queue, &j.Status, &j.Priority, &j.Attempts, &j.MaxAttempts, &j.RunAt,
		&timeout, &bbase, &bmax, &j.IdempotencyKey, &j.WorkerID, &j.LeaseUntil,
		&j.LastError, &errs, &payload, &result, &j.CreatedAt, &j.StartedAt, &j.FinishedAt,
		&j.WorkflowID, &j.Step, &j.Parents, &j.ContinueOnFailure, &j.RequestID)
	if err != nil {
		return nil, err
	}
	j.Timeout, j.BackoffBase, j.BackoffMax = msDuration(timeout), msDuration(bbase), msDuration(bmax)
	j.Payload, j.Result = payload, result
	if string(errs) == "[]" { // most jobs: skip the decoder on the claim path
		j.Errors = []AttemptError{}
	} else if err := json.Unmarshal(errs, &j.Errors); err != nil {
		return nil, fmt.Errorf("decode error history of job %d: %w", j.ID, err)
	}
	return &j, nil
}

func scanJobs(rows pgx.Rows) ([]*Job, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Job, error) { return scanJob(r) })
}

func msDuration(ms *int32) *Duration {
	if ms == nil {
		return nil
	}
	d := Duration(time.Duration(*ms) * time.Millisecond)
	return &d
}

// Duration is a time.Duration that reads and writes JSON as "1m30s".
type Duration time.Duration

// MarshalJSON writes the duration in Go syntax.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string such as "250ms" or "2h".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", s)
	}
	*d = Duration(v)
	return nil
}
