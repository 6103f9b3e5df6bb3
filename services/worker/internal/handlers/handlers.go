// Package handlers holds the worker's job handlers; their payload types live
// in shared/jobs so the API can validate them.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/jobs"
)

// Options configures the handlers.
type Options struct {
	Pool       *pgxpool.Pool
	Diagnostic bool          // register noop, sleep and fail
	Latency    time.Duration // of each simulated service call
	// Failure rates of the simulated services, 0..1.
	EmailFailure, InvoiceFailure, InventoryFailure, PaymentFailure float64
}

// Register adds every handler to reg, each with its type's policy.
func Register(reg *jobqueue.Registry, o Options) {
	if o.Diagnostic {
		register(reg, noop)
		register(reg, sleep)
		register(reg, failJob)
	}
	sim := simulator{pool: o.Pool, latency: o.Latency}
	register(reg, func(ctx context.Context, job *jobqueue.Job, e jobs.SendEmail) error {
		return sim.sendEmail(ctx, job, e, o.EmailFailure)
	})
	register(reg, func(ctx context.Context, job *jobqueue.Job, g jobs.GenerateInvoice) error {
		if job.WorkflowID != nil {
			return sim.generateInvoice(ctx, job, g, o.InvoiceFailure)
		}
		return sim.call(ctx, o.InvoiceFailure, "invoice service", "order_id", g.OrderID)
	})
	register(reg, func(ctx context.Context, job *jobqueue.Job, s jobs.SyncInventory) error {
		if s.OrderID > 0 {
			return sim.syncInventory(ctx, job, s, o.InventoryFailure)
		}
		return sim.call(ctx, o.InventoryFailure, "inventory service", "sku", s.SKU)
	})
	register(reg, func(ctx context.Context, job *jobqueue.Job, c jobs.ChargePayment) error {
		return sim.chargePayment(ctx, job, c, o.PaymentFailure)
	})
	register(reg, sim.completeOrder)
	register(reg, sim.failOrder)
}

func register[T jobs.Payload](reg *jobqueue.Registry, fn func(context.Context, *jobqueue.Job, T) error) {
	var zero T
	p := jobs.PolicyOf(zero.Kind())
	opts := &jobqueue.HandlerOpts{Timeout: p.Timeout}
	if p.BackoffBase > 0 || p.BackoffMax > 0 {
		b := jobqueue.DefaultBackoff
		if p.BackoffBase > 0 {
			b.Base = p.BackoffBase
		}
		if p.BackoffMax > 0 {
			b.Max = p.BackoffMax
		}
		opts.Backoff = &b
	}
	jobqueue.Register(reg, fn, opts)
}

func noop(context.Context, *jobqueue.Job, jobs.Noop) error { return nil }

func sleep(ctx context.Context, _ *jobqueue.Job, s jobs.Sleep) error {
	return wait(ctx, time.Duration(s.Ms)*time.Millisecond)
}

func failJob(_ context.Context, job *jobqueue.Job, f jobs.Fail) error {
	if f.Times > 0 && job.Attempts > f.Times {
		return nil
	}
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

// simulator stands in for outside services: calls take time and fail at a
// given rate, as a real mail or payment provider's do. Its log lines go
// through jobqueue.Logger(ctx), so they carry the job's fields.
type simulator struct {
	pool    *pgxpool.Pool
	latency time.Duration
}

func (s simulator) call(ctx context.Context, failureRate float64, service string, attrs ...any) error {
	if err := wait(ctx, s.latency); err != nil {
		return err
	}
	if rand.Float64() < failureRate {
		return fmt.Errorf("%s unavailable (simulated failure)", service)
	}
	jobqueue.Logger(ctx).Debug(service+" call succeeded", attrs...)
	return nil
}

// sendEmail puts the email in the provider's outbox through the effect
// ledger, so however often the job runs, the email is sent once. The
// provider's failures happen before sending; its acknowledgement takes
// SPOOL_SIM_LATENCY after it, the window in which a crash makes the job run
// again.
func (s simulator) sendEmail(ctx context.Context, job *jobqueue.Job, e jobs.SendEmail, failureRate float64) error {
	if rand.Float64() < failureRate {
		return errors.New("mail service unavailable (simulated failure)")
	}
	key := jobqueue.EffectKey(job, "email")
	sent, err := jobqueue.Once(ctx, s.pool, key, job.ID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO sim_emails (effect_key, job_id, recipient, subject, order_id) VALUES ($1, $2, $3, $4, NULLIF($5, 0))`,
			key, job.ID, e.To, e.Subject, e.OrderID)
		return err
	})
	if err != nil {
		return err
	}
	jobqueue.Logger(ctx).Info("email sent", "to", e.To, "effect_key", key, "already_sent", !sent)
	return wait(ctx, s.latency)
}
