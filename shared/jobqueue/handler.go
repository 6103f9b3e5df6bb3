package jobqueue

import (
	"context"
	"log/slog"
	"time"

	"github.com/spoolq/spool/shared/jobqueue/internal/executor"
)

// What a handler can do besides returning nil or an error.

// Permanent wraps err so the job goes straight to dead instead of
// retrying (a declined card will not be accepted on the fifth try).
func Permanent(err error) error { return executor.Permanent(err) }

// Snooze returns an error that makes the job run again after d without
// counting the attempt (waiting for a resource is not a failure).
func Snooze(d time.Duration) error { return executor.Snooze(d) }

// RetryAfter wraps err so that, if the job is retried, the next attempt
// comes no earlier than d from now: the larger of d and the job's backoff
// delay, capped by the job's backoff max (a server's Retry-After cannot
// park a job longer than its policy allows). The attempt is spent as for
// a plain error; a permanent failure or the last attempt is dead as
// always.
func RetryAfter(d time.Duration, err error) error { return executor.RetryAfter(d, err) }

// SetResult stores v (as JSON, at most MaxResultBytes) as the job's
// result when it completes; workflow steps read their parents' results
// with Client.ParentResults.
func SetResult(ctx context.Context, v any) error { return executor.SetResult(ctx, v) }

// MaxResultBytes bounds a job's stored result.
const MaxResultBytes = executor.MaxResultBytes

// Then chains follow-up jobs: they are enqueued in the same transaction
// that marks this job completed, so neither exists without the other. If
// the job fails instead, they are not enqueued.
func Then(ctx context.Context, jobs ...EnqueueParams) error { return executor.Then(ctx, jobs...) }

// Logger returns the logger for a handler's lines about its job: the
// worker's logger carrying the job's job_id, type, queue, attempt and
// worker_id. Outside a handler it returns slog.Default().
func Logger(ctx context.Context) *slog.Logger { return executor.Logger(ctx) }

// Causes a job's context can be cancelled with (context.Cause).
var (
	// ErrShutdown: the worker is stopping and the job ran past the shutdown
	// timeout; it is handed back to the queue.
	ErrShutdown = executor.ErrShutdown
	// ErrJobTimeout: the job ran past its timeout; it fails and may retry.
	ErrJobTimeout = executor.ErrJobTimeout
	// ErrJobLost: the job is no longer this worker's (cancelled by a user,
	// rescued, or its lease could not be renewed in time); nothing is
	// written for it.
	ErrJobLost = executor.ErrJobLost
)

// AttemptResult is what one attempt led to, as RunAttempt reports it.
type AttemptResult struct {
	// Outcome is completed, retried, dead, snoozed, handed_back or
	// cancelled, as counted in spool_jobs_processed_total.
	Outcome   string
	Message   string        // retried, dead: the failure
	Delay     time.Duration // retried: until the next attempt; snoozed: the snooze
	Result    []byte        // completed: what the handler set with SetResult
	FollowUps []EnqueueParams
}

// RunAttempt runs one attempt of job with its kind's handler in kinds, as
// a worker would (deadline, panic recovery, SetResult, Then, Logger), but
// writes nothing: for tests of handlers (package jobqueuetest wraps it).
// job.Attempts is the attempt being run (0 is taken as 1).
func RunAttempt(ctx context.Context, kinds *Kinds, job *Job, timeout time.Duration) (AttemptResult, error) {
	kd, ok := kinds.m[job.Kind]
	if !ok {
		return AttemptResult{}, &InvalidError{Field: "type", Reason: "no such kind in the registry: " + job.Kind}
	}
	j := *job
	if j.Attempts == 0 {
		j.Attempts = 1
	}
	if j.MaxAttempts == 0 {
		j.MaxAttempts = max(kd.info.Policy.MaxAttempts, 1)
	}
	if timeout <= 0 {
		timeout = time.Minute
	}
	b := Backoff{Base: j.BackoffBase, Max: j.BackoffMax}.Or(kd.info.Policy.Backoff).Or(DefaultBackoff)
	r := executor.Run(ctx, kd.handle, executor.Attempt{Job: &j, Timeout: timeout, Backoff: b, Log: slog.Default()})
	return AttemptResult{Outcome: r.Outcome.String(), Message: r.Message, Delay: r.Delay, Result: r.Value, FollowUps: r.FollowUps}, nil
}
