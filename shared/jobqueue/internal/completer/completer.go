// Package completer writes the outcomes of attempts. Plain completions go
// in batches: while one batch is being written the next collects, so a
// busy worker commits once per batch rather than once per job, and an idle
// one writes a single completion at once. Everything else (a result,
// follow-up jobs, a workflow step, a failure, a snooze, a hand-back) is
// written at once in a transaction of its own. Every write is fenced by
// the attempt's lease token; a job counts as finished (metrics, logs) only
// once its write is durable.
package completer

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/jobqueue/internal/enqueue"
	"github.com/spoolq/spool/shared/jobqueue/internal/executor"
	"github.com/spoolq/spool/shared/jobqueue/internal/metrics"
	"github.com/spoolq/spool/shared/jobqueue/internal/store"
	"github.com/spoolq/spool/shared/jobqueue/internal/workflow"
	"github.com/spoolq/spool/shared/spooltype"
)

// batchMax bounds one completion statement.
const batchMax = 2000

// done is a plain completion waiting for its batch.
type done struct {
	job     *store.Job
	token   int64
	elapsed time.Duration
	ended   time.Time
}

// Completer writes outcomes.
type Completer struct {
	Store     *store.Store
	DB        store.Pool
	Enqueuer  *enqueue.Enqueuer // follow-up jobs
	Workflows *workflow.Engine
	Metrics   *metrics.Set
	Log       *slog.Logger // the worker's
	// Lease bounds how long a write is retried through an outage: after
	// that the lease has run out and the rescuer owns the job.
	Lease time.Duration

	in       chan done
	finished chan struct{}
}

// Start begins batching; Close ends it once every completion handed in is
// written.
func (c *Completer) Start(ctx context.Context) {
	c.in = make(chan done, 4*batchMax)
	c.finished = make(chan struct{})
	go c.run(ctx)
}

// Close writes what is left and returns when it is written.
func (c *Completer) Close() {
	close(c.in)
	<-c.finished
}

// Write records an attempt's result. Plain completions are batched (it
// returns at once); everything else is written before it returns.
func (c *Completer) Write(ctx context.Context, job *store.Job, token int64, r executor.Result) {
	if r.Plain() && job.WorkflowID == nil {
		c.in <- done{job: job, token: token, elapsed: r.Elapsed, ended: r.Ended}
		return
	}
	ctx = context.WithoutCancel(ctx)
	a := store.Attempt{ID: job.ID, Token: token}
	log := executor.JobLogger(c.Log, job)
	written := false
	switch r.Outcome {
	case executor.Completed:
		written = c.retry(ctx, log, "complete", func(ctx context.Context) (bool, error) { return c.complete(ctx, job, a, r) })
	case executor.Lost:
		log.Info("job was taken away while running (cancelled, rescued, or its lease not renewed in time); outcome discarded")
	case executor.HandedBack:
		written = c.retry(ctx, log, "hand back", func(ctx context.Context) (bool, error) { return c.Store.HandBack(ctx, c.DB, a) })
	case executor.Snoozed:
		written = c.retry(ctx, log, "snooze", func(ctx context.Context) (bool, error) { return c.Store.Snooze(ctx, c.DB, a, r.Delay) })
	case executor.Retried, executor.Dead:
		written = c.retry(ctx, log, "fail", func(ctx context.Context) (bool, error) { return c.fail(ctx, job, a, r) })
	}
	c.ended(log, job, r, written)
}

// ended logs and counts an attempt's end: as its outcome once that is
// written, else as lost (its write was refused or never got through), so
// a stale attempt never counts as done.
func (c *Completer) ended(log *slog.Logger, job *store.Job, r executor.Result, written bool) {
	outcome := r.Outcome
	if !written {
		outcome = executor.Lost
	}
	switch outcome {
	case executor.Completed:
		log.Debug("job completed")
	case executor.HandedBack:
		log.Info("job handed back on shutdown")
	case executor.Snoozed:
		log.Info("job snoozed", "for", r.Delay)
	case executor.Retried:
		log.Warn("job failed, will retry", "error", store.ClipError(r.Message), "retry_in", r.Delay)
	case executor.Dead:
		log.Error("job dead", "error", store.ClipError(r.Message), "max_attempts", job.MaxAttempts)
	}
	c.Metrics.Finished(job.Kind, outcome.String(), r.Elapsed.Seconds())
}

