package jobqueue

import (
	"context"
	"log/slog"
	"time"
)

// Retention says how long finished jobs are kept, per status. Zero keeps
// them forever.
type Retention struct {
	Completed time.Duration
	Cancelled time.Duration
	Dead      time.Duration // longer by default: dead jobs wait for a human
	Effects   time.Duration // ledger entries
}

// DefaultRetention keeps completed and cancelled jobs a day, dead jobs a
// week, and effect ledger entries a week.
var DefaultRetention = Retention{Completed: 24 * time.Hour, Cancelled: 24 * time.Hour, Dead: 7 * 24 * time.Hour, Effects: 7 * 24 * time.Hour}

// pruneBatch bounds each DELETE, so pruning a million rows never holds
// locks or bloats WAL in one long statement.
const pruneBatch = 1000

// prune deletes one batch of jobs of status finished longer than olderThan
// ago, and returns how many.
func prune(ctx context.Context, db DBTX, status Status, olderThan time.Duration) (int64, error) {
	// An array, not IN (subquery): a generic plan would hash the subquery
	// against a full scan of the table.
	tag, err := db.Exec(ctx, `DELETE FROM spool_jobs WHERE id = ANY(ARRAY(
			SELECT id FROM spool_jobs
			WHERE status = $1 AND finished_at < now() - $2 * interval '1 millisecond'
			ORDER BY finished_at LIMIT $3 FOR UPDATE SKIP LOCKED))`, string(status), olderThan.Milliseconds(), pruneBatch)
	return tag.RowsAffected(), interpretError(err)
}

func pruneEffects(ctx context.Context, db DBTX, olderThan time.Duration) (int64, error) {
	tag, err := db.Exec(ctx, `DELETE FROM spool_effects WHERE key = ANY(ARRAY(
			SELECT key FROM spool_effects WHERE created_at < now() - $1 * interval '1 millisecond'
			ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED))`, olderThan.Milliseconds(), pruneBatch)
	return tag.RowsAffected(), interpretError(err)
}

// pruneOnce deletes everything past retention, batch by batch, pausing
// between batches to leave the database to real work.
func pruneOnce(ctx context.Context, db DBTX, r Retention, log *slog.Logger) int64 {
	var total int64
	steps := []struct {
		name string
		keep time.Duration
		fn   func() (int64, error)
	}{
		{"completed", r.Completed, func() (int64, error) { return prune(ctx, db, StatusCompleted, r.Completed) }},
		{"cancelled", r.Cancelled, func() (int64, error) { return prune(ctx, db, StatusCancelled, r.Cancelled) }},
		{"dead", r.Dead, func() (int64, error) { return prune(ctx, db, StatusDead, r.Dead) }},
		{"effects", r.Effects, func() (int64, error) { return pruneEffects(ctx, db, r.Effects) }},
	}
	for _, s := range steps {
		for s.keep > 0 && ctx.Err() == nil {
			n, err := s.fn()
			total += n
			if err != nil {
				if ctx.Err() == nil { // a stopping worker's cut-off batch is not a failure
					log.Warn("prune failed", "what", s.name, "error", err)
				}
				break
			}
			if n < pruneBatch {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return total
}
