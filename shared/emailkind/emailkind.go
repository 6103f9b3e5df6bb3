// Package emailkind is the send_email kind: real email through an SMTP
// server, sent once per job through the effect ledger, with a Message-ID
// derived from the job. The stock worker runs it when SPOOL_SMTP_URL is
// set (see Settings).
//
// Once per job: the handler records the job's effect key in the ledger
// and sends the message inside the same transaction, committing after the
// server accepted it. The two cannot be atomic. A retry after the commit
// sends nothing; a crash (or a failed commit) between the server's
// acceptance and the commit makes the job run again and send the message
// again, with the same Message-ID, which receivers can deduplicate on. A
// second attempt running beside the first (a rescued job) waits on the
// ledger row and sends nothing once the first commits.
package emailkind

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/invopop/jsonschema"

	"github.com/spoolq/spool/shared/jobqueue"
)

// Bounds of a send_email payload.
const (
	MaxRecipients  = 50        // to and cc together
	MaxAddressLen  = 320       // one address, with its display name
	MaxSubjectLen  = 998       // bytes: RFC 5322's line limit
	MaxBodyBytes   = 512 << 10 // text and html each
	maxErrorDetail = 512       // bytes of an SMTP error kept in the job's history
)

// Email is the payload of a send_email job.
type Email struct {
	To      Addresses `json:"to" jsonschema:"description=recipient address or list of them (RFC 5322, e.g. Ada <ada@example.com>)"`
	Cc      Addresses `json:"cc,omitempty" jsonschema:"description=copy recipients"`
	ReplyTo string    `json:"reply_to,omitempty" jsonschema:"maxLength=320,pattern=^[^\r\n]*@[^\r\n]*$,description=Reply-To address"`
	Subject string    `json:"subject" jsonschema:"minLength=1,maxLength=998,pattern=^[^\r\n]*$,description=one line (no CR or LF)"`
	Text    string    `json:"text,omitempty" jsonschema:"minLength=1,maxLength=524288,description=plain-text body (text or html or both)"`
	HTML    string    `json:"html,omitempty" jsonschema:"minLength=1,maxLength=524288,description=HTML body (with text: an alternative)"`
}

// JSONSchemaExtend asks for a body in the published schema, so that the
// API refuses an email without one at enqueue.
func (Email) JSONSchemaExtend(s *jsonschema.Schema) {
	s.AnyOf = []*jsonschema.Schema{{Required: []string{"text"}}, {Required: []string{"html"}}}
}

// Kind is the stable name of the kind.
func (Email) Kind() string { return "send_email" }

// Policy retries patiently: a mail server's 4xx replies (greylisting,
// full queues) clear within minutes.
func (Email) Policy() jobqueue.Policy {
	return jobqueue.Policy{MaxAttempts: 10, Timeout: time.Minute, Backoff: jobqueue.Backoff{Base: 5 * time.Second, Max: 30 * time.Minute}}
}

// Validate checks what the schema cannot: that addresses parse, the
// subject is one line, the body is there and within bounds. Its messages
// name the field, never the address.
func (e Email) Validate() error {
	var errs []error
	if len(e.To) == 0 {
		errs = append(errs, errors.New("to: at least one address is required"))
	}
	if n := len(e.To) + len(e.Cc); n > MaxRecipients {
		errs = append(errs, fmt.Errorf("to and cc: %d addresses, at most %d", n, MaxRecipients))
	}
	errs = append(errs, e.To.check("to"), e.Cc.check("cc"))
	if e.ReplyTo != "" {
		errs = append(errs, checkAddress("reply_to", e.ReplyTo))
	}
	switch {
	case strings.TrimSpace(e.Subject) == "":
		errs = append(errs, errors.New("subject is required"))
	case strings.ContainsAny(e.Subject, "\r\n"):
		errs = append(errs, errors.New("subject: must be one line (no CR or LF)"))
	case len(e.Subject) > MaxSubjectLen:
		errs = append(errs, fmt.Errorf("subject: longer than %d bytes", MaxSubjectLen))
	case !utf8.ValidString(e.Subject):
		errs = append(errs, errors.New("subject: not UTF-8"))
	}
	if e.Text == "" && e.HTML == "" {
		errs = append(errs, errors.New("text or html is required"))
	}
	for name, body := range map[string]string{"text": e.Text, "html": e.HTML} {
		if len(body) > MaxBodyBytes {
			errs = append(errs, fmt.Errorf("%s: longer than %d bytes", name, MaxBodyBytes))
		}
	}
	return errors.Join(errs...)
}

// Addresses is one address or a list of them; in JSON a string or an
// array of strings.
type Addresses []string

// UnmarshalJSON takes "a@example.com" as well as ["a@example.com", …].
func (a *Addresses) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Addresses{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want an address or a list of addresses")
	}
	*a = list
	return nil
}

// JSONSchema describes Addresses for the catalog: a string or a
// non-empty array of strings.
func (Addresses) JSONSchema() *jsonschema.Schema {
	minLen, maxLen, minItems, maxItems := uint64(3), uint64(MaxAddressLen), uint64(1), uint64(MaxRecipients)
	one := func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", MinLength: &minLen, MaxLength: &maxLen, Pattern: `^[^\r\n]*@[^\r\n]*$`}
	}
	return &jsonschema.Schema{OneOf: []*jsonschema.Schema{one(),
		{Type: "array", Items: one(), MinItems: &minItems, MaxItems: &maxItems}}}
}

func (a Addresses) check(field string) error {
	var errs []error
	for i, s := range a {
		errs = append(errs, checkAddress(fmt.Sprintf("%s[%d]", field, i), s))
	}
	return errors.Join(errs...)
}

func checkAddress(field, s string) error {
	if len(s) > MaxAddressLen {
		return fmt.Errorf("%s: longer than %d bytes", field, MaxAddressLen)
	}
	if strings.ContainsAny(s, "\r\n") {
		return fmt.Errorf("%s: contains CR or LF", field)
	}
	if _, err := mail.ParseAddress(s); err != nil {
		return fmt.Errorf("%s: not an email address", field)
	}
	return nil
}
