package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/jobqueue"
)

// enqueueRequest is one job as clients send it. Optional fields are
// pointers so that an explicit zero is checked, not taken as "default".
// Times and durations are strings parsed here, so a bad value is a 422
// naming its field rather than a decoder error. The rules for the values
// themselves are the library's (jobqueue), applied at enqueue.
type enqueueRequest struct {
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
	Queue          *string         `json:"queue"`
	Priority       *int            `json:"priority"`
	RunAt          *string         `json:"run_at"`
	Delay          *string         `json:"delay"`
	MaxAttempts    *int            `json:"max_attempts"`
	Timeout        *string         `json:"timeout"`
	BackoffBase    *string         `json:"backoff_base"`
	BackoffMax     *string         `json:"backoff_max"`
	IdempotencyKey *string         `json:"idempotency_key"`
}

// maxSchedule is how far ahead delay may reach: the library's bound on
// run_at.
const maxSchedule = jobqueue.MaxSchedule

// toParams parses req into queue parameters; now is the clock delay is
// measured against. It needs no database: what only the database knows
// (the kind, its payload schema) is checked by checkPayload.
func (req enqueueRequest) toParams(now time.Time) (jobqueue.EnqueueParams, error) {
	p := jobqueue.EnqueueParams{Kind: req.Type, Payload: req.Payload}
	if len(req.Payload) == 0 || string(req.Payload) == "null" {
		p.Payload = json.RawMessage(nil) // absent: an empty object
	}
	if req.Type == "" {
		return p, invalid("type", "is required")
	}
	if req.Queue != nil {
		if *req.Queue == "" {
			return p, invalid("queue", "must not be empty")
		}
		p.Queue = *req.Queue
	}
	if req.Priority != nil {
		p.Priority = *req.Priority
	}
	if req.MaxAttempts != nil {
		if *req.MaxAttempts < 1 {
			return p, invalid("max_attempts", "must be between 1 and %d", maxAttempts)
		}
		p.MaxAttempts = *req.MaxAttempts
	}
	if req.IdempotencyKey != nil {
		if *req.IdempotencyKey == "" {
			return p, invalid("idempotency_key", "must not be empty")
		}
		p.IdempotencyKey = *req.IdempotencyKey
	}
	if err := req.durations(&p); err != nil {
		return p, err
	}
	return p, req.schedule(&p, now)
}

// maxAttempts is the library's bound, quoted in the API's messages.
const maxAttempts = jobqueue.MaxAttemptsLimit

// check parses req and checks the result by the library's rules, which
// need no database: everything but the kind and its payload schema.
func (req enqueueRequest) check(now time.Time) (jobqueue.EnqueueParams, error) {
	p, err := req.toParams(now)
	if err != nil {
		return p, err
	}
	if err := jobqueue.CheckParams(p); err != nil {
		return p, toAPIError(err)
	}
	return p, nil
}

func invalid(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusUnprocessableEntity, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

func (req enqueueRequest) durations(p *jobqueue.EnqueueParams) error {
	fields := []struct {
		name string
		in   *string
		out  *time.Duration
	}{{"timeout", req.Timeout, &p.Timeout}, {"backoff_base", req.BackoffBase, &p.BackoffBase}, {"backoff_max", req.BackoffMax, &p.BackoffMax}}
	for _, f := range fields {
		if f.in == nil {
			continue
		}
		d, err := time.ParseDuration(*f.in)
		if err != nil || d <= 0 {
			return invalid(f.name, "must be a duration between 1ms and 24h, such as \"30s\"; got %q", clip(*f.in))
		}
		*f.out = d
	}
	return nil
}

func (req enqueueRequest) schedule(p *jobqueue.EnqueueParams, now time.Time) error {
	switch {
	case req.RunAt != nil && req.Delay != nil:
		return invalid("delay", "give run_at or delay, not both")
	case req.RunAt != nil:
		t, err := time.Parse(time.RFC3339Nano, *req.RunAt)
		if err != nil {
			return invalid("run_at", "must be an RFC 3339 time such as \"2030-01-02T15:04:05Z\"; got %q", clip(*req.RunAt))
		}
		p.RunAt = t
	case req.Delay != nil:
		d, err := time.ParseDuration(*req.Delay)
		if err != nil || d < 0 || d > maxSchedule {
			return invalid("delay", "must be a duration between 0s and 8760h (a year), such as \"30s\"; got %q", clip(*req.Delay))
		}
		if d > 0 {
			p.RunAt = now.Add(d)
		}
	}
	return nil
}

// checkPayload checks that clients may enqueue kind, and payload against
// the kind's published schema; the payload must fit the size limit. It
// returns the payload to write instead when the kind's check rewrote it
// (nil: write the client's).
func (a *api) checkPayload(ctx context.Context, kind string, payload json.RawMessage) (json.RawMessage, error) {
	if int64(len(payload)) > a.opts.MaxPayloadBytes {
		return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Field: "payload",
			Message: fmt.Sprintf("payload is %d bytes; the limit is %d", len(payload), a.opts.MaxPayloadBytes)}
	}
	if len(payload) == 0 || string(payload) == "null" {
		payload = json.RawMessage(`{}`)
	}
	return a.catalog.Prepare(ctx, kind, payload)
}

// params parses and checks one enqueue request.
func (a *api) params(ctx context.Context, req enqueueRequest, now time.Time) (jobqueue.EnqueueParams, error) {
	p, err := req.check(now)
	if err != nil {
		return p, err
	}
	p.RequestID = requestID(ctx) // traces the job to this request
	payload, err := a.checkPayload(ctx, req.Type, req.Payload)
	if payload != nil {
		p.Payload = payload
	}
	return p, err
}

// knownKind checks that clients may name kind (a limit's, a schedule's).
func (a *api) knownKind(ctx context.Context, kind string) error {
	if a.catalog.Open(kind) {
		return nil
	}
	known, err := a.catalog.Known(ctx)
	if err != nil {
		return err
	}
	for _, k := range known {
		if k == kind {
			return nil
		}
	}
	return &catalog.UnknownKindError{Kind: kind, Known: known}
}

// typeFilter reports whether s may filter by kind: the column holds at
// most 128 characters, and PostgreSQL's text cannot hold invalid UTF-8 or
// U+0000, so such a filter would fail in the database rather than match
// nothing.
func typeFilter(s string) bool {
	return len(s) <= 128 && jobqueue.ValidText(s)
}
