package orders

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolq/spool/shared/jobqueue"
)

// The pipeline's effects. Each runs through the effect ledger keyed by the
// order (not the job), so however often a step is retried or re-run after a
// crash, its effect happens once.

// ErrDeclined is the payment provider refusing the card; retrying cannot
// change its mind.
var ErrDeclined = errors.New("card declined")

// DeclinedSuffix is the test card ending that the simulated provider
// declines, like a payment provider's test numbers.
const DeclinedSuffix = "0002"

// Charge captures an order's total once and returns the payment's id.
func Charge(ctx context.Context, db *pgxpool.Pool, orderID, amount int64, last4 string) (int64, error) {
	if last4 == DeclinedSuffix {
		return 0, jobqueue.Permanent(fmt.Errorf("%w (card ending %s)", ErrDeclined, last4))
	}
	var id int64
	_, err := jobqueue.Once(ctx, db, fmt.Sprintf("order:%d:charge", orderID), 0, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO payments (order_id, amount_cents) VALUES ($1, $2) RETURNING id`, orderID, amount).Scan(&id)
	})
	if err != nil {
		return 0, err
	}
	if id == 0 { // charged before this attempt: report that payment
		err = db.QueryRow(ctx, `SELECT id FROM payments WHERE order_id = $1`, orderID).Scan(&id)
	}
	return id, err
}

// Invoice issues an order's invoice once.
func Invoice(ctx context.Context, db *pgxpool.Pool, orderID, paymentID, amount int64) error {
	_, err := jobqueue.Once(ctx, db, fmt.Sprintf("order:%d:invoice", orderID), 0, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO invoices (order_id, payment_id, amount_cents) VALUES ($1, $2, $3)`, orderID, paymentID, amount)
		return err
	})
	return err
}

// SyncInventory tells the warehouse system about an order's items once.
func SyncInventory(ctx context.Context, db *pgxpool.Pool, orderID int64) error {
	_, err := jobqueue.Once(ctx, db, fmt.Sprintf("order:%d:inventory", orderID), 0, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO inventory_syncs (order_id, sku, delta)
			SELECT order_id, sku, -quantity FROM order_items WHERE order_id = $1`, orderID)
		return err
	})
	return err
}

// Complete marks an order fulfilled.
func Complete(ctx context.Context, db *pgxpool.Pool, orderID int64) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE orders SET status = 'fulfilled', updated_at = now() WHERE id = $1 AND status = 'processing'`, orderID)
		return err
	})
}

// Fail compensates a failed order once: refunds its charge if one was
// captured, returns its reserved stock, and marks it failed with the reason
// its pipeline gave.
func Fail(ctx context.Context, db *pgxpool.Pool, orderID int64) error {
	_, err := jobqueue.Once(ctx, db, fmt.Sprintf("order:%d:fail", orderID), 0, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE payments SET status = 'refunded' WHERE order_id = $1 AND status = 'captured'`, orderID); err != nil {
			return err
		}
		// Take the rows in SKU order first, as placing an order does.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM products WHERE sku IN (SELECT sku FROM order_items WHERE order_id = $1)
			ORDER BY sku FOR UPDATE`, orderID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE products p SET stock = p.stock + i.quantity FROM order_items i
			WHERE i.order_id = $1 AND i.sku = p.sku`, orderID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE orders o SET status = 'failed', updated_at = now(),
			failure = (SELECT j.step || ': ' || coalesce(j.last_error, j.status) FROM spool_jobs j
				WHERE j.workflow_id = o.workflow_id AND j.status IN ('dead', 'cancelled') AND j.cancelled_by IS NULL
				ORDER BY j.id LIMIT 1)
			WHERE id = $1 AND status = 'processing'`, orderID)
		return err
	})
	return err
}
