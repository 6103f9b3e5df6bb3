// Package orders is Spool's order-processing demo, an application built on
// Spool as a team would build theirs: placing an order writes it, reserves
// its stock and enqueues its pipeline in one transaction; the pipeline's
// steps (charge, then email, invoice and inventory in parallel, then
// completion; compensation if it fails) are a workflow of the demo's own
// kinds, whose effects go through the effect ledger. Its tables live in
// the schema spool_demo. The stock binaries switch it on with
// SPOOL_DEMO=true (make run does).
package orders

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/jobqueue"
)

// Errors a caller maps to 4xx.
var (
	ErrInvalid    = errors.New("invalid order")
	ErrOutOfStock = errors.New("not enough stock")
	ErrNotFound   = errors.New("order not found")
)

// Item is one line of a new order.
type Item struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// NewOrder is what a customer submits.
type NewOrder struct {
	CustomerEmail string `json:"customer_email"`
	CardNumber    string `json:"card_number"`
	Items         []Item `json:"items"`
}

// LineItem is one line of a placed order.
type LineItem struct {
	SKU        string `json:"sku"`
	Quantity   int    `json:"quantity"`
	PriceCents int64  `json:"price_cents"`
}

// Order is a placed order with its pipeline.
type Order struct {
	ID            int64      `json:"id"`
	Status        string     `json:"status"` // processing, fulfilled, failed
	Failure       *string    `json:"failure,omitempty"`
	CustomerEmail string     `json:"customer_email"`
	CardLast4     string     `json:"card_last4"`
	TotalCents    int64      `json:"total_cents"`
	Items         []LineItem `json:"items"`
	WorkflowID    int64      `json:"workflow_id"`
	Pipeline      *Pipeline  `json:"pipeline,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
}

// Product is a SKU for sale and its stock.
type Product struct {
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Stock      int    `json:"stock"`
}

// Limits of one order.
const (
	MaxItems    = 50
	MaxQuantity = 1000
	MaxSKU      = 64  // bytes, as products.sku holds at most 64 characters
	MaxEmail    = 254 // bytes
)

// Validate checks an order before anything is written. Every string that
// reaches SQL is text PostgreSQL accepts (jobqueue.ValidText), so a hostile
// value is refused here rather than failing in the database.
func (n NewOrder) Validate() error {
	if !jobqueue.ValidText(n.CustomerEmail) || len(n.CustomerEmail) > MaxEmail {
		return fmt.Errorf("%w: customer_email is not an email address", ErrInvalid)
	}
	if a, err := mail.ParseAddress(n.CustomerEmail); err != nil || a.Address != n.CustomerEmail {
		return fmt.Errorf("%w: customer_email is not an email address", ErrInvalid)
	}
	card := strings.ReplaceAll(n.CardNumber, " ", "")
	if len(card) < 12 || len(card) > 19 || strings.Trim(card, "0123456789") != "" {
		return fmt.Errorf("%w: card_number must be 12-19 digits", ErrInvalid)
	}
	if len(n.Items) == 0 || len(n.Items) > MaxItems {
		return fmt.Errorf("%w: an order has 1-%d items", ErrInvalid, MaxItems)
	}
	seen := map[string]bool{}
	for i, it := range n.Items {
		if it.SKU == "" || len(it.SKU) > MaxSKU || !jobqueue.ValidText(it.SKU) {
			return fmt.Errorf("%w: items[%d]: sku must be 1-%d bytes of UTF-8 without U+0000", ErrInvalid, i, MaxSKU)
		}
		if it.Quantity < 1 || it.Quantity > MaxQuantity {
			return fmt.Errorf("%w: items[%d]: quantity must be 1-%d", ErrInvalid, i, MaxQuantity)
		}
		if seen[it.SKU] {
			return fmt.Errorf("%w: items[%d]: sku %q listed twice", ErrInvalid, i, it.SKU)
		}
		seen[it.SKU] = true
	}
	return nil
}

func (n NewOrder) last4() string {
	card := strings.ReplaceAll(n.CardNumber, " ", "")
	return card[len(card)-4:]
}

// Store places and reads orders.
type Store struct {
	client *jobqueue.Client
}

// NewStore returns a store on client's pool; client enqueues the pipelines.
func NewStore(client *jobqueue.Client) *Store {
	return &Store{client: client}
}

// Place writes the order, reserves its stock and enqueues its pipeline in
// one transaction: either all of it exists or none. An order for more than
// is in stock fails with ErrOutOfStock and writes nothing.
func (s *Store) Place(ctx context.Context, n NewOrder, requestID string) (*Order, error) {
	if err := n.Validate(); err != nil {
		return nil, err
	}
	var id int64
	err := pgx.BeginFunc(ctx, s.client.Pool(), func(tx pgx.Tx) error {
		o, err := insertOrder(ctx, tx, n)
		if err != nil {
			return err
		}
		id = o.ID
		wf, err := s.client.CreateWorkflowTx(ctx, tx, pipeline(o, requestID))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE spool_demo.orders SET workflow_id = $2 WHERE id = $1`, o.ID, wf.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

// insertOrder writes the order and its items at current prices and takes
// their stock; stock >= quantity is checked by the UPDATE itself, so
// concurrent orders can never drive it negative.
func insertOrder(ctx context.Context, tx pgx.Tx, n NewOrder) (*Order, error) {
	o := &Order{CustomerEmail: n.CustomerEmail, CardLast4: n.last4()}
	// Lock products in one order (by SKU) everywhere, or two transactions
	// taking the same rows in opposite orders deadlock (placing an order vs
	// restocking a failed one).
	items := slices.Clone(n.Items)
	slices.SortFunc(items, func(a, b Item) int { return strings.Compare(a.SKU, b.SKU) })
	for _, it := range items {
		var price int64
		err := tx.QueryRow(ctx, `UPDATE spool_demo.products SET stock = stock - $2 WHERE sku = $1 AND stock >= $2 RETURNING price_cents`,
			it.SKU, it.Quantity).Scan(&price)
		if errors.Is(err, pgx.ErrNoRows) {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM spool_demo.products WHERE sku = $1)`, it.SKU).Scan(&exists); err != nil {
				return nil, err
			}
			if !exists {
				return nil, fmt.Errorf("%w: unknown sku %q", ErrInvalid, it.SKU)
			}
			return nil, fmt.Errorf("%w: %s", ErrOutOfStock, it.SKU)
		}
		if err != nil {
			return nil, err
		}
		o.Items = append(o.Items, LineItem{SKU: it.SKU, Quantity: it.Quantity, PriceCents: price})
		o.TotalCents += price * int64(it.Quantity)
	}
	if err := tx.QueryRow(ctx, `INSERT INTO spool_demo.orders (customer_email, card_last4, total_cents) VALUES ($1, $2, $3) RETURNING id`,
		o.CustomerEmail, o.CardLast4, o.TotalCents).Scan(&o.ID); err != nil {
		return nil, err
	}
	for _, it := range o.Items {
		if _, err := tx.Exec(ctx, `INSERT INTO spool_demo.order_items (order_id, sku, quantity, price_cents) VALUES ($1, $2, $3, $4)`,
			o.ID, it.SKU, it.Quantity, it.PriceCents); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// pipeline is an order's workflow: charge → (email, invoice, inventory) →
// complete; if it fails, fail compensates.
func pipeline(o *Order, requestID string) jobqueue.WorkflowParams {
	step := func(name string, args jobqueue.Args, deps ...string) jobqueue.WorkflowStep {
		return jobqueue.WorkflowStep{Name: name, DependsOn: deps, Params: jobqueue.EnqueueParams{Kind: args.Kind(), Payload: args}}
	}
	return jobqueue.WorkflowParams{
		Name:      fmt.Sprintf("order-%d", o.ID),
		RequestID: requestID,
		Steps: []jobqueue.WorkflowStep{
			step("charge", ChargePayment{OrderID: o.ID, AmountCents: o.TotalCents, CardLast4: o.CardLast4}),
			step("email", SendEmail{To: o.CustomerEmail, Subject: fmt.Sprintf("Order #%d confirmed", o.ID),
				Body: "Thank you for your order.", OrderID: o.ID}, "charge"),
			step("invoice", GenerateInvoice{OrderID: o.ID, AmountCents: o.TotalCents}, "charge"),
			step("inventory", SyncInventory{OrderID: o.ID}, "charge"),
			step("complete", CompleteOrder{OrderID: o.ID}, "email", "invoice", "inventory"),
		},
		OnFailure: &jobqueue.EnqueueParams{Kind: FailOrder{}.Kind(), Payload: FailOrder{OrderID: o.ID}},
	}
}

// Get returns an order with its items and pipeline.
func (s *Store) Get(ctx context.Context, id int64) (*Order, error) {
	o := &Order{ID: id}
	var wf *int64
	err := s.client.Pool().QueryRow(ctx, `SELECT status, failure, customer_email, card_last4, total_cents, workflow_id, created_at
		FROM spool_demo.orders WHERE id = $1`, id).Scan(&o.Status, &o.Failure, &o.CustomerEmail, &o.CardLast4, &o.TotalCents, &wf, &o.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	rows, err := s.client.Pool().Query(ctx, `SELECT sku, quantity, price_cents FROM spool_demo.order_items WHERE order_id = $1 ORDER BY sku`, id)
	if err != nil {
		return nil, err
	}
	if o.Items, err = pgx.CollectRows(rows, pgx.RowToStructByPos[LineItem]); err != nil {
		return nil, err
	}
	if wf != nil {
		o.WorkflowID = *wf
		w, err := s.client.GetWorkflow(ctx, *wf)
		if err != nil {
			return nil, err
		}
		o.Pipeline = pipelineOf(w)
	}
	return o, nil
}

// Products lists the catalogue with current stock.
func (s *Store) Products(ctx context.Context) ([]Product, error) {
	rows, err := s.client.Pool().Query(ctx, `SELECT sku, name, price_cents, stock FROM spool_demo.products ORDER BY sku`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Product])
}

// Stats reconciles the pipeline's outcomes with the services' own records.
type Stats struct {
	Orders          map[string]int64 `json:"orders"` // by status
	Charges         int64            `json:"charges"`
	Refunds         int64            `json:"refunds"`
	Emails          int64            `json:"confirmation_emails"`
	Invoices        int64            `json:"invoices"`
	InventorySyncs  int64            `json:"inventory_syncs"`
	Retries         int64            `json:"retries"`          // failed attempts of pipeline steps
	DeclinedCharges int64            `json:"declined_charges"` // charges that died (declined or out of attempts)
	UnitsReserved   int64            `json:"units_in_orders"`  // units in orders not failed
}

// Stats counts orders by status and every service's records.
func (s *Store) Stats(ctx context.Context) (*Stats, error) {
	st := &Stats{Orders: map[string]int64{"processing": 0, "fulfilled": 0, "failed": 0}}
	rows, err := s.client.Pool().Query(ctx, `SELECT status, count(*) FROM spool_demo.orders GROUP BY status`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			return nil, err
		}
		st.Orders[status] = n
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	jobs := pgx.Identifier{s.client.Schema(), "spool_jobs"}.Sanitize()
	err = s.client.Pool().QueryRow(ctx, `SELECT
		(SELECT count(*) FROM spool_demo.payments WHERE status = 'captured'),
		(SELECT count(*) FROM spool_demo.payments WHERE status = 'refunded'),
		(SELECT count(*) FROM spool_demo.emails WHERE order_id IS NOT NULL),
		(SELECT count(*) FROM spool_demo.invoices),
		(SELECT count(DISTINCT order_id) FROM spool_demo.inventory_syncs),
		(SELECT coalesce(sum(jsonb_array_length(errors)), 0) FROM `+jobs+` WHERE workflow_id IN (SELECT workflow_id FROM spool_demo.orders)),
		(SELECT count(*) FROM `+jobs+` WHERE type = $1 AND status = 'dead'),
		(SELECT coalesce(sum(i.quantity), 0) FROM spool_demo.order_items i JOIN spool_demo.orders o ON o.id = i.order_id WHERE o.status <> 'failed')`,
		ChargePayment{}.Kind()).
		Scan(&st.Charges, &st.Refunds, &st.Emails, &st.Invoices, &st.InventorySyncs, &st.Retries, &st.DeclinedCharges, &st.UnitsReserved)
	return st, err
}

// Pipeline is an order's workflow as the demo shows it.
type Pipeline struct {
	Status string `json:"status"`
	Steps  []Step `json:"steps"`
}

// Step is one step of a pipeline.
type Step struct {
	Name      string  `json:"name"`
	JobID     int64   `json:"job_id"`
	Kind      string  `json:"type"`
	Status    string  `json:"status"`
	Attempts  int     `json:"attempts"`
	LastError *string `json:"last_error,omitempty"`
}

func pipelineOf(w *jobqueue.Workflow) *Pipeline {
	p := &Pipeline{Status: w.Status, Steps: make([]Step, len(w.Steps))}
	for i, s := range w.Steps {
		p.Steps[i] = Step{Name: s.Name, JobID: s.JobID, Kind: s.Kind, Status: string(s.Status), Attempts: s.Attempts, LastError: s.LastError}
	}
	return p
}