// complete marks a job completed together with its result, its follow-up
// jobs and its workflow's next steps, all in one transaction.
func (c *Completer) complete(ctx context.Context, job *store.Job, a store.Attempt, r executor.Result) (bool, error) {
	held := false
	err := pgx.BeginFunc(ctx, c.DB, func(tx pgx.Tx) error {
		ok, err := c.Store.Complete(ctx, tx, a, string(r.Value))
		if err != nil || !ok {
			return err
		}
		held = true
		if len(r.FollowUps) > 0 {
			if _, err := c.Enqueuer.Many(ctx, tx, r.FollowUps); err != nil {
				return err
			}
		}
		if job.WorkflowID != nil {
			return c.Workflows.Advance(ctx, tx, *job.WorkflowID, job.ID, spooltype.StatusCompleted, job.ContinueOnFailure)
		}
		return nil
	})
	return held, store.Interpret(err)
}

// fail records a failed attempt; a workflow step that dies moves its
// workflow on in the same transaction.
func (c *Completer) fail(ctx context.Context, job *store.Job, a store.Attempt, r executor.Result) (bool, error) {
	status := spooltype.StatusRetrying
	if r.Outcome == executor.Dead {
		status = spooltype.StatusDead
	}
	if status != spooltype.StatusDead || job.WorkflowID == nil {
		return c.Store.Fail(ctx, c.DB, a, status, r.Delay, r.Message)
	}
	held := false
	err := pgx.BeginFunc(ctx, c.DB, func(tx pgx.Tx) error {
		ok, err := c.Store.Fail(ctx, tx, a, status, 0, r.Message)
		if err != nil || !ok {
			return err
		}
		held = true
		return c.Workflows.Advance(ctx, tx, *job.WorkflowID, job.ID, spooltype.StatusDead, job.ContinueOnFailure)
	})
	return held, store.Interpret(err)
}

// retry runs a write through a database outage for up to one lease and
// reports whether it was written (false: refused, the attempt no longer
// held, or given up on).
func (c *Completer) retry(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) (bool, error)) bool {
	deadline := time.Now().Add(c.Lease)
	pause := 50 * time.Millisecond
	for {
		held, err := fn(ctx)
		if err == nil {
			if !held {
				log.Info("outcome not written: job no longer held by this worker", "write", what)
			}
			return held
		}
		if !errors.Is(err, spooltype.ErrUnavailable) || time.Now().After(deadline) {
			log.Error("outcome not written; the job will be rescued when its lease expires", "write", what, "error", err)
			return false
		}
		time.Sleep(pause)
		pause = min(pause*2, 2*time.Second)
	}
}

// run writes batches until in is closed and empty.
func (c *Completer) run(ctx context.Context) {
	defer close(c.finished)
	for first := range c.in {
		batch := []done{first}
		open := true
		for open && len(batch) < batchMax {
			select {
			case next, ok := <-c.in:
				if !ok {
					open = false
					break
				}
				batch = append(batch, next)
			default:
				open = false
			}
		}
		c.flush(ctx, batch)
	}
}

func (c *Completer) flush(ctx context.Context, batch []done) {
	ids := make([]int64, len(batch))
	tokens := make([]int64, len(batch))
	ages := make([]float64, len(batch))
	for i, b := range batch {
		ids[i], tokens[i] = b.job.ID, b.token
	}
	var written []store.Attempt
	ok := c.retry(ctx, c.Log, "complete batch", func(ctx context.Context) (bool, error) {
		now := time.Now()
		for i, b := range batch {
			ages[i] = float64(now.Sub(b.ended).Microseconds()) / 1000
		}
		var err error
		written, err = c.Store.CompleteMany(ctx, c.DB, ids, tokens, ages)
		return true, err
	})
	var held map[store.Attempt]bool // nil: every attempt of the batch was written
	if len(written) != len(batch) {
		held = make(map[store.Attempt]bool, len(written))
		for _, a := range written {
			held[a] = true
		}
	}
	debug := c.Log.Enabled(ctx, slog.LevelDebug)
	for _, b := range batch {
		if held == nil || held[store.Attempt{ID: b.job.ID, Token: b.token}] {
			c.Metrics.Finished(b.job.Kind, executor.Completed.String(), b.elapsed.Seconds())
			if debug {
				executor.JobLogger(c.Log, b.job).Debug("job completed")
			}
			continue
		}
		log := executor.JobLogger(c.Log, b.job)
		if ok { // refused by its lease token; a batch given up on was logged by retry
			log.Info("outcome not written: job no longer held by this worker", "write", "complete")
		}
		c.ended(log, b.job, executor.Result{Outcome: executor.Completed, Elapsed: b.elapsed}, false)
	}
}
