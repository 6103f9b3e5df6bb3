package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/spoolq/spool/shared/jobqueue/internal/tracing"
	"github.com/spoolq/spool/shared/spooltype"
)

// MaxResultBytes bounds a job's stored result: results are for small facts
// (an id, a total) that later steps read, not for bulk data.
const MaxResultBytes = 64 << 10

// jobContext is a handler's context: it knows its job, builds the job's
// logger when a line is first written (building it for every job would
// cost more than running a small one), and collects what the handler asks
// to be written with its completion. One allocation per job.
type jobContext struct {
	context.Context
	base *slog.Logger
	job  *spooltype.Job
	log  atomic.Pointer[slog.Logger]

	mu        sync.Mutex
	result    []byte
	followUps []spooltype.EnqueueParams
}

type jobContextKey struct{}

func newJobContext(ctx context.Context, base *slog.Logger, job *spooltype.Job) *jobContext {
	return &jobContext{Context: ctx, base: base, job: job}
}

func (c *jobContext) Value(key any) any {
	if _, ok := key.(jobContextKey); ok {
		return c
	}
	return c.Context.Value(key)
}

func (c *jobContext) outcome() ([]byte, []spooltype.EnqueueParams) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.result, c.followUps
}

func jobContextOf(ctx context.Context) (*jobContext, error) {
	c, ok := ctx.Value(jobContextKey{}).(*jobContext)
	if !ok {
		return nil, errors.New("jobqueue: not called from a job handler's context")
	}
	return c, nil
}

// JobLogger is the logger of a job's lines: base with the job's job_id,
// type, queue and attempt.
func JobLogger(base *slog.Logger, job *spooltype.Job) *slog.Logger {
	return base.With("job_id", job.ID, "type", job.Kind, "queue", job.Queue, "attempt", job.Attempts)
}

// Logger returns the job's logger in a handler's context, else
// slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	c, err := jobContextOf(ctx)
	if err != nil {
		return slog.Default()
	}
	if l := c.log.Load(); l != nil {
		return l
	}
	l := JobLogger(c.base, c.job)
	if !c.log.CompareAndSwap(nil, l) {
		return c.log.Load()
	}
	return l
}

// SetResult stores v (as JSON, at most MaxResultBytes) as the job's result
// when it completes.
func SetResult(ctx context.Context, v any) error {
	c, err := jobContextOf(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if len(b) > MaxResultBytes {
		return fmt.Errorf("result is %d bytes; at most %d", len(b), MaxResultBytes)
	}
	c.mu.Lock()
	c.result = b
	c.mu.Unlock()
	return nil
}

// Then chains follow-up jobs, enqueued in the transaction that marks the
// job completed.
func Then(ctx context.Context, jobs ...spooltype.EnqueueParams) error {
	c, err := jobContextOf(ctx)
	if err != nil {
		return err
	}
	parent := tracing.Parent(ctx) // follow-ups continue the handler's trace
	c.mu.Lock()
	for _, j := range jobs {
		if j.TraceParent == "" {
			j.TraceParent = parent
		}
		c.followUps = append(c.followUps, j)
	}
	c.mu.Unlock()
	return nil
}

// Job returns the job of a handler's context, nil outside one.
func Job(ctx context.Context) *spooltype.Job {
	c, err := jobContextOf(ctx)
	if err != nil {
		return nil
	}
	return c.job
}
