// Package spooltype holds the plain types that Spool's public core
// (package jobqueue) and its internal packages share: rows as they are
// stored, the policy a job kind declares, and the errors callers match.
// It exists, like River's rivertype, so that those packages can name the
// same types without importing each other. Most programs use the aliases in
// package jobqueue and never import this one.
package spooltype

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Status is a job's place in its life cycle.
type Status string

// The statuses a job can have.
const (
	StatusPending   Status = "pending"   // due at RunAt, waiting for a worker
	StatusRunning   Status = "running"   // claimed by a worker holding a lease
	StatusRetrying  Status = "retrying"  // failed, waiting out its backoff
	StatusCompleted Status = "completed" // finished successfully
	StatusDead      Status = "dead"      // out of attempts, or failed permanently
	StatusCancelled Status = "cancelled" // cancelled by a user
	StatusBlocked   Status = "blocked"   // a workflow step waiting for its parents
)

// AllStatuses lists every status, in life-cycle order.
var AllStatuses = []Status{StatusPending, StatusRunning, StatusRetrying, StatusCompleted, StatusDead, StatusCancelled, StatusBlocked}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	for _, v := range AllStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// Job is one job as stored. Durations are zero when unset (the worker's
// defaults apply); pointers are nil for NULL columns.
type Job struct {
	ID          int64
	Kind        string
	Queue       string
	Status      Status
	Priority    int
	Attempts    int // attempts started so far, the running one included
	MaxAttempts int
	RunAt       time.Time
	Timeout     time.Duration // the handler's deadline; 0: the kind's or the worker's
	BackoffBase time.Duration // 0: the worker's
	BackoffMax  time.Duration // 0: the worker's
	// IdempotencyKey names at most one job while that job exists.
	IdempotencyKey *string
	WorkerID       *string
	LeaseUntil     *time.Time
	LastError      *string
	// Errors is the failed attempts' history, oldest first: the first few
	// and the newest (ErrorsDropped counts those left out between), each
	// message at most 4 KiB. A job handed to a handler carries none: claims
	// do not read the history back, nor do brief lists.
	Errors        []AttemptError
	ErrorsDropped int
	Payload       []byte // JSON
	Result        []byte // JSON set by the handler (SetResult), nil if none
	// Workflow membership: the workflow, this step's name, the parent
	// steps' job ids, and whether dependants run when this step dies.
	WorkflowID        *int64
	Step              *string
	Parents           []int64
	ContinueOnFailure bool
	RequestID         *string // the API request that enqueued the job
	TraceParent       *string // the W3C traceparent of the span that enqueued it, if traced
	CreatedAt         time.Time
	StartedAt         *time.Time
	FinishedAt        *time.Time
}

// AttemptError is one failed attempt in a job's history.
type AttemptError struct {
	Attempt  int
	Error    string
	At       time.Time
	WorkerID string
}

// Backoff is an exponential retry delay with "equal jitter": the wait
// before retry n is a random time in [d/2, d] where d = min(Max, Base·2^(n-1)).
// Jitter keeps a burst of failures from retrying in lockstep; the floor
// keeps a retry from following its failure at once.
type Backoff struct {
	Base time.Duration
	Max  time.Duration
}

// DefaultBackoff: 1 s, 2 s, 4 s … capped at one hour.
var DefaultBackoff = Backoff{Base: time.Second, Max: time.Hour}

// Ceiling is the upper bound d of the wait before retry n (n ≥ 1).
func (b Backoff) Ceiling(n int) time.Duration {
	d := b.Base
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Delay draws the wait before retry n.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Ceiling(n)
	half := d / 2
	return half + rand.N(d-half+1)
}

// Or fills b's zero fields from def.
func (b Backoff) Or(def Backoff) Backoff {
	if b.Base <= 0 {
		b.Base = def.Base
	}
	if b.Max <= 0 {
		b.Max = def.Max
	}
	return b
}

// Policy is what a job kind declares about its jobs: a job's own settings
// at enqueue win over it, and the worker's defaults fill what both leave
// zero.
type Policy struct {
	MaxAttempts int           // 0: DefaultMaxAttempts
	Timeout     time.Duration // the handler's deadline; 0: the worker's
	Backoff     Backoff       // zero fields: the worker's
}

// DefaultMaxAttempts applies when neither the job nor its kind sets one.
const DefaultMaxAttempts = 10

// DefaultQueue is the queue of jobs enqueued without one.
const DefaultQueue = "default"

