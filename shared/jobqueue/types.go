package jobqueue

import (
	"github.com/spoolq/spool/shared/jobqueue/internal/enqueue"
	"github.com/spoolq/spool/shared/jobqueue/internal/store"
	"github.com/spoolq/spool/shared/spooltype"
)

// The plain types of the queue. They are defined in package spooltype, so
// that the internal packages can name them too; these aliases are the
// names to use.
type (
	// Job is one job as stored.
	Job = spooltype.Job
	// Status is a job's place in its life cycle.
	Status = spooltype.Status
	// AttemptError is one failed attempt in a job's history.
	AttemptError = spooltype.AttemptError
	// Backoff is an exponential retry delay with equal jitter.
	Backoff = spooltype.Backoff
	// Policy is what a job kind declares about its jobs.
	Policy = spooltype.Policy
	// EnqueueParams describes one job to enqueue.
	EnqueueParams = spooltype.EnqueueParams
	// Limit bounds one queue or kind across the cluster.
	Limit = spooltype.Limit
	// QueueStats counts one queue's jobs by status.
	QueueStats = spooltype.QueueStats
	// QueueInfo is one queue's state, depth and limit.
	QueueInfo = spooltype.QueueInfo
	// Workflow is a workflow and its steps.
	Workflow = spooltype.Workflow
	// StepState is one workflow step as it stands.
	StepState = spooltype.StepState
	// WorkflowParams declares a workflow.
	WorkflowParams = spooltype.WorkflowParams
	// WorkflowStep is one step of a workflow to create.
	WorkflowStep = spooltype.WorkflowStep
	// KindInfo is one published kind of the catalog.
	KindInfo = spooltype.KindInfo
	// WorkerInfo is one worker as it last reported itself.
	WorkerInfo = spooltype.WorkerInfo
	// ListParams filters a job listing.
	ListParams = spooltype.ListParams
	// DeadFilter selects dead jobs.
	DeadFilter = spooltype.DeadFilter
	// InvalidError is a refused input: the field at fault and why.
	InvalidError = spooltype.InvalidError
	// BatchError is a refused element of a batch.
	BatchError = spooltype.BatchError
	// DBTX is what both a pool and a transaction offer.
	DBTX = store.DBTX
)

// The statuses a job can have.
const (
	StatusPending   = spooltype.StatusPending
	StatusRunning   = spooltype.StatusRunning
	StatusRetrying  = spooltype.StatusRetrying
	StatusCompleted = spooltype.StatusCompleted
	StatusDead      = spooltype.StatusDead
	StatusCancelled = spooltype.StatusCancelled
	StatusBlocked   = spooltype.StatusBlocked
)

// AllStatuses lists every status, in life-cycle order.
var AllStatuses = spooltype.AllStatuses

// Defaults and limit scopes.
const (
	DefaultQueue       = spooltype.DefaultQueue
	DefaultMaxAttempts = spooltype.DefaultMaxAttempts
	ScopeQueue         = spooltype.ScopeQueue
	ScopeKind          = spooltype.ScopeKind
	ScopeHost          = spooltype.ScopeHost
)

// DefaultBackoff: 1 s, 2 s, 4 s … capped at one hour.
var DefaultBackoff = spooltype.DefaultBackoff

// Errors callers match with errors.Is.
var (
	ErrNotFound     = spooltype.ErrNotFound
	ErrInvalidState = spooltype.ErrInvalidState
	ErrUnavailable  = spooltype.ErrUnavailable
	ErrInvalid      = spooltype.ErrInvalid
)

// The input rules, the same the library applies at enqueue (the tables'
// CHECK constraints state their lengths).
var (
	CheckQueueName = spooltype.CheckQueueName
	CheckKindName  = spooltype.CheckKindName
	ValidText      = spooltype.ValidText
)

// IsConnError reports whether err means the database could not be reached
// (as opposed to an error the server answered with).
func IsConnError(err error) bool { return store.IsConnError(err) }

// Bounds of enqueue parameters.
const (
	MinPriority      = spooltype.MinPriority
	MaxPriority      = spooltype.MaxPriority
	MaxKeyBytes      = spooltype.MaxKeyBytes
	MaxAttemptsLimit = enqueue.MaxAttemptsLimit
	MaxJobDuration   = enqueue.MaxDuration // of a timeout or backoff
	MaxSchedule      = enqueue.MaxSchedule // how far ahead RunAt may be
)

// A job's error history: each message is cut to MaxErrorBytes; the
// history keeps the first HistoryFirst entries and the newest, HistoryKept
// in all, and counts the rest in Job.ErrorsDropped.
const (
	MaxErrorBytes = store.MaxErrorBytes
	HistoryKept   = store.HistoryKept
	HistoryFirst  = store.HistoryFirst
)

// ReservedKeyPrefix starts the idempotency keys Spool uses itself;
// callers' keys may not start with it.
const ReservedKeyPrefix = enqueue.ReservedKeyPrefix

// CheckParams checks p as Enqueue will, without a database: every field
// against the library's rules (not the payload against its kind's schema,
// which a process that does not declare the kind cannot know). A refusal
// is an *InvalidError.
func CheckParams(p EnqueueParams) error {
	_, err := (&enqueue.Enqueuer{}).Row(p)
	return err
}
