package orders

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/jobqueue"
)

// The pipeline's effects. Each runs through the effect ledger keyed by the
// order (not the job), so however often a step is retried or re-run after
// a crash, its effect happens once.

// ErrDeclined is the payment provider refusing the card; retrying cannot
// change its mind.
var ErrDeclined = errors.New("card declined")

// DeclinedSuffix is the test card ending that the simulated provider
// declines, like a payment provider's test numbers.
const DeclinedSuffix = "0002"

// charge captures an order's total once and returns the payment's id.
func charge(ctx context.Context, c *jobqueue.Client, orderID, amount int64, last4 string) (int64, error) {
	if last4 == DeclinedSuffix {
		return 0, jobqueue.Permanent(fmt.Errorf("%w (card ending %s)", ErrDeclined, last4))
	}
	var id int64
	_, err := c.Once(ctx, fmt.Sprintf("order:%d:charge", orderID), 0, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO spool_demo.payments (order_id, amount_cents) VALUES ($1, $2) RETURNING id`, orderID, amount).Scan(&id)
	})
	if err != nil {
		return 0, err
	}
	if id == 0 { // charged before this attempt: report that payment
		err = c.Pool().QueryRow(ctx, `SELECT id FROM spool_demo.payments WHERE order_id = $1`, orderID).Scan(&id)
	}
	return id, err
}

// invoice issues an order's invoice once.
func invoice(ctx context.Context, c *jobqueue.Client, orderID, paymentID, amount int64) error {
	_, err := c.Once(ctx, fmt.Sprintf("order:%d:invoice", orderID), 0, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO spool_demo.invoices (order_id, payment_id, amount_cents) VALUES ($1, $2, $3)`, orderID, paymentID, amount)
		return err
	})
	return err
}

// syncInventory tells the warehouse system about an order's items once.
func syncInventory(ctx context.Context, c *jobqueue.Client, orderID int64) error {
	_, err := c.Once(ctx, fmt.Sprintf("order:%d:inventory", orderID), 0, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO spool_demo.inventory_syncs (order_id, sku, delta)
			SELECT order_id, sku, -quantity FROM spool_demo.order_items WHERE order_id = $1`, orderID)
		return err
	})
	return err
}

// complete marks an order fulfilled.
func complete(ctx context.Context, c *jobqueue.Client, orderID int64) error {
	_, err := c.Pool().Exec(ctx, `UPDATE spool_demo.orders SET status = 'fulfilled', updated_at = now() WHERE id = $1 AND status = 'processing'`, orderID)
	return err
}

// fail compensates a failed order once: refunds its charge if one was
// captured, returns its reserved stock, and marks it failed with the
// reason its pipeline gave.
func fail(ctx context.Context, c *jobqueue.Client, orderID int64) error {
	var wfID *int64
	if err := c.Pool().QueryRow(ctx, `SELECT workflow_id FROM spool_demo.orders WHERE id = $1`, orderID).Scan(&wfID); err != nil {
		return err
	}
	reason := "failed"
	if wfID != nil {
		wf, err := c.GetWorkflow(ctx, *wfID)
		if err != nil {
			return err
		}
		reason = failure(wf)
	}
	_, err := c.Once(ctx, fmt.Sprintf("order:%d:fail", orderID), 0, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE spool_demo.payments SET status = 'refunded' WHERE order_id = $1 AND status = 'captured'`, orderID); err != nil {
			return err
		}
		// Take the rows in SKU order first, as placing an order does.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM spool_demo.products WHERE sku IN (SELECT sku FROM spool_demo.order_items WHERE order_id = $1)
			ORDER BY sku FOR UPDATE`, orderID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE spool_demo.products p SET stock = p.stock + i.quantity FROM spool_demo.order_items i
			WHERE i.order_id = $1 AND i.sku = p.sku`, orderID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE spool_demo.orders SET status = 'failed', updated_at = now(), failure = $2
			WHERE id = $1 AND status = 'processing'`, orderID, reason)
		return err
	})
	return err
}

// failure is the first step that died or was cancelled by a user, with
// its last error.
func failure(wf *jobqueue.Workflow) string {
	for _, s := range wf.Steps {
		if s.Status != jobqueue.StatusDead && s.Status != jobqueue.StatusCancelled {
			continue
		}
		if s.LastError != nil && s.Status == jobqueue.StatusCancelled && *s.LastError == "cancelled: an earlier step of the workflow failed" {
			continue
		}
		msg := string(s.Status)
		if s.LastError != nil {
			msg = *s.LastError
		}
		return s.Name + ": " + msg
	}
	return "failed"
}
