package orders

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/spoolq/spool/shared/jobqueue"
)

// The pipeline's kinds, each with its policy beside it. Their names are
// namespaced, so the demo never collides with a team's own kinds.

// ChargePayment captures an order's total from the (simulated) payment
// provider. Only the card's last four digits travel with the job.
type ChargePayment struct {
	OrderID     int64  `json:"order_id" jsonschema:"minimum=1"`
	AmountCents int64  `json:"amount_cents" jsonschema:"minimum=1"`
	CardLast4   string `json:"card_last4" jsonschema:"pattern=^[0-9]{4}$"`
}

// SendEmail sends an order's confirmation through the (simulated) mail
// service.
type SendEmail struct {
	To      string `json:"to" jsonschema:"format=email"`
	Subject string `json:"subject" jsonschema:"minLength=1"`
	Body    string `json:"body"`
	OrderID int64  `json:"order_id,omitempty"`
}

// GenerateInvoice renders an order's invoice (simulated), from the payment
// id its workflow's charge step produced.
type GenerateInvoice struct {
	OrderID     int64 `json:"order_id" jsonschema:"minimum=1"`
	AmountCents int64 `json:"amount_cents" jsonschema:"minimum=0"`
}

// SyncInventory tells the (simulated) warehouse system about an order's
// items.
type SyncInventory struct {
	OrderID int64 `json:"order_id" jsonschema:"minimum=1"`
}

// CompleteOrder marks an order fulfilled once every step before it ran.
type CompleteOrder struct {
	OrderID int64 `json:"order_id" jsonschema:"minimum=1"`
}

// FailOrder compensates a failed order: refunds its charge, puts its stock
// back and marks it failed. The workflow engine enqueues it.
type FailOrder struct {
	OrderID    int64 `json:"order_id" jsonschema:"minimum=1"`
	WorkflowID int64 `json:"workflow_id,omitempty"`
}

func (ChargePayment) Kind() string   { return "orders.charge_payment" }
func (SendEmail) Kind() string       { return "orders.send_email" }
func (GenerateInvoice) Kind() string { return "orders.generate_invoice" }
func (SyncInventory) Kind() string   { return "orders.sync_inventory" }
func (CompleteOrder) Kind() string   { return "orders.complete" }
func (FailOrder) Kind() string       { return "orders.fail" }

// Policies: payments retry fast and briefly, emails patiently, and the
// order's own bookkeeping (complete, fail) must not give up.

func (ChargePayment) Policy() jobqueue.Policy {
	return jobqueue.Policy{MaxAttempts: 6, Timeout: 30 * time.Second, Backoff: jobqueue.Backoff{Base: 500 * time.Millisecond, Max: time.Minute}}
}

func (SendEmail) Policy() jobqueue.Policy {
	return jobqueue.Policy{MaxAttempts: 8, Timeout: 30 * time.Second, Backoff: jobqueue.Backoff{Base: 2 * time.Second, Max: 10 * time.Minute}}
}

func (GenerateInvoice) Policy() jobqueue.Policy {
	return jobqueue.Policy{MaxAttempts: 5, Timeout: time.Minute}
}

func (SyncInventory) Policy() jobqueue.Policy {
	return jobqueue.Policy{MaxAttempts: 10, Timeout: time.Minute, Backoff: jobqueue.Backoff{Max: 5 * time.Minute}}
}

func (CompleteOrder) Policy() jobqueue.Policy {
	return jobqueue.Policy{MaxAttempts: 20, Timeout: 30 * time.Second, Backoff: jobqueue.Backoff{Max: time.Minute}}
}

func (FailOrder) Policy() jobqueue.Policy {
	return jobqueue.Policy{MaxAttempts: 20, Timeout: 30 * time.Second, Backoff: jobqueue.Backoff{Max: time.Minute}}
}

func (c ChargePayment) Validate() error {
	if c.OrderID <= 0 || c.AmountCents <= 0 {
		return errors.New("order_id and amount_cents must be positive")
	}
	if len(c.CardLast4) != 4 || strings.Trim(c.CardLast4, "0123456789") != "" {
		return errors.New("card_last4 must be four digits")
	}
	return nil
}

func (e SendEmail) Validate() error {
	if _, err := mail.ParseAddress(e.To); err != nil {
		return fmt.Errorf("to: not an email address")
	}
	if strings.TrimSpace(e.Subject) == "" {
		return errors.New("subject is required")
	}
	return nil
}

func (g GenerateInvoice) Validate() error {
	if g.OrderID <= 0 || g.AmountCents < 0 {
		return errors.New("order_id must be positive and amount_cents not negative")
	}
	return nil
}

func (s SyncInventory) Validate() error { return positiveOrder(s.OrderID) }
func (c CompleteOrder) Validate() error { return positiveOrder(c.OrderID) }
func (f FailOrder) Validate() error     { return positiveOrder(f.OrderID) }

func positiveOrder(id int64) error {
	if id <= 0 {
		return errors.New("order_id must be positive")
	}
	return nil
}
