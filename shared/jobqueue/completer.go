package jobqueue

import (
	"context"
	"time"
)

// completeBatchMax bounds one completion statement.
const completeBatchMax = 2000

// completion is a finished attempt waiting to be written.
type completion struct {
	job     *Job
	elapsed time.Duration
	ended   time.Time
	debug   bool // log "job completed"
}

// completer writes plain completions in batches: while one batch is being
// written, the next collects, so a busy worker commits once per batch
// rather than once per job, and an idle one writes a single completion at
// once. A job counts as completed (metrics, logs) only once its batch is
// durable; the worker drains the completer before it stops.
type completer struct {
	w    *Worker
	in   chan completion
	done chan struct{}
}

func newCompleter(w *Worker) *completer {
	return &completer{w: w, in: make(chan completion, 4*completeBatchMax), done: make(chan struct{})}
}

// run writes batches until in is closed and empty.
func (c *completer) run(ctx context.Context) {
	defer close(c.done)
	for first := range c.in {
		batch := []completion{first}
		open := true
		for open && len(batch) < completeBatchMax {
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

func (c *completer) flush(ctx context.Context, batch []completion) {
	w := c.w
	ids := make([]int64, len(batch))
	ages := make([]float64, len(batch))
	for i, b := range batch {
		ids[i] = b.job.ID
	}
	var written int64
	w.write(ctx, w.log, "complete batch", func(ctx context.Context) (bool, error) {
		now := time.Now()
		for i, b := range batch {
			ages[i] = float64(now.Sub(b.ended).Microseconds()) / 1000
		}
		var err error
		written, err = completeMany(ctx, w.pool, ids, ages, w.cfg.ID)
		return true, err
	})
	if written != int64(len(ids)) {
		w.log.Info("some completions not written: jobs no longer held by this worker", "batch", len(ids), "written", written)
	}
	for _, b := range batch {
		w.cfg.Metrics.finished(b.job.Type, OutcomeCompleted, b.elapsed.Seconds())
		if b.debug {
			w.jobLog(b.job).Debug("job completed")
		}
	}
}
