// Package maintenance is the work every worker does besides running jobs,
// safe to run in every replica at once: the rescuer returns the jobs of
// lost workers to the queue (by the same retry rule as a failed attempt),
// the pruner deletes finished jobs past their retention, and the registry
// keeps this worker's row in spool_workers fresh.
package maintenance

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/jobqueue/internal/metrics"
	"github.com/spoolq/spool/shared/jobqueue/internal/retry"
	"github.com/spoolq/spool/shared/jobqueue/internal/store"
	"github.com/spoolq/spool/shared/jobqueue/internal/workflow"
	"github.com/spoolq/spool/shared/spooltype"
)

// Every runs fn every interval until ctx ends.
func Every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fn(ctx)
		}
	}
}

// LostWorkerError is the error history entry of a rescued attempt.
const LostWorkerError = "worker lost: lease expired"

// Rescuer returns the running jobs of lost workers to the queue.
type Rescuer struct {
	Store     *store.Store
	DB        store.Pool
	Workflows *workflow.Engine
	Grace     time.Duration     // how long past its lease a job must be before it is taken
	Backoff   spooltype.Backoff // for jobs without backoff of their own
	Batch     int               // most jobs per rescue; 0: 1000
	Metrics   *metrics.Set
	Log       *slog.Logger
}

// Rescued is a job the rescuer returned to the queue.
type Rescued struct {
	store.Expired
	Status spooltype.Status
	Delay  time.Duration
}

// Once rescues one batch in one transaction and returns what it rescued.
// A rescued attempt counts as failed: retrying after its backoff, or dead
// after the last attempt (moving its workflow on).
func (r *Rescuer) Once(ctx context.Context) ([]Rescued, error) {
	var out []Rescued
	err := pgx.BeginFunc(ctx, r.DB, func(tx pgx.Tx) error {
		out = out[:0]
		expired, err := r.Store.LockExpired(ctx, tx, r.Grace, max(r.Batch, 1000))
		if err != nil || len(expired) == 0 {
			return err
		}
		ids := make([]int64, len(expired))
		statuses := make([]spooltype.Status, len(expired))
		delays := make([]time.Duration, len(expired))
		for i, e := range expired {
			b := retry.BackoffOf(e.BackoffBase, e.BackoffMax, r.Backoff)
			ids[i] = e.ID
			statuses[i], delays[i] = retry.Decide(e.Attempts, e.MaxAttempts, b, false)
			out = append(out, Rescued{Expired: e, Status: statuses[i], Delay: delays[i]})
		}
		if err := r.Store.Rescue(ctx, tx, ids, statuses, delays, LostWorkerError); err != nil {
			return err
		}
		for _, j := range out {
			if j.WorkflowID != nil && j.Status == spooltype.StatusDead {
				if err := r.Workflows.Advance(ctx, tx, *j.WorkflowID, j.ID, spooltype.StatusDead, j.ContinueOnFailure); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return out, store.Interpret(err)
}

// Run rescues once and logs and counts what it did; it reports whether it
// rescued anything (then idle workers should look for work).
func (r *Rescuer) Run(ctx context.Context) bool {
	jobs, err := r.Once(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.Log.Warn("rescue failed", "error", err)
		}
		return false
	}
	for _, j := range jobs {
		r.Metrics.Rescue(j.Kind, j.Status)
		r.Log.Warn("rescued job of lost worker", "job_id", j.ID, "type", j.Kind, "queue", j.Queue, "attempt", j.Attempts,
			"lost_worker_id", j.WorkerID, "status", j.Status, "retry_in", j.Delay)
	}
	return len(jobs) > 0
}

// Retention says how long finished jobs are kept, per status. Zero keeps
// them forever.
type Retention struct {
	Completed time.Duration
	Cancelled time.Duration
	Dead      time.Duration // longer by default: dead jobs wait for a human
	Effects   time.Duration // ledger entries
}

// Pruner deletes what is past retention, batch by batch.
type Pruner struct {
	Store     *store.Store
	DB        store.DBTX
	Retention Retention
	Log       *slog.Logger
}

// workerRetention is how long a stopped or lost worker's row is kept.
const workerRetention = 24 * time.Hour

// Once deletes everything past retention, pausing between batches to leave
// the database to real work, and returns how many rows it deleted.
func (p *Pruner) Once(ctx context.Context) int64 {
	var total int64
	steps := []struct {
		name string
		keep time.Duration
		fn   func() (int64, error)
	}{
		{"completed", p.Retention.Completed, func() (int64, error) {
			return p.Store.Prune(ctx, p.DB, spooltype.StatusCompleted, p.Retention.Completed)
		}},
		{"cancelled", p.Retention.Cancelled, func() (int64, error) {
			return p.Store.Prune(ctx, p.DB, spooltype.StatusCancelled, p.Retention.Cancelled)
		}},
		{"dead", p.Retention.Dead, func() (int64, error) { return p.Store.Prune(ctx, p.DB, spooltype.StatusDead, p.Retention.Dead) }},
		{"effects", p.Retention.Effects, func() (int64, error) { return p.Store.PruneEffects(ctx, p.DB, p.Retention.Effects) }},
		{"workers", workerRetention, func() (int64, error) { return p.Store.PruneWorkers(ctx, p.DB, workerRetention) }},
	}
	for _, s := range steps {
		for s.keep > 0 && ctx.Err() == nil {
			n, err := s.fn()
			total += n
			if err != nil {
				if ctx.Err() == nil { // a stopping worker's cut-off batch is not a failure
					p.Log.Warn("prune failed", "what", s.name, "error", err)
				}
				break
			}
			if n < store.PruneBatch {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return total
}

// Run prunes once and logs what it deleted.
func (p *Pruner) Run(ctx context.Context) {
	if n := p.Once(ctx); n > 0 {
		p.Log.Info("pruned finished jobs", "deleted", n)
	}
}

// HeartbeatInterval is how often a worker refreshes its row; LiveWithin is
// how recent a heartbeat must be for the worker to count as live.
const (
	HeartbeatInterval = 5 * time.Second
	LiveWithin        = 3*HeartbeatInterval + 5*time.Second
)

// Registry keeps a worker's row in spool_workers.
type Registry struct {
	Store   *store.Store
	DB      store.DBTX
	Worker  spooltype.WorkerInfo
	Running func() int
	Log     *slog.Logger
}

// Register writes the worker's row.
func (g *Registry) Register(ctx context.Context) error {
	return g.Store.RegisterWorker(ctx, g.DB, g.Worker)
}

// Beat refreshes the heartbeat.
func (g *Registry) Beat(ctx context.Context) {
	bctx, cancel := context.WithTimeout(ctx, HeartbeatInterval)
	defer cancel()
	if err := g.Store.Heartbeat(bctx, g.DB, g.Worker.ID, g.Running()); err != nil && ctx.Err() == nil {
		g.Log.Warn("worker heartbeat failed", "error", err)
	}
}

// Stop marks a clean stop.
func (g *Registry) Stop(ctx context.Context) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := g.Store.StopWorker(sctx, g.DB, g.Worker.ID); err != nil {
		g.Log.Warn("worker stop not recorded", "error", err)
	}
}