// EnqueueParams describes one job to enqueue. Zero values mean defaults.
type EnqueueParams struct {
	Kind        string
	Payload     any // encoded with encoding/json; json.RawMessage and []byte are used as they are
	Queue       string
	Priority    int
	RunAt       time.Time // zero: now, by the database's clock
	MaxAttempts int       // 0: the kind's, else DefaultMaxAttempts
	Timeout     time.Duration
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// IdempotencyKey: while a job with this key exists, enqueueing again
	// returns that job instead of a new one.
	IdempotencyKey string
	RequestID      string // the API request that enqueued the job, for tracing
	// TraceParent is the W3C traceparent the job's span continues; empty:
	// the client takes it from the enqueuing context's span, if any.
	TraceParent string
}

// Limit scopes.
const (
	ScopeQueue = "queue"
	ScopeKind  = "type"
	// ScopeHost limits the requests the http kind sends to one destination
	// host (rate only): the handler takes a token just before sending.
	ScopeHost = "host"
)

// Limit bounds one queue or job kind across the whole cluster: at most
// MaxRunning jobs running at once, and at most RatePerSecond starts per
// second with bursts of at most Burst. Over-limit jobs wait; they never
// fail or spend attempts.
type Limit struct {
	Scope         string // ScopeQueue, ScopeKind or ScopeHost
	Name          string
	MaxRunning    *int
	RatePerSecond *float64
	Burst         int
}

// QueueStats counts one queue's jobs by status.
type QueueStats struct {
	Counts map[Status]int64
	// OldestDueAge is how long the oldest due, unclaimed job has waited.
	OldestDueAge time.Duration
}

// QueueInfo is one queue's state, depth and limit.
type QueueInfo struct {
	Name string
	QueueStats
	Paused bool
	Limit  *Limit
}

// Workflow is a workflow and its steps.
type Workflow struct {
	ID         int64
	Name       string
	Status     string // running, completed, failed, cancelled
	CreatedAt  time.Time
	FinishedAt *time.Time
	Steps      []StepState
}

// StepState is one workflow step as it stands.
type StepState struct {
	Name       string
	JobID      int64
	Kind       string
	Status     Status
	Attempts   int
	DependsOn  []string
	StartedAt  *time.Time
	FinishedAt *time.Time
	Result     []byte
	LastError  *string
}

// KindInfo is one published job kind in the catalog: what workers said of
// it when they started.
type KindInfo struct {
	Name        string
	Description string
	Schema      []byte // JSON Schema of the payload
	Policy      Policy
	UpdatedAt   time.Time
	// Workers lists the live workers that run this kind now.
	Workers []string
}

// WorkerInfo is one worker process as it last reported itself.
type WorkerInfo struct {
	ID          string
	Host        string
	Version     string
	Queues      map[string]int // queue → concurrency
	Kinds       []string
	Running     int
	StartedAt   time.Time
	HeartbeatAt time.Time
	Live        bool // heartbeat recent enough; false: stopped or lost
}

// Errors callers match with errors.Is.
var (
	ErrNotFound     = errors.New("not found")
	ErrInvalidState = errors.New("not in a state that allows this")
	ErrUnavailable  = errors.New("database unavailable")
	ErrInvalid      = errors.New("invalid input")
)

// InvalidError is a refused input: the field at fault and why. It matches
// ErrInvalid.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// ListParams filters a job listing. Empty fields do not filter.
type ListParams struct {
	Status Status
	Kind   string
	Queue  string
	After  int64 // keyset cursor: only jobs with a smaller id (newest first)
	Limit  int
	// Brief leaves each job's payload, error history and result out (nil),
	// so a page's size does not depend on them (the HTTP API's lists).
	Brief bool
	// ScanLimit, with a type or queue filter, bounds how many of the newest
	// jobs a page examines (ListPage); 0: no bound.
	ScanLimit int
}

// DeadFilter selects dead jobs for bulk retry or deletion. Empty fields
// match everything.
type DeadFilter struct {
	ID    int64 // one job; 0: any
	Kind  string
	Queue string
}

// WorkflowParams declares a workflow: a DAG of steps.
type WorkflowParams struct {
	Name  string
	Steps []WorkflowStep
	// OnFailure, if set, is enqueued in the transaction that fails the
	// workflow (to compensate: refund, restock); its payload, a JSON
	// object, gets "workflow_id" added.
	OnFailure *EnqueueParams
	RequestID string
}

// WorkflowStep is one job of a workflow and the steps it waits for. Its
// Params take no RunAt and no IdempotencyKey.
type WorkflowStep struct {
	Name      string
	Params    EnqueueParams
	DependsOn []string
	// ContinueOnFailure lets dependants run when this step dies, instead of
	// cancelling them and failing the workflow.
	ContinueOnFailure bool
}

// BatchError is a refused element of a batch: its position and why.
type BatchError struct {
	Index int
	Err   error
}

func (e *BatchError) Error() string { return fmt.Sprintf("job %d: %v", e.Index, e.Err) }
func (e *BatchError) Unwrap() error { return e.Err }
