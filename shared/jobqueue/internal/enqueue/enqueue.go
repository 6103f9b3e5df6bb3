// Package enqueue turns enqueue parameters into rows: it checks every
// field against the library's rules, applies the kind's policy, and writes
// through the store. Every path that creates jobs goes through it: the
// client, batches and COPY, workflow steps and their failure jobs,
// follow-ups of completed jobs, and schedules.
package enqueue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/jobqueue/internal/metrics"
	"github.com/spoolq/spool/shared/jobqueue/internal/store"
	"github.com/spoolq/spool/shared/jobqueue/internal/tracing"
	"github.com/spoolq/spool/shared/spooltype"
)

// Bounds of enqueue fields beyond the names' rules.
const (
	MaxAttemptsLimit = 100
	MaxDuration      = 24 * time.Hour       // timeout and backoff
	MaxSchedule      = 365 * 24 * time.Hour // how far ahead RunAt may be
)

// ReservedKeyPrefix starts the idempotency keys Spool uses itself (a
// workflow's failure job). Callers' keys may not start with it, so no
// client can take a key Spool needs.
const ReservedKeyPrefix = "spool:"

// InternalKey is one of Spool's own idempotency keys.
func InternalKey(parts ...string) string { return ReservedKeyPrefix + strings.Join(parts, ":") }

// Kinds is what the enqueuer knows of kinds: their policies, and a check
// of a payload against a kind this process declares.
type Kinds interface {
	// Policy returns a kind's declared policy.
	Policy(kind string) (spooltype.Policy, bool)
	// Check validates payload (JSON) against a kind declared in this
	// process; known is false for a kind it does not declare.
	Check(kind string, payload []byte) (known bool, err error)
}

// Enqueuer writes jobs.
type Enqueuer struct {
	Store   *store.Store
	Kinds   Kinds // nil: no kind is known
	Metrics *metrics.Set
	Now     func() time.Time // the clock RunAt is bounded by; nil: time.Now
}

// Row validates p and resolves it into the row to insert: the job's own
// settings, else its kind's policy, else the defaults.
func (e *Enqueuer) Row(p spooltype.EnqueueParams) (store.InsertRow, error) {
	r := store.InsertRow{Kind: p.Kind, Queue: p.Queue, Priority: p.Priority, MaxAttempts: p.MaxAttempts, Key: p.IdempotencyKey, RunAt: p.RunAt}
	if r.Queue == "" {
		r.Queue = spooltype.DefaultQueue
	}
	if err := e.check(p, r.Queue); err != nil {
		return r, err
	}
	payload, err := e.payload(p)
	if err != nil {
		return r, err
	}
	r.Payload = payload
	if r.RequestID = p.RequestID; !spooltype.ValidText(r.RequestID) {
		r.RequestID = ""
	}
	if tracing.Valid(p.TraceParent) {
		r.TraceParent = p.TraceParent
	}
	policy, _ := e.policy(p)
	if r.MaxAttempts == 0 {
		r.MaxAttempts = policy.MaxAttempts
	}
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = spooltype.DefaultMaxAttempts
	}
	r.TimeoutMs = store.Millis(or(p.Timeout, policy.Timeout))
	r.BackoffBaseMs = store.Millis(or(p.BackoffBase, policy.Backoff.Base))
	r.BackoffMax = store.Millis(or(p.BackoffMax, policy.Backoff.Max))
	return r, nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func invalid(field, format string, args ...any) error {
	return &spooltype.InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// check applies the rules for everything but the payload.
func (e *Enqueuer) check(p spooltype.EnqueueParams, queue string) error {
	if p.Kind == "" {
		return invalid("type", "is required")
	}
	if err := spooltype.CheckKindName(p.Kind); err != nil {
		return err
	}
	if err := spooltype.CheckQueueName(queue); err != nil {
		return err
	}
	switch {
	case p.Priority < spooltype.MinPriority || p.Priority > spooltype.MaxPriority:
		return invalid("priority", "must be between %d and %d", spooltype.MinPriority, spooltype.MaxPriority)
	case p.MaxAttempts < 0 || p.MaxAttempts > MaxAttemptsLimit:
		return invalid("max_attempts", "must be between 1 and %d", MaxAttemptsLimit)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"timeout", p.Timeout}, {"backoff_base", p.BackoffBase}, {"backoff_max", p.BackoffMax}} {
		// Stored in milliseconds: anything shorter would become "unset".
		if d.v != 0 && (d.v < time.Millisecond || d.v > MaxDuration) {
			return invalid(d.name, "must be a duration between 1ms and 24h")
		}
	}
	if p.BackoffBase > 0 && p.BackoffMax > 0 && p.BackoffMax < p.BackoffBase {
		return invalid("backoff_max", "must not be shorter than backoff_base")
	}
	if p.IdempotencyKey != "" {
		if err := spooltype.CheckKey(p.IdempotencyKey); err != nil {
			return err
		}
		if strings.HasPrefix(p.IdempotencyKey, ReservedKeyPrefix) {
			return invalid("idempotency_key", "keys starting with %q are reserved for Spool's own jobs", ReservedKeyPrefix)
		}
	}
	if !p.RunAt.IsZero() && p.RunAt.After(e.now().Add(MaxSchedule)) {
		return invalid("run_at", "must not be more than a year ahead")
	}
	return nil
}

