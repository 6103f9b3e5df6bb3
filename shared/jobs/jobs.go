// Package jobs holds one payload struct per job type, with its stable type
// name. The worker's handlers receive these; the API validates enqueue
// requests against them, so a typo fails at enqueue, not in a worker later.
package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"sort"
	"strings"
)

// Payload is a job type's arguments.
type Payload interface {
	// Kind is the stable type name stored in the queue.
	Kind() string
	// Validate reports what is wrong with a decoded payload.
	Validate() error
}

// Noop does nothing; for smoke tests and benchmarks.
type Noop struct {
	Seq int64 `json:"seq,omitempty"`
}

// Sleep waits Ms milliseconds (or until cancelled); for tests of timeouts
// and shutdown.
type Sleep struct {
	Ms int `json:"ms"`
}

// Fail fails with Message: on every attempt, or only on the first Times
// attempts when Times > 0; for tests of retries and dead jobs.
type Fail struct {
	Message string `json:"message"`
	Times   int    `json:"times,omitempty"`
}

// SendEmail sends one email through the (simulated) mail service.
type SendEmail struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
	OrderID int64  `json:"order_id,omitempty"` // set for an order's confirmation
}

// GenerateInvoice renders an invoice for an order (simulated).
type GenerateInvoice struct {
	OrderID     int64 `json:"order_id"`
	AmountCents int64 `json:"amount_cents"`
}

// SyncInventory pushes stock changes to the (simulated) warehouse system:
// one SKU's Delta, or every item of OrderID.
type SyncInventory struct {
	OrderID int64  `json:"order_id,omitempty"`
	SKU     string `json:"sku,omitempty"`
	Delta   int    `json:"delta,omitempty"`
}

// ChargePayment captures an order's total from the (simulated) payment
// provider. Only the card's last four digits travel with the job.
type ChargePayment struct {
	OrderID     int64  `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	CardLast4   string `json:"card_last4"`
}

// CompleteOrder marks an order fulfilled once every step before it ran.
type CompleteOrder struct {
	OrderID int64 `json:"order_id"`
}

// FailOrder compensates a failed order: refunds its charge, puts its stock
// back and marks it failed. The workflow engine enqueues it.
type FailOrder struct {
	OrderID    int64 `json:"order_id"`
	WorkflowID int64 `json:"workflow_id,omitempty"`
}

func (Noop) Kind() string            { return "noop" }
func (Sleep) Kind() string           { return "sleep" }
func (Fail) Kind() string            { return "fail" }
func (SendEmail) Kind() string       { return "send_email" }
func (GenerateInvoice) Kind() string { return "generate_invoice" }
func (SyncInventory) Kind() string   { return "sync_inventory" }
func (ChargePayment) Kind() string   { return "charge_payment" }
func (CompleteOrder) Kind() string   { return "complete_order" }
func (FailOrder) Kind() string       { return "fail_order" }

// MaxSleepMs bounds a sleep job to one hour.
const MaxSleepMs = 3_600_000

func (Noop) Validate() error { return nil }

func (s Sleep) Validate() error {
	if s.Ms < 0 || s.Ms > MaxSleepMs {
		return fmt.Errorf("ms must be between 0 and %d", MaxSleepMs)
	}
	return nil
}

func (f Fail) Validate() error {
	if f.Times < 0 {
		return errors.New("times must not be negative")
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
	if g.OrderID <= 0 {
		return errors.New("order_id must be positive")
	}
	if g.AmountCents < 0 {
		return errors.New("amount_cents must not be negative")
	}
	return nil
}

func (s SyncInventory) Validate() error {
	if (s.OrderID > 0) == (strings.TrimSpace(s.SKU) != "") {
		return errors.New("give either order_id or sku (with delta)")
	}
	if s.OrderID < 0 {
		return errors.New("order_id must be positive")
	}
	return nil
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

func (c CompleteOrder) Validate() error { return positiveOrder(c.OrderID) }
func (f FailOrder) Validate() error     { return positiveOrder(f.OrderID) }

func positiveOrder(id int64) error {
	if id <= 0 {
		return errors.New("order_id must be positive")
	}
	return nil
}

// Diagnostic types exist for tests and benchmarks and can be switched off.
var Diagnostic = map[string]bool{"noop": true, "sleep": true, "fail": true}

type decoder func(json.RawMessage) (json.RawMessage, error)

var known = map[string]decoder{}

func register[T Payload]() {
	var zero T
	known[zero.Kind()] = func(raw json.RawMessage) (json.RawMessage, error) {
		var p T
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("payload does not match %s: %s", zero.Kind(), strings.TrimPrefix(err.Error(), "json: "))
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) { // More() misses a stray '}' or ']'
			return nil, errors.New("payload has trailing data")
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("payload of %s: %w", zero.Kind(), err)
		}
		norm, err := json.Marshal(p)
		if err == nil && HasNUL(norm) {
			// jsonb cannot store U+0000: refuse it here, not as a 500 at insert.
			return nil, errors.New(`payload must not contain the character \u0000`)
		}
		return norm, err
	}
}

func init() {
	register[Noop]()
	register[Sleep]()
	register[Fail]()
	register[SendEmail]()
	register[GenerateInvoice]()
	register[SyncInventory]()
	register[ChargePayment]()
	register[CompleteOrder]()
	register[FailOrder]()
}

// ErrUnknownType is returned for a type no handler exists for.
var ErrUnknownType = errors.New("unknown job type")

// Types lists the known job types, sorted.
func Types() []string {
	out := make([]string, 0, len(known))
	for t := range known {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Known reports whether typ is a job type.
func Known(typ string) bool { _, ok := known[typ]; return ok }

// Normalize decodes raw strictly into typ's payload struct, validates it and
// returns its canonical encoding. An absent payload is an empty object.
func Normalize(typ string, raw json.RawMessage) (json.RawMessage, error) {
	dec, ok := known[typ]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, typ)
	}
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		raw = json.RawMessage(`{}`)
	}
	return dec(raw)
}

// HasNUL reports whether canonical JSON holds an escaped U+0000, i.e. a
// `\u0000` preceded by an even number of further backslashes.
func HasNUL(b []byte) bool {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(`\u0000`))
		if j < 0 {
			return false
		}
		at := i + j
		n := 0
		for k := at - 1; k >= 0 && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return true
		}
		i = at + 1
	}
}
