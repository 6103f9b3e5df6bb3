package jobqueue

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// Logger returns the logger for a handler's lines about its job: the
// worker's logger carrying the job's job_id, type, queue, attempt and
// worker_id, like the worker's own lines about the job. Called with a
// context that is not a job handler's, it returns slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(jobLogKey{}).(*jobLogContext); ok {
		return l.logger()
	}
	return slog.Default()
}

type jobLogKey struct{}

// jobLogContext is a job's context that knows its job, so that Logger can
// build the job's logger when a line is first written: building it for
// every job would cost more than running a small one (see jobLog). It is
// one allocation per job, where context.WithValue and a struct would be two.
type jobLogContext struct {
	context.Context
	w   *Worker
	job *Job
	log atomic.Pointer[slog.Logger]
}

func (w *Worker) withJobLog(ctx context.Context, job *Job) context.Context {
	return &jobLogContext{Context: ctx, w: w, job: job}
}

func (c *jobLogContext) Value(key any) any {
	if _, ok := key.(jobLogKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// logger is the job's logger, built once.
func (c *jobLogContext) logger() *slog.Logger {
	if l := c.log.Load(); l != nil {
		return l
	}
	l := c.w.jobLog(c.job)
	if !c.log.CompareAndSwap(nil, l) {
		return c.log.Load()
	}
	return l
}
