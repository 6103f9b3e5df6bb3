package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/spooltype"
)

// Expired is a running job whose lease ran out: its worker is lost.
type Expired struct {
	ID                int64
	Kind, Queue       string
	Attempts          int // the attempt that was lost
	MaxAttempts       int
	BackoffBase       time.Duration
	BackoffMax        time.Duration
	WorkerID          string
	WorkflowID        *int64
	ContinueOnFailure bool
}

// LockExpired locks up to limit running jobs whose lease ran out more than
// grace ago, oldest first. SKIP LOCKED lets every replica rescue at once.
func (s *Store) LockExpired(ctx context.Context, tx DBTX, grace time.Duration, limit int) ([]Expired, error) {
	rows, err := tx.Query(ctx, s.sql(`SELECT id, type, queue, attempts, max_attempts, backoff_base_ms, backoff_max_ms,
			coalesce(worker_id, ''), workflow_id, continue_on_failure
		FROM spool.spool_jobs
		WHERE status = 'running' AND lease_until < now() - $1 * interval '1 millisecond'
		ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED`), grace.Milliseconds(), limit)
	if err != nil {
		return nil, Interpret(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Expired, error) {
		var e Expired
		var bbase, bmax *int32
		err := r.Scan(&e.ID, &e.Kind, &e.Queue, &e.Attempts, &e.MaxAttempts, &bbase, &bmax, &e.WorkerID, &e.WorkflowID, &e.ContinueOnFailure)
		e.BackoffBase, e.BackoffMax = ms(bbase), ms(bmax)
		return e, err
	})
	return out, Interpret(err)
}

// Rescue ends the lost attempts of locked expired jobs: each gets its
// status (retrying or dead) and its retry delay, an entry in its error
// history, and no owner, so its next claim is a new attempt under a new
// lease token.
func (s *Store) Rescue(ctx context.Context, tx DBTX, ids []int64, statuses []spooltype.Status, delays []time.Duration, msg string) error {
	st := make([]string, len(statuses))
	for i, v := range statuses {
		st[i] = string(v)
	}
	ms := make([]int64, len(delays))
	for i, d := range delays {
		ms[i] = d.Milliseconds()
	}
	_, err := tx.Exec(ctx, s.sql(`UPDATE spool.spool_jobs j SET status = r.status,
			finished_at = CASE WHEN r.status = 'dead' THEN now() END,
			run_at = CASE WHEN r.status = 'retrying' THEN now() + r.delay_ms * interval '1 millisecond' ELSE j.run_at END,
			lease_until = NULL, lease_token = NULL, worker_id = NULL, `+appendError("$4")+`
		FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS r(id, status, delay_ms)
		WHERE j.id = r.id AND j.status = 'running'`), ids, st, ms, ClipError(msg))
	return Interpret(err)
}

// PruneBatch bounds each DELETE, so pruning a million rows never holds
// locks or bloats WAL in one long statement.
const PruneBatch = 1000

// Prune deletes one batch of jobs of status finished longer than olderThan
// ago, and returns how many.
func (s *Store) Prune(ctx context.Context, db DBTX, status spooltype.Status, olderThan time.Duration) (int64, error) {
	// An array, not IN (subquery): a generic plan would hash the subquery
	// against a full scan of the table.
	tag, err := db.Exec(ctx, s.sql(`DELETE FROM spool.spool_jobs WHERE id = ANY(ARRAY(
			SELECT id FROM spool.spool_jobs
			WHERE status = $1 AND finished_at < now() - $2 * interval '1 millisecond'
			ORDER BY finished_at LIMIT $3 FOR UPDATE SKIP LOCKED))`), string(status), olderThan.Milliseconds(), PruneBatch)
	return tag.RowsAffected(), Interpret(err)
}

// PruneEffects deletes one batch of effect-ledger entries older than
// olderThan.
func (s *Store) PruneEffects(ctx context.Context, db DBTX, olderThan time.Duration) (int64, error) {
	tag, err := db.Exec(ctx, s.sql(`DELETE FROM spool.spool_effects WHERE key = ANY(ARRAY(
			SELECT key FROM spool.spool_effects WHERE created_at < now() - $1 * interval '1 millisecond'
			ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED))`), olderThan.Milliseconds(), PruneBatch)
	return tag.RowsAffected(), Interpret(err)
}

// PruneWorkers deletes worker records that stopped heartbeating longer
// than olderThan ago.
func (s *Store) PruneWorkers(ctx context.Context, db DBTX, olderThan time.Duration) (int64, error) {
	tag, err := db.Exec(ctx, s.sql(`DELETE FROM spool.spool_workers WHERE heartbeat_at < now() - $1 * interval '1 millisecond'`),
		olderThan.Milliseconds())
	return tag.RowsAffected(), Interpret(err)
}

// RecordEffect writes key to the effect ledger inside tx and reports
// whether it is new (false: the effect already happened).
func (s *Store) RecordEffect(ctx context.Context, tx DBTX, key string, jobID int64) (bool, error) {
	tag, err := tx.Exec(ctx, s.sql(`INSERT INTO spool.spool_effects (key, job_id) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`), key, jobID)
	return tag.RowsAffected() == 1, err
}
