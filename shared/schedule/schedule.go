// Package schedule runs recurring jobs. Schedules live in spool_schedules;
// every worker checks them, and each tick is claimed with a compare-and-set
// on last_tick in the same transaction as its job's enqueue, so exactly one
// job is enqueued per tick however many workers run, with no leader.
package schedule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/robfig/cron/v3"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/postgres"
)

// Schedule is one recurring job.
type Schedule struct {
	Name     string          `json:"name"`
	Spec     string          `json:"spec"`               // 5-field cron, or @every 1m, @daily, @hourly…
	Timezone string          `json:"timezone,omitempty"` // IANA name; UTC by default
	Type     string          `json:"type"`
	Payload  json.RawMessage `json:"payload,omitempty"`
	// PayloadOmitted: a list left the payload out to bound its size
	// (ListBounded); GET of the one schedule has it.
	PayloadOmitted bool   `json:"payload_omitted,omitempty"`
	Queue          string `json:"queue,omitempty"`
	Priority       int    `json:"priority,omitempty"`
	// CatchUp runs one job for ticks missed while no worker ran (for longer
	// than Grace); by default they are skipped.
	CatchUp  bool       `json:"catch_up,omitempty"`
	Source   string     `json:"source,omitempty"` // api or file
	LastTick *time.Time `json:"last_tick,omitempty"`
	NextRun  *time.Time `json:"next_run,omitempty"` // computed, not stored
	Created  time.Time  `json:"created_at"`
}

// Grace is how late a tick may be enqueued and still count as on time;
// ticks later than that were missed (downtime) and are skipped unless the
// schedule catches up.
const Grace = time.Minute

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("invalid schedule")

// ErrTooMany is returned by Put for a new schedule when the store's cap
// (StoreOpts.MaxSchedules) is reached; replacing one is still allowed.
var ErrTooMany = errors.New("too many schedules")

// DefaultMaxSchedules is the cap on schedules when StoreOpts leaves it
// zero: every worker checks every schedule each second, and the ticker is
// sized (and tested) for this many `@every 1s` schedules.
const DefaultMaxSchedules = 1000

var (
	parser   = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	nameRE   = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
	maxSpecN = 256
)

// ValidName reports whether name can name a schedule (the table's CHECK).
func ValidName(name string) bool { return nameRE.MatchString(name) }

// PayloadValidator checks a payload against its kind: the kind catalog
// (package catalog) is one.
type PayloadValidator interface {
	Validate(ctx context.Context, kind string, payload []byte) error
}

// payloadPreparer is a validator that may also rewrite the payload to
// store (the catalog: the http kind seals secret header values); it
// returns nil to keep it.
type payloadPreparer interface {
	Prepare(ctx context.Context, kind string, payload []byte) ([]byte, error)
}

// Parse checks a spec and time zone and returns the cron schedule in it.
func Parse(spec, tz string) (cron.Schedule, error) {
	if len(spec) == 0 || len(spec) > maxSpecN {
		return nil, fmt.Errorf("%w: spec must be 1-%d characters", ErrInvalid, maxSpecN)
	}
	loc, err := location(tz)
	if err != nil {
		return nil, err
	}
	// One way to set a zone: the timezone field. An inline TZ= prefix would
	// silently override it (and a bare one makes cron v3.0.1 panic).
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, fmt.Errorf("%w: spec %q: set the zone in the timezone field, not with a TZ= prefix", ErrInvalid, spec)
	}
	s, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: spec %q: %v", ErrInvalid, spec, err)
	}
	// cron rounds a shorter @every up to 1s silently; say so instead.
	if d, ok := strings.CutPrefix(spec, "@every "); ok {
		if v, err := time.ParseDuration(d); err != nil || v < time.Second {
			return nil, fmt.Errorf("%w: @every takes a duration of at least 1s", ErrInvalid)
		}
	}
	return inZone{s, loc}, nil
}

func location(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	if len(tz) > 64 || tz == "Local" { // Local: each process's own zone, so API and workers could disagree
		return nil, fmt.Errorf("%w: unknown time zone", ErrInvalid)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("%w: unknown time zone %q", ErrInvalid, tz)
	}
	return loc, nil
}

// inZone evaluates a cron schedule in a time zone.
type inZone struct {
	cron.Schedule
	loc *time.Location
}

