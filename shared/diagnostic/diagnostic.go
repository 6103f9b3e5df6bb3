// Package diagnostic holds the kinds for trying Spool out, smoke tests and
// benchmarks: noop, sleep and fail. The stock worker runs them when
// SPOOL_DIAGNOSTIC_JOBS is true (make run turns it on; the chart's default
// leaves it off).
package diagnostic

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spoolq/spool/shared/jobqueue"
)

// Noop does nothing.
type Noop struct {
	Seq int64 `json:"seq,omitempty" jsonschema:"description=any number (to tell jobs apart)"`
}

// Sleep waits Ms milliseconds, or until cancelled; for trying timeouts and
// shutdown.
type Sleep struct {
	Ms int `json:"ms" jsonschema:"minimum=0,maximum=3600000"`
}

// Fail fails with Message: on every attempt, or only on the first Times
// attempts when Times > 0; for trying retries and dead jobs.
type Fail struct {
	Message string `json:"message,omitempty" jsonschema:"maxLength=4096"`
	Times   int    `json:"times,omitempty" jsonschema:"minimum=0"`
}

// MaxSleepMs bounds a sleep job to one hour.
const MaxSleepMs = 3_600_000

func (Noop) Kind() string  { return "noop" }
func (Sleep) Kind() string { return "sleep" }
func (Fail) Kind() string  { return "fail" }

// Policy gives a sleep job time for its longest sleep plus a minute.
func (Sleep) Policy() jobqueue.Policy {
	return jobqueue.Policy{Timeout: MaxSleepMs*time.Millisecond + time.Minute}
}

// Validate bounds the sleep.
func (s Sleep) Validate() error {
	if s.Ms < 0 || s.Ms > MaxSleepMs {
		return fmt.Errorf("ms must be between 0 and %d", MaxSleepMs)
	}
	return nil
}

// Validate refuses a negative count.
func (f Fail) Validate() error {
	if f.Times < 0 {
		return errors.New("times must not be negative")
	}
	return nil
}

// Add registers noop, sleep and fail in kinds.
func Add(kinds *jobqueue.Kinds) {
	jobqueue.AddKind(kinds, func(context.Context, *jobqueue.Job, Noop) error { return nil },
		&jobqueue.KindOpts{Description: "does nothing; for smoke tests and benchmarks"})
	jobqueue.AddKind(kinds, sleep, &jobqueue.KindOpts{Description: "waits ms milliseconds, or until cancelled"})
	jobqueue.AddKind(kinds, fail, &jobqueue.KindOpts{Description: "fails with message (only the first times attempts, if given)"})
}

func sleep(ctx context.Context, _ *jobqueue.Job, s Sleep) error {
	t := time.NewTimer(time.Duration(s.Ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func fail(_ context.Context, job *jobqueue.Job, f Fail) error {
	if f.Times > 0 && job.Attempts > f.Times {
		return nil
	}
	msg := f.Message
	if msg == "" {
		msg = "fail job failed, as asked"
	}
	return errors.New(msg)
}