func (e *Enqueuer) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// validator is a payload type with its own checks (jobqueue.Args may
// implement it).
type validator interface{ Validate() error }

// policied is a payload type that declares its kind's policy.
type policied interface{ Policy() spooltype.Policy }

// payload encodes p's payload as JSON text and checks it: a typed payload
// with its Validate method, raw JSON against a kind this process declares.
func (e *Enqueuer) payload(p spooltype.EnqueueParams) (string, error) {
	raw, typed, err := encode(p.Payload)
	if err != nil {
		return "", err
	}
	if !typed && e.Kinds != nil {
		if _, err := e.Kinds.Check(p.Kind, raw); err != nil {
			return "", invalid("payload", "%v", err)
		}
	}
	if HasNUL(raw) {
		// jsonb cannot store U+0000: refuse it here, not as an error at insert.
		return "", invalid("payload", `must not contain the character \u0000`)
	}
	return string(raw), nil
}

// encode returns a payload as JSON: raw JSON (json.RawMessage, []byte) as
// it is once checked, anything else encoded, after its Validate method if
// it has one (typed).
func encode(v any) (raw []byte, typed bool, err error) {
	switch v := v.(type) {
	case nil:
		return []byte(`{}`), false, nil
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		if val, ok := v.(validator); ok {
			if err := val.Validate(); err != nil {
				return nil, true, invalid("payload", "%v", err)
			}
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, true, invalid("payload", "cannot be encoded as JSON: %v", err)
		}
		return b, true, nil
	}
	if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
		return []byte(`{}`), false, nil
	}
	if !json.Valid(raw) {
		return nil, false, invalid("payload", "is not valid JSON")
	}
	return raw, false, nil
}

// policy is the kind's declared policy: from a typed payload, else from
// the kinds this process knows.
func (e *Enqueuer) policy(p spooltype.EnqueueParams) (spooltype.Policy, bool) {
	if v, ok := p.Payload.(policied); ok {
		return v.Policy(), true
	}
	if e.Kinds != nil {
		return e.Kinds.Policy(p.Kind)
	}
	return spooltype.Policy{}, false
}

// One writes one job; duplicate is true when its idempotency key was taken
// and job is the one holding it.
func (e *Enqueuer) One(ctx context.Context, db store.DBTX, p spooltype.EnqueueParams) (job *store.Job, duplicate bool, err error) {
	r, err := e.Row(p)
	if err != nil {
		return nil, false, err
	}
	TraceRow(ctx, &r)
	return e.Insert(ctx, db, r)
}