func (z inZone) Next(t time.Time) time.Time { return z.Schedule.Next(t.In(z.loc)) }

// Validate checks everything a user can get wrong and normalises the rest;
// the payload is checked against its kind by v, like an enqueue's.
func (s *Schedule) Validate(ctx context.Context, v PayloadValidator) error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("%w: name must be 1-128 of a-z A-Z 0-9 _ . -", ErrInvalid)
	}
	if _, err := Parse(s.Spec, s.Timezone); err != nil {
		return err
	}
	if s.Timezone == "" {
		s.Timezone = "UTC"
	}
	if s.Queue == "" {
		s.Queue = jobqueue.DefaultQueue
	}
	if len(bytes.TrimSpace(s.Payload)) == 0 || string(bytes.TrimSpace(s.Payload)) == "null" {
		s.Payload = json.RawMessage(`{}`)
	}
	// Every tick enqueues this job: the enqueue rules apply now.
	if err := jobqueue.CheckParams(jobqueue.EnqueueParams{Kind: s.Type, Payload: s.Payload, Queue: s.Queue, Priority: s.Priority}); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if p, ok := v.(payloadPreparer); ok {
		out, err := p.Prepare(ctx, s.Type, s.Payload)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if out != nil {
			s.Payload = out
		}
		return nil
	}
	if err := v.Validate(ctx, s.Type, s.Payload); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// due returns the latest tick at or before now that follows last (or the
// schedule's creation), and whether there is one.
func due(c cron.Schedule, from, now time.Time) (time.Time, bool) {
	next := c.Next(from)
	if next.IsZero() || next.After(now) {
		return time.Time{}, false
	}
	latest := next
	for range 100_000 { // a long outage of a frequent schedule: stop counting, take the last tick found
		n := c.Next(latest)
		if n.IsZero() || n.After(now) {
			break
		}
		latest = n
	}
	return latest, true
}

// Store reads and writes schedules.
type Store struct {
	pool      *pgxpool.Pool
	client    *jobqueue.Client
	validator PayloadValidator
	rw        *strings.Replacer // statements are written for postgres.DefaultSchema
	max       int               // most schedules Put creates; < 0: no cap
	metrics   *Metrics

	specMu sync.Mutex
	specs  map[string]cron.Schedule // parsed specs by zone and spec
}

// StoreOpts configures a Store; nil means the defaults.
type StoreOpts struct {
	// MaxSchedules caps how many schedules Put lets exist: a new one past
	// it is ErrTooMany. 0 means DefaultMaxSchedules, negative no cap.
	// Sync (the operator's schedules file) is not capped.
	MaxSchedules int
	// Metrics, if set, counts the ticks Run claims.
	Metrics *Metrics
}

// NewStore returns the store of client's schema; client enqueues the ticks'
// jobs, and v checks schedules' payloads.
func NewStore(client *jobqueue.Client, v PayloadValidator, opts *StoreOpts) *Store {
	var o StoreOpts
	if opts != nil {
		o = *opts
	}
	if o.MaxSchedules == 0 {
		o.MaxSchedules = DefaultMaxSchedules
	}
	return &Store{pool: client.Pool(), client: client, validator: v, rw: postgres.Rewriter(client.Schema()),
		max: o.MaxSchedules, metrics: o.Metrics}
}

// Max is the cap on schedules Put keeps to; negative: none.
func (st *Store) Max() int { return st.max }

func (st *Store) sql(text string) string { return st.rw.Replace(text) }

const scheduleColumns = `name, spec, timezone, type, payload, queue, priority, catch_up, source, last_tick, created_at`

func scan(row pgx.Row) (*Schedule, error) { return scanWith(row) }

