package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/jobs"
)

// enqueueRequest is one job as clients send it. Optional fields are
// pointers so that an explicit zero is validated, not taken as "default".
// Times and durations are strings parsed here, so a bad value is a 422
// naming its field rather than a decoder error.
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

// Bounds of enqueue fields.
const (
	minPriority, maxPriority = -1000, 1000
	maxAttemptsLimit         = 100
	maxDuration              = 24 * time.Hour
	maxSchedule              = 365 * 24 * time.Hour
	maxKeyBytes              = 255
)

var queueName = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)

// limits are the configured bounds validation needs.
type limits struct {
	maxPayload int64
	maxBatch   int
	diagnostic bool // accept noop, sleep, fail
}

// typeAllowed reports whether clients may enqueue typ.
func (l limits) typeAllowed(typ string) bool {
	return jobs.Known(typ) && (l.diagnostic || !jobs.Diagnostic[typ])
}

// allowedTypes lists the types clients may enqueue, sorted.
func (l limits) allowedTypes() []string {
	var out []string
	for _, t := range jobs.Types() {
		if l.typeAllowed(t) {
			out = append(out, t)
		}
	}
	return out
}

// toParams validates req and turns it into queue parameters; now is the
// clock delay and run_at are measured against.
func (req enqueueRequest) toParams(l limits, now time.Time) (jobqueue.EnqueueParams, error) {
	p := jobqueue.EnqueueParams{Type: req.Type}
	var err error
	if p.Payload, err = req.payload(l); err != nil {
		return p, err
	}
	checks := []func(*jobqueue.EnqueueParams) error{
		req.queue, req.priority, req.maxAttempts, req.durations, req.key,
		func(p *jobqueue.EnqueueParams) error { return req.schedule(p, now) },
	}
	for _, check := range checks {
		if err := check(&p); err != nil {
			return p, err
		}
	}
	return p, nil
}

func invalid(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusUnprocessableEntity, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// payload checks the type and returns the payload in canonical form.
func (req enqueueRequest) payload(l limits) (json.RawMessage, error) {
	if req.Type == "" {
		return nil, invalid("type", "is required")
	}
	if !l.typeAllowed(req.Type) {
		return nil, &apiError{Status: http.StatusUnprocessableEntity, Field: "type",
			Message: fmt.Sprintf("unknown job type %q", clip(req.Type)), KnownTypes: l.allowedTypes()}
	}
	if int64(len(req.Payload)) > l.maxPayload {
		return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Field: "payload",
			Message: fmt.Sprintf("payload is %d bytes; the limit is %d", len(req.Payload), l.maxPayload)}
	}
	norm, err := jobs.Normalize(req.Type, req.Payload)
	if err != nil {
		return nil, &apiError{Status: http.StatusUnprocessableEntity, Field: "payload", Message: clipTo(err.Error(), maxMessage)}
	}
	return norm, nil
}

func (req enqueueRequest) queue(p *jobqueue.EnqueueParams) error {
	if req.Queue == nil {
		return nil
	}
	if !queueName.MatchString(*req.Queue) {
		return invalid("queue", "must be 1 to 64 characters of a-z, 0-9, '_', '.' and '-'")
	}
	p.Queue = *req.Queue
	return nil
}

func (req enqueueRequest) priority(p *jobqueue.EnqueueParams) error {
	if req.Priority == nil {
		return nil
	}
	if *req.Priority < minPriority || *req.Priority > maxPriority {
		return invalid("priority", "must be between %d and %d", minPriority, maxPriority)
	}
	p.Priority = *req.Priority
	return nil
}

func (req enqueueRequest) maxAttempts(p *jobqueue.EnqueueParams) error {
	if req.MaxAttempts == nil {
		p.MaxAttempts = jobs.PolicyOf(req.Type).MaxAttempts // 0: the queue's default
		return nil
	}
	if *req.MaxAttempts < 1 || *req.MaxAttempts > maxAttemptsLimit {
		return invalid("max_attempts", "must be between 1 and %d", maxAttemptsLimit)
	}
	p.MaxAttempts = *req.MaxAttempts
	return nil
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
		// The queue stores milliseconds: anything shorter would become "unset".
		if err != nil || d < time.Millisecond || d > maxDuration {
			return invalid(f.name, "must be a duration between 1ms and 24h, such as \"30s\"; got %q", clip(*f.in))
		}
		*f.out = d
	}
	if p.BackoffBase > 0 && p.BackoffMax > 0 && p.BackoffMax < p.BackoffBase {
		return invalid("backoff_max", "must not be shorter than backoff_base")
	}
	return nil
}

func (req enqueueRequest) key(p *jobqueue.EnqueueParams) error {
	if req.IdempotencyKey == nil {
		return nil
	}
	k := *req.IdempotencyKey
	if k == "" || len(k) > maxKeyBytes || !jobqueue.ValidText(k) {
		return invalid("idempotency_key", "must be 1 to %d bytes of UTF-8, without U+0000", maxKeyBytes)
	}
	p.IdempotencyKey = k
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
		if t.After(now.Add(maxSchedule)) {
			return invalid("run_at", "must not be more than a year ahead")
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

// typeFilter reports whether s may filter by job type: the column holds
// at most 128 characters, and PostgreSQL's text cannot hold invalid UTF-8
// or U+0000, so such a filter would fail in the database rather than match
// nothing.
func typeFilter(s string) bool {
	return len(s) <= 128 && jobqueue.ValidText(s)
}
