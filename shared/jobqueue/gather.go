package jobqueue

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spoolq/spool/shared/jobqueue/internal/enqueue"
	"github.com/spoolq/spool/shared/jobqueue/internal/store"
)

// Gatherer shares statements and commits among concurrent single
// enqueues (group commit). Each Enqueue returns only once its job is
// durable, exactly as Client.Enqueue does; but while a statement is being
// written, the jobs that arrive meanwhile wait for the next one and go
// together, in one INSERT and one commit. A lone caller is never delayed:
// its job goes at once. A job the database refuses fails alone: when a
// gathered statement fails for a reason of the data, each of its jobs is
// written again on its own.
type Gatherer struct {
	c    *Client
	opts GatherOpts

	mu       sync.Mutex
	waiting  []*gathered
	flushing int // statements in flight
}

// GatherOpts tune a Gatherer.
type GatherOpts struct {
	// MaxBatch is the most jobs in one statement (default 500).
	MaxBatch int
	// MaxFlushes is the most statements in flight at once (default 2):
	// jobs arriving while they all run wait for the next.
	MaxFlushes int
	// Timeout bounds one statement and its commit (default 10 s); it is not
	// the callers' deadline, whose ends do not abandon a gathered write.
	Timeout time.Duration
}

type gathered struct {
	row  store.InsertRow
	done chan gatherResult // buffered: the flusher never blocks on it
}

type gatherResult struct {
	res EnqueueResult
	err error
}

// NewGatherer returns a gatherer writing through c.
func (c *Client) NewGatherer(opts *GatherOpts) *Gatherer {
	g := &Gatherer{c: c}
	if opts != nil {
		g.opts = *opts
	}
	g.opts.MaxBatch = orDefault(g.opts.MaxBatch, 500)
	g.opts.MaxFlushes = orDefault(g.opts.MaxFlushes, 2)
	if g.opts.Timeout <= 0 {
		g.opts.Timeout = 10 * time.Second
	}
	return g
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Enqueue writes one job, as Client.Enqueue does, sharing the statement
// and the commit with concurrent callers. A job it cannot accept is
// refused at once, before it joins anything.
func (g *Gatherer) Enqueue(ctx context.Context, p EnqueueParams) (EnqueueResult, error) {
	r, err := g.c.enq.Row(p)
	if err != nil {
		return EnqueueResult{}, err
	}
	enqueue.TraceRow(ctx, &r)
	item := &gathered{row: r, done: make(chan gatherResult, 1)}
	g.mu.Lock()
	g.waiting = append(g.waiting, item)
	var batch []*gathered
	if g.flushing < g.opts.MaxFlushes {
		batch = g.take()
		g.flushing++
	}
	g.mu.Unlock()
	if batch != nil {
		g.flushFrom(ctx, batch)
	}
	res := <-item.done
	return res.res, res.err
}

// take removes up to MaxBatch waiting jobs; call it with mu held.
func (g *Gatherer) take() []*gathered {
	n := min(len(g.waiting), g.opts.MaxBatch)
	batch := g.waiting[:n:n]
	g.waiting = g.waiting[n:]
	if len(g.waiting) == 0 {
		g.waiting = nil // do not keep the old array alive
	}
	return batch
}

// flushFrom writes batch, then whatever gathered meanwhile, until nothing
// waits.
func (g *Gatherer) flushFrom(ctx context.Context, batch []*gathered) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.opts.Timeout)
	defer cancel()
	for {
		g.flush(ctx, batch)
		g.mu.Lock()
		if len(g.waiting) == 0 {
			g.flushing--
			g.mu.Unlock()
			return
		}
		batch = g.take()
		g.mu.Unlock()
	}
}

func (g *Gatherer) flush(ctx context.Context, batch []*gathered) {
	if len(batch) == 1 {
		g.one(ctx, batch[0])
		return
	}
	rows := make([]store.InsertRow, len(batch))
	for i, it := range batch {
		rows[i] = it.row
	}
	// One statement, committed on its own: one round trip for the group.
	// Ids are matched to rows by their order of assignment within it.
	jobs, ins, err := g.c.enq.InsertJobs(ctx, g.c.pool, rows)
	switch {
	case err == nil:
		for i, it := range batch {
			if job := jobs[i]; job != nil {
				it.done <- gatherResult{res: EnqueueResult{Job: job, Duplicate: ins[i].Duplicate}}
			} else {
				g.one(ctx, it) // its key's holder was pruned meanwhile: alone, it retries
			}
		}
	case dataError(err):
		for _, it := range batch { // one of them is at fault: each alone
			g.one(ctx, it)
		}
	default:
		err = store.Interpret(err)
		for _, it := range batch {
			it.done <- gatherResult{err: err}
		}
	}
}

// one writes a job alone.
func (g *Gatherer) one(ctx context.Context, it *gathered) {
	job, dup, err := g.c.enq.Insert(ctx, g.c.pool, it.row)
	it.done <- gatherResult{res: EnqueueResult{Job: job, Duplicate: dup}, err: err}
}

// dataError reports whether err is the database refusing data (SQLSTATE
// classes 22 and 23), which one job of a gathered statement may cause.
func dataError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code[:2] == "22" || pgErr.Code[:2] == "23")
}
