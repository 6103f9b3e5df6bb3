package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

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

// Tick checks every schedule once at now and enqueues the jobs of due ticks
// this worker wins.
func (st *Store) Tick(ctx context.Context, now time.Time, log *slog.Logger) ([]TickResult, error) {
	all, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []TickResult
	for _, s := range all {
		// Several on-time ticks can be due at once (a slow check); take
		// them one by one so none is lost.
		for range 100 {
			r, claimed, err := st.tickOne(ctx, s, now)
			if err != nil {
				log.Warn("schedule tick failed", "schedule", s.Name, "error", err)
			}
			if err != nil || !claimed {
				break
			}
			out = append(out, r)
			s.LastTick = &r.Tick
		}
	}
	return out, nil
}

func (st *Store) tickOne(ctx context.Context, s *Schedule, now time.Time) (TickResult, bool, error) {
	c, err := Parse(s.Spec, s.Timezone)
	if err != nil {
		return TickResult{}, false, err
	}
	from := s.Created
	if s.LastTick != nil {
		from = *s.LastTick
	}
	tick := c.Next(from)
	if tick.IsZero() || tick.After(now) {
		return TickResult{}, false, nil
	}
	if now.Sub(tick) > Grace { // missed: collapse into the latest due tick
		tick, _ = due(c, from, now)
	}
	r := TickResult{Schedule: s.Name, Type: s.Type, Queue: s.Queue, Tick: tick, Skipped: now.Sub(tick) > Grace && !s.CatchUp}
	claimed := false
	err = pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, st.sql(`UPDATE spool.spool_schedules SET last_tick = $2
			WHERE name = $1 AND last_tick IS NOT DISTINCT FROM $3`), s.Name, tick, s.LastTick)
		claimed = err == nil && tag.RowsAffected() == 1
		if !claimed || r.Skipped {
			return err // lost the race to another worker, or a missed tick to skip
		}
		// The compare-and-set above makes this tick's job unique: it needs
		// no idempotency key, which a client could take first. Its request
		// id names the schedule and tick, for tracing.
		res, err := st.client.EnqueueTx(ctx, tx, jobqueue.EnqueueParams{
			Kind: s.Type, Payload: json.RawMessage(s.Payload), Queue: s.Queue, Priority: s.Priority,
			RequestID: TickID(s.Name, tick),
		})
		if err != nil {
			return err
		}
		r.JobID = res.Job.ID
		return nil
	})
	return r, claimed && err == nil, err
}

// TickID is the request id of the job a schedule enqueued for a tick.
func TickID(schedule string, tick time.Time) string {
	return "schedule:" + schedule + ":" + tick.UTC().Format(time.RFC3339)
}

// tickTimeout bounds one check of every schedule.
const tickTimeout = 5 * time.Second

// Run checks the schedules every interval until ctx ends.
func (st *Store) Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// A check under way finishes even when ctx ends meanwhile: cancelled
		// mid-commit, a tick's job could be enqueued and still be reported
		// as a failure. Bounded, so a hung database cannot stall shutdown.
		checkCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tickTimeout)
		results, err := st.Tick(checkCtx, time.Now(), log)
		cancel()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				log.Warn("schedules not checked", "error", err)
			}
			continue
		}
		for _, r := range results {
			switch {
			case r.Skipped:
				log.Info("missed schedule tick skipped", "schedule", r.Schedule, "tick", r.Tick)
			case r.JobID != 0:
				log.Info("scheduled job enqueued", "schedule", r.Schedule, "tick", r.Tick, "job_id", r.JobID, "type", r.Type, "queue", r.Queue)
			}
		}
	}
}
