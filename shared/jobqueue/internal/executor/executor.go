// Package executor runs one attempt of a job: it gives the handler its
// deadline and a context that knows the job (its logger, its result, its
// follow-ups), recovers a panic, stops waiting for a handler that ignores
// its context, and classifies what happened into a Result for the
// completer to write.
package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/spoolq/spool/shared/jobqueue/internal/retry"
	"github.com/spoolq/spool/shared/jobqueue/internal/tracing"
	"github.com/spoolq/spool/shared/spooltype"
)

// Handler runs one attempt of a job. It returns nil for success, a plain
// error to retry with backoff, Permanent(err) to fail at once, or
// Snooze(d).
type Handler func(ctx context.Context, job *spooltype.Job) error

// Causes a job's context can be cancelled with (context.Cause).
var (
	// ErrShutdown: the worker is stopping and the job ran past the
	// shutdown timeout; it is handed back to the queue.
	ErrShutdown = errors.New("worker shutting down")
	// ErrJobTimeout: the job ran past its timeout; it fails and may retry.
	ErrJobTimeout = errors.New("job timed out")
	// ErrJobLost: the job is no longer this worker's (cancelled by a user,
	// rescued, or its lease could not be renewed in time); nothing is
	// written for it.
	ErrJobLost = errors.New("job no longer held by this worker")
)

// AbandonGrace is how long a handler whose context was cancelled may take
// to return before the worker stops waiting for it and frees its slot.
const AbandonGrace = 500 * time.Millisecond

// Outcome is what an attempt led to.
type Outcome int

// The outcomes, as counted in spool_jobs_processed_total.
const (
	Completed Outcome = iota
	Retried
	Dead
	Snoozed
	HandedBack
	Lost
)

var outcomeNames = [...]string{"completed", "retried", "dead", "snoozed", "handed_back", "cancelled"}

func (o Outcome) String() string { return outcomeNames[o] }

// Result is one finished attempt, ready to be written.
type Result struct {
	Outcome   Outcome
	Delay     time.Duration // Retried: until the next attempt; Snoozed: the snooze
	Message   string        // Retried, Dead: the failure
	Value     []byte        // Completed: the result the handler set (JSON), nil if none
	FollowUps []spooltype.EnqueueParams
	Elapsed   time.Duration // the handler's run time
	Ended     time.Time     // when the handler returned
}

// Plain reports whether writing r needs nothing but the job's own row: a
// completion without a result or follow-ups (the common case, which the
// completer batches).
func (r Result) Plain() bool {
	return r.Outcome == Completed && r.Value == nil && len(r.FollowUps) == 0
}

// Attempt is what Run needs to run one attempt.
type Attempt struct {
	Job     *spooltype.Job
	Timeout time.Duration     // the handler's deadline
	Backoff spooltype.Backoff // the job's retry delays
	Log     *slog.Logger      // the worker's logger; the job's fields are added when a line is written
}

// Run runs h for one attempt under ctx (cancelled with ErrShutdown or
// ErrJobLost when the worker must stop it) and classifies the outcome.
func Run(ctx context.Context, h Handler, a Attempt) (r Result) {
	ctx, span := tracing.StartJob(ctx, a.Job)
	defer func() { tracing.EndJob(span, r.Outcome.String(), r.Message) }()
	jc := newJobContext(ctx, a.Log, a.Job)
	hctx, cancel := context.WithTimeoutCause(jc, a.Timeout, ErrJobTimeout)
	defer cancel()
	begin := time.Now()
	err := call(hctx, h, a.Job)
	r = Result{Elapsed: time.Since(begin), Ended: time.Now()}
	if err == nil {
		r.Outcome = Completed
		r.Value, r.FollowUps = jc.outcome()
		return r
	}
	classify(&r, a, err, context.Cause(hctx))
	return r
}

// classify decides what a failed attempt leads to.
func classify(r *Result, a Attempt, err, cause error) {
	var snz *snoozeError
	switch {
	case errors.Is(cause, ErrJobLost):
		r.Outcome = Lost
		return
	case errors.Is(cause, ErrShutdown):
		r.Outcome = HandedBack
		return
	case errors.As(err, &snz):
		r.Outcome, r.Delay = Snoozed, snz.after
		return
	}
	if errors.Is(cause, ErrJobTimeout) && !errors.Is(err, ErrJobTimeout) {
		err = fmt.Errorf("%w: %w", ErrJobTimeout, err)
	}
	var perm *permanentError
	status, delay := retry.Decide(a.Job.Attempts, a.Job.MaxAttempts, a.Backoff, errors.As(err, &perm))
	var ra *retryAfterError
	if status == spooltype.StatusRetrying && errors.As(err, &ra) {
		delay = retry.NotBefore(delay, ra.after, a.Backoff)
	}
	r.Outcome, r.Delay, r.Message = Retried, delay, err.Error()
	if status == spooltype.StatusDead {
		r.Outcome = Dead
	}
}

// call runs h, turning a panic into an error, and stops waiting
// AbandonGrace after ctx ends: a handler that ignores its context keeps
// its goroutine (Go cannot stop it) but no longer holds the slot or the
// job.
func call(ctx context.Context, h Handler, job *spooltype.Job) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("handler panic: %v\n%s", r, debug.Stack())
			}
		}()
		done <- h(ctx, job)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		return err
	case <-time.After(AbandonGrace):
		return fmt.Errorf("handler did not return %s after its context ended: %w", AbandonGrace, context.Cause(ctx))
	}
}

// permanentError marks a failure that must not be retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so the job goes straight to dead instead of
// retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// snoozeError asks for a later run without spending an attempt.
type snoozeError struct{ after time.Duration }

func (e *snoozeError) Error() string { return fmt.Sprintf("snoozed for %s", e.after) }

// Snooze returns an error that makes the job run again after d without
// counting the attempt.
func Snooze(d time.Duration) error { return &snoozeError{after: d} }

// retryAfterError is a failure that must not be retried before after.
type retryAfterError struct {
	after time.Duration
	err   error
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter wraps err so that, if the job retries, it waits at least d
// (capped by the job's backoff max) instead of less.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{after: d, err: err}
}
