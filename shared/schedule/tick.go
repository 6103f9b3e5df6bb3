package schedule

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/robfig/cron/v3"

	"github.com/spoolq/spool/shared/jobqueue"
)

// TickResult is one tick this worker claimed.
type TickResult struct {
	Schedule string
	Type     string // the job type it enqueues
	Queue    string
	Tick     time.Time
	JobID    int64 // the job enqueued for the tick; 0 when skipped
	Skipped  bool  // the tick was missed (downtime) and the schedule does not catch up
}

// tickBatch is how many ticks one transaction claims and enqueues.
const tickBatch = 100

// Tick checks every schedule once at now and enqueues the jobs of due ticks
// this worker wins, however long that takes.
func (st *Store) Tick(ctx context.Context, now time.Time, log *slog.Logger) ([]TickResult, error) {
	res, _, err := st.tick(ctx, now, time.Time{}, log)
	return res, err
}

// dueTick is a schedule with a tick due: what the check reads of every
// schedule, without its payload, and the next tick to claim.
type dueTick struct {
	name     string
	catchUp  bool
	c        cron.Schedule
	prev     *time.Time // last_tick as read: the compare-and-set's guard
	tick     time.Time
	skip     bool // missed, and the schedule does not catch up
	checkErr error
}

// next sets d.tick to the tick after from if one is due at now.
func (d *dueTick) next(from, now time.Time) bool {
	tick := d.c.Next(from)
	if tick.IsZero() || tick.After(now) {
		return false
	}
	if now.Sub(tick) > Grace { // missed: collapse into the latest due tick
		tick, _ = due(d.c, from, now)
	}
	d.tick, d.skip = tick, now.Sub(tick) > Grace && !d.catchUp
	return true
}

// tick claims the ticks due at now, oldest tick first, a batch per
// transaction, until none is left or the clock passes budget (zero: no
// budget). What is left stays due, and being older than everything ticked
// meanwhile goes first in the next check: the budget carries over, and no
// schedule waits behind others for more than a check or two, whatever its
// name. It also returns how many due ticks it left for the next check.
//
// Each statement runs to its end even when ctx ends meanwhile (cancelled
// mid-commit, a tick's job could be enqueued and still be reported as a
// failure), bounded by batchTimeout so a hung database cannot stall
// shutdown; ctx's end stops the check between batches.
func (st *Store) tick(ctx context.Context, now, budget time.Time, log *slog.Logger) ([]TickResult, int, error) {
	opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	pending, err := st.dueTicks(opCtx, now, log)
	cancel()
	if err != nil {
		return nil, 0, err
	}
	rand.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
	var out []TickResult
	for len(pending) > 0 {
		if ctx.Err() != nil || !budget.IsZero() && time.Now().After(budget) {
			break
		}
		// Oldest tick first; among equal ticks, the schedule that has
		// waited longest for its previous one; among those, in an order
		// drawn afresh each check, so no name always comes last.
		slices.SortStableFunc(pending, func(a, b *dueTick) int {
			return cmp.Or(a.tick.Compare(b.tick), comparePrev(a.prev, b.prev))
		})
		batch := pending[:min(tickBatch, len(pending))]
		opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
		claimed, err := st.claim(opCtx, batch)
		cancel()
		if err != nil {
			if ctx.Err() != nil || jobqueue.IsConnError(err) || errors.Is(err, context.DeadlineExceeded) {
				return out, len(pending), err
			}
			// One schedule the enqueue refuses (its kind's schema changed,
			// say) must not hold up the rest of its batch: one by one.
			log.Warn("schedule batch failed; ticking its schedules one by one", "schedules", len(batch), "error", err)
			claimed = st.claimEach(ctx, batch, log)
		}
		rest := pending[len(batch):]
		for _, d := range batch {
			r, ok := claimed[d.name]
			if !ok {
				continue // another worker has it, or it failed: the next check sees
			}
			out = append(out, r)
			tick := r.Tick
			d.prev = &tick
			if d.next(tick, now) { // several on-time ticks due: the next one too
				rest = append(rest, d)
			}
		}
		pending = rest
	}
	return out, len(pending), nil
}

// comparePrev orders never-ticked schedules first, then older last ticks.
func comparePrev(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return a.Compare(*b)
}

// dueTicks reads every schedule's spec and last tick, not its payload, and
// returns those with a tick due at now.
func (st *Store) dueTicks(ctx context.Context, now time.Time, log *slog.Logger) ([]*dueTick, error) {
	rows, err := st.pool.Query(ctx, st.sql(`SELECT name, spec, timezone, catch_up, last_tick, created_at FROM spool.spool_schedules`))
	if err != nil {
		return nil, err
	}
	var (
		pending        []*dueTick
		name, spec, tz string
		catchUp        bool
		last           *time.Time
		created        time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &spec, &tz, &catchUp, &last, &created}, func() error {
		c, err := st.parse(spec, tz)
		if err != nil {
			log.Warn("schedule tick failed", "schedule", name, "error", err)
			return nil
		}
		d := &dueTick{name: name, catchUp: catchUp, c: c, prev: last}
		from := created
		if last != nil {
			from = *last
		}
		if d.next(from, now) {
			pending = append(pending, d)
		}
		return nil
	})
	return pending, err
}

