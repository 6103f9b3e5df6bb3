package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/jobqueue"
)

// Settings are the simulated services' behaviour (SPOOL_SIM_*): latency and
// transient failure rates, as a real mail or payment provider has.
type Settings struct {
	Latency          time.Duration `envconfig:"SIM_LATENCY" default:"20ms" desc:"demo: latency of each simulated service call"`
	EmailFailure     float64       `envconfig:"SIM_EMAIL_FAILURE_RATE" default:"0.1" desc:"demo: share of confirmation emails that fail transiently (0..1)"`
	InvoiceFailure   float64       `envconfig:"SIM_INVOICE_FAILURE_RATE" default:"0" desc:"demo: share of invoice attempts that fail (0..1)"`
	InventoryFailure float64       `envconfig:"SIM_INVENTORY_FAILURE_RATE" default:"0" desc:"demo: share of inventory syncs that fail (0..1)"`
	PaymentFailure   float64       `envconfig:"SIM_PAYMENT_FAILURE_RATE" default:"0.05" desc:"demo: share of charges that fail transiently (0..1); cards ending 0002 are always declined"`
}

// Check refuses rates outside 0..1.
func (s Settings) Check() error {
	for name, r := range map[string]float64{"SPOOL_SIM_EMAIL_FAILURE_RATE": s.EmailFailure, "SPOOL_SIM_INVOICE_FAILURE_RATE": s.InvoiceFailure,
		"SPOOL_SIM_INVENTORY_FAILURE_RATE": s.InventoryFailure, "SPOOL_SIM_PAYMENT_FAILURE_RATE": s.PaymentFailure} {
		if r < 0 || r > 1 {
			return fmt.Errorf("configuration: %s must be between 0 and 1", name)
		}
	}
	return nil
}

// AddKinds registers the pipeline's kinds; client records their effects in
// the effect ledger.
func AddKinds(kinds *jobqueue.Kinds, client *jobqueue.Client, s Settings) {
	sim := simulator{client: client, s: s}
	desc := func(d string) *jobqueue.KindOpts { return &jobqueue.KindOpts{Description: "order demo: " + d} }
	jobqueue.AddKind(kinds, sim.chargePayment, desc("charges the order's card (simulated payment provider)"))
	jobqueue.AddKind(kinds, sim.sendEmail, desc("sends the order's confirmation (simulated mail service)"))
	jobqueue.AddKind(kinds, sim.generateInvoice, desc("issues the order's invoice"))
	jobqueue.AddKind(kinds, sim.syncInventory, desc("tells the warehouse about the order's items"))
	jobqueue.AddKind(kinds, sim.completeOrder, desc("marks the order fulfilled"))
	jobqueue.AddKind(kinds, sim.failOrder, desc("compensates a failed order: refund, restock"))
}

// simulator stands in for outside services: each call waits its latency,
// then fails at its rate, then records its effect once via the ledger.
// Its log lines go through jobqueue.Logger(ctx), so they carry the job's
// fields.
type simulator struct {
	client *jobqueue.Client
	s      Settings
}

// flaky waits out the simulated service's latency and fails at its rate.
func (s simulator) flaky(ctx context.Context, failureRate float64, service string) error {
	if err := wait(ctx, s.s.Latency); err != nil {
		return err
	}
	if rand.Float64() < failureRate {
		return fmt.Errorf("%s unavailable (simulated failure)", service)
	}
	return nil
}

func (s simulator) chargePayment(ctx context.Context, _ *jobqueue.Job, c ChargePayment) error {
	if err := s.flaky(ctx, s.s.PaymentFailure, "payment provider"); err != nil {
		return err
	}
	id, err := charge(ctx, s.client, c.OrderID, c.AmountCents, c.CardLast4)
	if err != nil {
		return err
	}
	jobqueue.Logger(ctx).Info("payment captured", "order_id", c.OrderID, "payment_id", id)
	return jobqueue.SetResult(ctx, map[string]int64{"payment_id": id})
}

// sendEmail puts the email in the provider's outbox through the effect
// ledger, so however often the job runs, the email is sent once. The
// provider's failures happen before sending; its acknowledgement takes the
// latency after it, the window in which a crash makes the job run again.
func (s simulator) sendEmail(ctx context.Context, job *jobqueue.Job, e SendEmail) error {
	if rand.Float64() < s.s.EmailFailure {
		return errors.New("mail service unavailable (simulated failure)")
	}
	key := jobqueue.EffectKey(job, "email")
	sent, err := s.client.Once(ctx, key, job.ID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO spool_demo.emails (effect_key, job_id, recipient, subject, order_id)
			VALUES ($1, $2, $3, $4, NULLIF($5, 0))`, key, job.ID, e.To, e.Subject, e.OrderID)
		return err
	})
	if err != nil {
		return err
	}
	jobqueue.Logger(ctx).Info("confirmation email sent", "order_id", e.OrderID, "effect_key", key, "already_sent", !sent)
	return wait(ctx, s.s.Latency)
}

func (s simulator) generateInvoice(ctx context.Context, job *jobqueue.Job, g GenerateInvoice) error {
	if err := s.flaky(ctx, s.s.InvoiceFailure, "invoice service"); err != nil {
		return err
	}
	parents, err := s.client.ParentResults(ctx, job)
	if err != nil {
		return err
	}
	var charge struct {
		PaymentID int64 `json:"payment_id"`
	}
	if err := json.Unmarshal(parents["charge"], &charge); err != nil || charge.PaymentID == 0 {
		return jobqueue.Permanent(fmt.Errorf("invoice for order %d: no payment id from the charge step", g.OrderID))
	}
	return invoice(ctx, s.client, g.OrderID, charge.PaymentID, g.AmountCents)
}

func (s simulator) syncInventory(ctx context.Context, _ *jobqueue.Job, si SyncInventory) error {
	if err := s.flaky(ctx, s.s.InventoryFailure, "inventory service"); err != nil {
		return err
	}
	return syncInventory(ctx, s.client, si.OrderID)
}

func (s simulator) completeOrder(ctx context.Context, _ *jobqueue.Job, c CompleteOrder) error {
	return complete(ctx, s.client, c.OrderID)
}

func (s simulator) failOrder(ctx context.Context, _ *jobqueue.Job, f FailOrder) error {
	return fail(ctx, s.client, f.OrderID)
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
