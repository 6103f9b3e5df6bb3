package jobqueue

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Args is a typed job payload; Kind is its stable type name ("send_email"),
// never derived from the Go type's name, so renaming a struct strands nothing.
type Args interface {
	Kind() string
}

// HandlerFunc runs one attempt of a job. Return nil for success, a plain
// error to retry with backoff, Permanent(err) to fail at once, or Snooze(d).
type HandlerFunc func(ctx context.Context, job *Job) error

// HandlerOpts tunes one job type; nil means the worker's defaults.
type HandlerOpts struct {
	Timeout time.Duration // overridden by a job's own timeout
	Backoff *Backoff      // overridden by a job's own backoff
}

type handler struct {
	fn   HandlerFunc
	opts HandlerOpts
}

// Registry maps job types to handlers.
type Registry struct {
	handlers map[string]handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{handlers: map[string]handler{}} }

// Handle registers fn for typ. Registering a type twice is a programming
// error and panics at start-up.
func (r *Registry) Handle(typ string, fn HandlerFunc, opts *HandlerOpts) {
	if _, dup := r.handlers[typ]; dup {
		panic(fmt.Sprintf("jobqueue: handler for %q registered twice", typ))
	}
	h := handler{fn: fn}
	if opts != nil {
		h.opts = *opts
	}
	r.handlers[typ] = h
}

// Register adds a handler that receives the job's payload decoded into T.
// A payload that does not decode fails the job permanently: retrying cannot
// fix it.
func Register[T Args](r *Registry, fn func(ctx context.Context, job *Job, args T) error, opts *HandlerOpts) {
	var zero T
	r.Handle(zero.Kind(), func(ctx context.Context, job *Job) error {
		var args T
		if err := json.Unmarshal(job.Payload, &args); err != nil {
			return Permanent(fmt.Errorf("decode %s payload: %w", job.Type, err))
		}
		return fn(ctx, job, args)
	}, opts)
}

// Types lists the registered job types, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.handlers))
	for t := range r.handlers {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