// parse is Parse, remembering the specs it has seen: every check reads
// every schedule.
func (st *Store) parse(spec, tz string) (cron.Schedule, error) {
	key := tz + " " + spec
	st.specMu.Lock()
	c, ok := st.specs[key]
	st.specMu.Unlock()
	if ok {
		return c, nil
	}
	c, err := Parse(spec, tz)
	if err != nil {
		return nil, err
	}
	st.specMu.Lock()
	if st.specs == nil || len(st.specs) > 4*max(st.max, DefaultMaxSchedules) {
		st.specs = map[string]cron.Schedule{} // schedules edited over time: start afresh
	}
	st.specs[key] = c
	st.specMu.Unlock()
	return c, nil
}

// claim moves each schedule of batch whose last tick is still the one read
// to its due tick, and enqueues the jobs of those not skipped, in one
// transaction: the compare-and-set makes each tick's job unique however
// many workers check, and rows another worker is claiming are skipped
// (SKIP LOCKED), so workers share a flood instead of queueing behind each
// other. Only the claimed schedules' payloads are read.
func (st *Store) claim(ctx context.Context, batch []*dueTick) (map[string]TickResult, error) {
	names := make([]string, len(batch))
	ticks := make([]time.Time, len(batch))
	prevs := make([]*time.Time, len(batch))
	skips := make([]bool, len(batch))
	for i, d := range batch {
		names[i], ticks[i], prevs[i], skips[i] = d.name, d.tick, d.prev, d.skip
	}
	out := make(map[string]TickResult, len(batch))
	err := pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, st.sql(`WITH want AS (
				SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::boolean[]) AS w(name, tick, prev, skip)),
			mine AS (
				SELECT s.name FROM spool.spool_schedules s JOIN want w ON w.name = s.name AND s.last_tick IS NOT DISTINCT FROM w.prev
				ORDER BY s.name FOR UPDATE OF s SKIP LOCKED)
			UPDATE spool.spool_schedules s SET last_tick = w.tick
			FROM want w, mine m
			WHERE s.name = w.name AND s.name = m.name AND s.last_tick IS NOT DISTINCT FROM w.prev
			RETURNING s.name, s.type, s.queue, s.priority, w.tick, w.skip, CASE WHEN NOT w.skip THEN s.payload::text END`),
			names, ticks, prevs, skips)
		if err != nil {
			return err
		}
		var ps []jobqueue.EnqueueParams
		var enqueued []string
		for rows.Next() {
			var r TickResult
			var priority int
			var payload *string
			if err := rows.Scan(&r.Schedule, &r.Type, &r.Queue, &priority, &r.Tick, &r.Skipped, &payload); err != nil {
				rows.Close()
				return err
			}
			out[r.Schedule] = r
			if r.Skipped {
				continue // a missed tick to skip
			}
			// The compare-and-set above makes this tick's job unique: it
			// needs no idempotency key, which a client could take first.
			// Its request id names the schedule and tick, for tracing.
			ps = append(ps, jobqueue.EnqueueParams{
				Kind: r.Type, Payload: json.RawMessage(*payload), Queue: r.Queue, Priority: priority,
				RequestID: TickID(r.Schedule, r.Tick),
			})
			enqueued = append(enqueued, r.Schedule)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		ins, err := st.client.EnqueueManyTx(ctx, tx, ps)
		if err != nil {
			return err
		}
		for i, name := range enqueued {
			r := out[name]
			r.JobID = ins[i].ID
			out[name] = r
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// claimEach is claim one schedule at a time, for a batch that failed as a
// whole; a schedule that fails alone is logged and left for the next check.
func (st *Store) claimEach(ctx context.Context, batch []*dueTick, log *slog.Logger) map[string]TickResult {
	out := map[string]TickResult{}
	for _, d := range batch {
		if ctx.Err() != nil {
			break
		}
		opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
		got, err := st.claim(opCtx, []*dueTick{d})
		cancel()
		if err != nil {
			log.Warn("schedule tick failed", "schedule", d.name, "tick", d.tick, "error", err)
			continue
		}
		maps.Copy(out, got)
	}
	return out
}

// TickID is the request id of the job a schedule enqueued for a tick.
func TickID(schedule string, tick time.Time) string {
	return "schedule:" + schedule + ":" + tick.UTC().Format(time.RFC3339)
}

// batchTimeout bounds one batch's transaction.
const batchTimeout = 5 * time.Second

// Run checks the schedules every interval until ctx ends. A check stops
// starting batches once the interval has passed (at least a second), and
// leaves the rest, oldest first, to the next.
func (st *Store) Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		results, left, err := st.tick(ctx, now, now.Add(max(interval, time.Second)), log)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				log.Warn("schedules not checked", "error", err)
			}
			continue
		}
		st.metrics.observe(results, left)
		for _, r := range results {
			switch {
			case r.Skipped:
				log.Info("missed schedule tick skipped", "schedule", r.Schedule, "tick", r.Tick)
			case r.JobID != 0:
				log.Info("scheduled job enqueued", "schedule", r.Schedule, "tick", r.Tick, "job_id", r.JobID, "type", r.Type, "queue", r.Queue)
			}
		}
		if left > 0 {
			log.Warn("schedule check ran out of time; due ticks left for the next check", "left", left, "ticked", len(results))
		}
	}
}
