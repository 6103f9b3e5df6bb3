// Package shop is a team's own application beside Spool: its own orders
// table in its own database, and one kind of its own, shop.receipt, that
// it enqueues in the same transaction as the order and runs in its own
// worker binary (cmd/shop-worker). The stock spool-api accepts the kind
// over HTTP too, validated against the schema the worker publishes.
package shop

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolq/spool/shared/jobqueue"
)

// Receipt asks for an order's receipt to be issued.
type Receipt struct {
	OrderID int64  `json:"order_id" jsonschema:"minimum=1"`
	Email   string `json:"email" jsonschema:"format=email"`
}

// Kind is the receipt's stable name.
func (Receipt) Kind() string { return "shop.receipt" }

// Policy: a receipt may wait, but must not be given up on quickly.
func (Receipt) Policy() jobqueue.Policy {
	return jobqueue.Policy{MaxAttempts: 12, Timeout: 20 * time.Second, Backoff: jobqueue.Backoff{Base: time.Second, Max: time.Minute}}
}

// Validate checks what the schema cannot.
func (r Receipt) Validate() error {
	if _, err := mail.ParseAddress(r.Email); err != nil {
		return errors.New("email: not an address")
	}
	return nil
}

// Migrate creates the shop's own tables, in public, where most
// applications keep theirs (Spool's live in their own schema).
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL,
			total_cents bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
		CREATE TABLE IF NOT EXISTS receipts (order_id bigint PRIMARY KEY REFERENCES orders (id), sent_to text NOT NULL,
			issued_at timestamptz NOT NULL DEFAULT now())`)
	return err
}

// PlaceOrder writes an order and enqueues its receipt in one transaction:
// the receipt job exists exactly when the order does.
func PlaceOrder(ctx context.Context, pool *pgxpool.Pool, client *jobqueue.Client, email string, totalCents int64) (int64, error) {
	var id int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO orders (email, total_cents) VALUES ($1, $2) RETURNING id`, email, totalCents).Scan(&id); err != nil {
			return err
		}
		_, err := client.EnqueueTx(ctx, tx, jobqueue.EnqueueParams{Kind: Receipt{}.Kind(), Payload: Receipt{OrderID: id, Email: email}})
		return err
	})
	return id, err
}

// AddKinds registers the shop's kinds with their handlers.
func AddKinds(kinds *jobqueue.Kinds, client *jobqueue.Client) {
	jobqueue.AddKind(kinds, func(ctx context.Context, job *jobqueue.Job, r Receipt) error {
		// Once per order, however often the job runs.
		_, err := client.Once(ctx, fmt.Sprintf("shop:receipt:%d", r.OrderID), job.ID, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO receipts (order_id, sent_to) VALUES ($1, $2)`, r.OrderID, r.Email)
			return err
		})
		if err == nil {
			jobqueue.Logger(ctx).Info("receipt issued", "order_id", r.OrderID)
		}
		return err
	}, &jobqueue.KindOpts{Description: "issues an order's receipt"})
}
