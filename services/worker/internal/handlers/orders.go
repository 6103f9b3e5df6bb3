package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/jobs"
	"github.com/spoolq/spool/shared/orders"
)

// The order pipeline's steps. Each calls a simulated service (latency and
// transient failures first), then records its effect once via the ledger.

func (s simulator) chargePayment(ctx context.Context, _ *jobqueue.Job, c jobs.ChargePayment, failureRate float64) error {
	if err := s.flaky(ctx, failureRate, "payment provider"); err != nil {
		return err
	}
	id, err := orders.Charge(ctx, s.pool, c.OrderID, c.AmountCents, c.CardLast4)
	if err != nil {
		return err
	}
	jobqueue.Logger(ctx).Info("payment captured", "order_id", c.OrderID, "payment_id", id)
	return jobqueue.SetResult(ctx, map[string]int64{"payment_id": id})
}

func (s simulator) generateInvoice(ctx context.Context, job *jobqueue.Job, g jobs.GenerateInvoice, failureRate float64) error {
	if err := s.flaky(ctx, failureRate, "invoice service"); err != nil {
		return err
	}
	parents, err := jobqueue.ParentResults(ctx, s.pool, job)
	if err != nil {
		return err
	}
	var charge struct {
		PaymentID int64 `json:"payment_id"`
	}
	if err := json.Unmarshal(parents["charge"], &charge); err != nil || charge.PaymentID == 0 {
		return jobqueue.Permanent(fmt.Errorf("invoice for order %d: no payment id from the charge step", g.OrderID))
	}
	return orders.Invoice(ctx, s.pool, g.OrderID, charge.PaymentID, g.AmountCents)
}

func (s simulator) syncInventory(ctx context.Context, job *jobqueue.Job, si jobs.SyncInventory, failureRate float64) error {
	if err := s.flaky(ctx, failureRate, "inventory service"); err != nil {
		return err
	}
	return orders.SyncInventory(ctx, s.pool, si.OrderID)
}

// flaky waits out the simulated service's latency and fails at its rate.
func (s simulator) flaky(ctx context.Context, failureRate float64, service string) error {
	if err := wait(ctx, s.latency); err != nil {
		return err
	}
	if rand.Float64() < failureRate {
		return fmt.Errorf("%s unavailable (simulated failure)", service)
	}
	return nil
}

func (s simulator) completeOrder(ctx context.Context, _ *jobqueue.Job, c jobs.CompleteOrder) error {
	return orders.Complete(ctx, s.pool, c.OrderID)
}

func (s simulator) failOrder(ctx context.Context, _ *jobqueue.Job, f jobs.FailOrder) error {
	return orders.Fail(ctx, s.pool, f.OrderID)
}