// scanWith reads scheduleColumns, then extra.
func scanWith(row pgx.Row, extra ...any) (*Schedule, error) {
	var s Schedule
	var payload []byte
	dest := []any{&s.Name, &s.Spec, &s.Timezone, &s.Type, &payload, &s.Queue, &s.Priority, &s.CatchUp, &s.Source, &s.LastTick, &s.Created}
	err := row.Scan(append(dest, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, jobqueue.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	s.Payload = payload
	if c, err := Parse(s.Spec, s.Timezone); err == nil {
		from := s.Created
		if s.LastTick != nil {
			from = *s.LastTick
		}
		next := c.Next(from)
		if now := time.Now(); next.Before(now) { // overdue: next after now
			next = c.Next(now)
		}
		s.NextRun = &next
	}
	return &s, nil
}

// Put creates or replaces a schedule (validated first). Replacing keeps the
// last tick, so an edit does not re-run a tick already run. A new schedule
// past the cap is ErrTooMany, and nothing is written.
func (st *Store) Put(ctx context.Context, s *Schedule) (*Schedule, error) {
	return st.put(ctx, s, st.max)
}

// put is Put with a cap of max schedules (negative: none). The count and
// the insert run under a transaction advisory lock of the schema's
// schedules, so concurrent creations cannot pass the cap together: each
// statement's snapshot is taken after the lock, and sees every creation
// committed before it.
func (st *Store) put(ctx context.Context, s *Schedule, max int) (*Schedule, error) {
	if err := s.Validate(ctx, st.validator); err != nil {
		return nil, err
	}
	if s.Source == "" {
		s.Source = "api"
	}
	var saved *Schedule
	err := pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		if max >= 0 {
			if _, err := tx.Exec(ctx, st.sql(`SELECT pg_advisory_xact_lock(hashtextextended('spool.spool_schedules:cap', 0))`)); err != nil {
				return err
			}
		}
		var err error
		saved, err = scan(tx.QueryRow(ctx, st.sql(`INSERT INTO spool.spool_schedules (name, spec, timezone, type, payload, queue, priority, catch_up, source)
			SELECT $1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, $9
			WHERE $10 < 0 OR EXISTS (SELECT 1 FROM spool.spool_schedules WHERE name = $1)
				OR (SELECT count(*) FROM spool.spool_schedules) < $10
			ON CONFLICT (name) DO UPDATE SET spec = $2, timezone = $3, type = $4, payload = $5::text::jsonb, queue = $6,
				priority = $7, catch_up = $8, source = $9, updated_at = now()
			RETURNING `+scheduleColumns), s.Name, s.Spec, s.Timezone, s.Type, string(s.Payload), s.Queue, s.Priority, s.CatchUp, s.Source, max))
		if errors.Is(err, jobqueue.ErrNotFound) { // the WHERE refused it
			return fmt.Errorf("%w: at most %d schedules may exist; delete one first", ErrTooMany, max)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return saved, nil
}

// Get returns one schedule.
func (st *Store) Get(ctx context.Context, name string) (*Schedule, error) {
	return scan(st.pool.QueryRow(ctx, st.sql(`SELECT `+scheduleColumns+` FROM spool.spool_schedules WHERE name = $1`), name))
}

// Delete removes a schedule; jobs it already enqueued stay.
func (st *Store) Delete(ctx context.Context, name string) error {
	tag, err := st.pool.Exec(ctx, st.sql(`DELETE FROM spool.spool_schedules WHERE name = $1`), name)
	if err == nil && tag.RowsAffected() == 0 {
		return jobqueue.ErrNotFound
	}
	return err
}

// List returns every schedule with its next run time, by name.
// ListBounded is List carrying payloads only while they add up to at
// most payloadBytes (in name order); the rest are left out and marked
// PayloadOmitted, so neither the read nor the answer outgrows the bound
// whatever the schedules hold.
func (st *Store) ListBounded(ctx context.Context, payloadBytes int64) ([]*Schedule, error) {
	rows, err := st.pool.Query(ctx, st.sql(`SELECT name, spec, timezone, type,
			CASE WHEN upto <= $1 THEN payload END, queue, priority, catch_up, source, last_tick, created_at, upto > $1
		FROM (SELECT *, sum(octet_length(payload::text)) OVER (ORDER BY name) AS upto FROM spool.spool_schedules) AS s
		ORDER BY name`), payloadBytes)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Schedule, error) {
		var omitted bool
		s, err := scanWith(r, &omitted)
		if err == nil {
			s.PayloadOmitted = omitted
		}
		return s, err
	})
}

func (st *Store) List(ctx context.Context) ([]*Schedule, error) {
	rows, err := st.pool.Query(ctx, st.sql(`SELECT `+scheduleColumns+` FROM spool.spool_schedules ORDER BY name`))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Schedule, error) { return scan(r) })
}