// Trace gives the rows that carry no traceparent of their own that of
// ctx's span, so that the job's span continues the enqueuer's trace.
func Trace(ctx context.Context, rows []store.InsertRow) {
	parent := tracing.Parent(ctx)
	if parent == "" {
		return
	}
	for i := range rows {
		if rows[i].TraceParent == "" {
			rows[i].TraceParent = parent
		}
	}
}

// TraceRow is Trace for one row.
func TraceRow(ctx context.Context, r *store.InsertRow) {
	if r.TraceParent == "" {
		r.TraceParent = tracing.Parent(ctx)
	}
}

// Insert writes a resolved row.
func (e *Enqueuer) Insert(ctx context.Context, db store.DBTX, r store.InsertRow) (*store.Job, bool, error) {
	job, dup, err := e.Store.Insert(ctx, db, r)
	if err == nil && !dup {
		e.Metrics.Enqueued(r.Kind, 1)
	}
	return job, dup, err
}

// InsertJobs writes resolved rows in one statement inside tx and returns
// each row's job (the key's holder for a duplicate) and result, in input
// order.
func (e *Enqueuer) InsertJobs(ctx context.Context, tx store.DBTX, rows []store.InsertRow) ([]*store.Job, []store.Inserted, error) {
	jobs, ins, err := e.Store.InsertManyJobs(ctx, tx, rows)
	if err == nil {
		e.count(rows, ins)
	}
	return jobs, ins, err
}

// Rows resolves every job of a batch; a refused one is a BatchError.
func (e *Enqueuer) Rows(ps []spooltype.EnqueueParams) ([]store.InsertRow, error) {
	rows := make([]store.InsertRow, len(ps))
	for i, p := range ps {
		r, err := e.Row(p)
		if err != nil {
			return nil, &spooltype.BatchError{Index: i, Err: err}
		}
		rows[i] = r
	}
	return rows, nil
}

// Many writes jobs in one statement inside tx, one result per job in input
// order.
func (e *Enqueuer) Many(ctx context.Context, tx store.DBTX, ps []spooltype.EnqueueParams) ([]store.Inserted, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	rows, err := e.Rows(ps)
	if err != nil {
		return nil, err
	}
	Trace(ctx, rows)
	out, err := e.Store.InsertMany(ctx, tx, rows)
	if err != nil {
		return nil, err
	}
	e.count(rows, out)
	return out, nil
}

func (e *Enqueuer) count(rows []store.InsertRow, ins []store.Inserted) {
	if e.Metrics == nil {
		return
	}
	n := map[string]int{}
	for i, r := range rows {
		if ins == nil || !ins[i].Duplicate {
			n[r.Kind]++
		}
	}
	for k, v := range n {
		e.Metrics.Enqueued(k, v)
	}
}

// ErrKeyedCopy refuses idempotency keys on the COPY path, which cannot
// skip conflicts.
var ErrKeyedCopy = errors.New("COPY takes no idempotency keys; use EnqueueMany")

// Copy writes keyless jobs with COPY inside tx and returns how many.
func (e *Enqueuer) Copy(ctx context.Context, tx pgx.Tx, ps []spooltype.EnqueueParams) (int64, error) {
	for i, p := range ps {
		if p.IdempotencyKey != "" {
			return 0, &spooltype.BatchError{Index: i, Err: ErrKeyedCopy}
		}
	}
	rows, err := e.Rows(ps)
	if err != nil {
		return 0, err
	}
	Trace(ctx, rows)
	n, err := e.Store.Copy(ctx, tx, rows)
	if err == nil {
		e.count(rows, nil)
	}
	return n, err
}

// HasNUL reports whether JSON text holds an escaped U+0000, i.e. a
// `\u0000` preceded by an even number of further backslashes.
func HasNUL(s []byte) bool {
	for i := 0; ; {
		j := bytes.Index(s[i:], []byte(`\u0000`))
		if j < 0 {
			return false
		}
		at := i + j
		n := 0
		for k := at - 1; k >= 0 && s[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return true
		}
		i = at + 1
	}
}
