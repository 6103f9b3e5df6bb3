// Package handlers holds the worker's job handlers; their payload types live
// in shared/jobs so the API can validate them.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/jobs"
)

// Options configures the handlers.
type Options struct {
	Diagnostic bool          // register noop, sleep and fail
	Latency    time.Duration // of each simulated service call
	// Failure rates of the simulated services, 0..1.
	EmailFailure, InvoiceFailure, InventoryFailure float64
	Logger                                         *slog.Logger
}

// Register adds every handler to reg.
func Register(reg *jobqueue.Registry, o Options) {
	if o.Diagnostic {
		jobqueue.Register(reg, noop, nil)
		jobqueue.Register(reg, sleep, nil)
		jobqueue.Register(reg, failJob, nil)
	}
	sim := simulator{latency: o.Latency, log: o.Logger}
	jobqueue.Register(reg, func(ctx context.Context, job *jobqueue.Job, e jobs.SendEmail) error {
		return sim.call(ctx, job, o.EmailFailure, "mail service", "to", e.To)
	}, nil)
	jobqueue.Register(reg, func(ctx context.Context, job *jobqueue.Job, g jobs.GenerateInvoice) error {
		return sim.call(ctx, job, o.InvoiceFailure, "invoice service", "order_id", g.OrderID)
	}, nil)
	jobqueue.Register(reg, func(ctx context.Context, job *jobqueue.Job, s jobs.SyncInventory) error {
		return sim.call(ctx, job, o.InventoryFailure, "inventory service", "sku", s.SKU)
	}, nil)
}

func noop(context.Context, *jobqueue.Job, jobs.Noop) error { return nil }

func sleep(ctx context.Context, _ *jobqueue.Job, s jobs.Sleep) error {
	return wait(ctx, time.Duration(s.Ms)*time.Millisecond)
}

func failJob(_ context.Context, _ *jobqueue.Job, f jobs.Fail) error {
	msg := f.Message
	if msg == "" {
		msg = "fail job failed, as asked"
	}
	return errors.New(msg)
}

// wait sleeps for d or until ctx ends, whichever is first.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// simulator stands in for an external service: it takes time and fails at a
// given rate, as a real mail or payment provider does.
type simulator struct {
	latency time.Duration
	log     *slog.Logger
}

func (s simulator) call(ctx context.Context, job *jobqueue.Job, failureRate float64, service string, attrs ...any) error {
	if err := wait(ctx, s.latency); err != nil {
		return err
	}
	if rand.Float64() < failureRate {
		return fmt.Errorf("%s unavailable (simulated failure)", service)
	}
	s.log.Debug(service+" call succeeded", append([]any{"job_id", job.ID}, attrs...)...)
	return nil
}
