package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/spooltype"
)

// Attempt names one attempt of a job: the job and the lease token of its
// claim. Writes that end an attempt match both.
type Attempt struct {
	ID    int64
	Token int64
}

// CompleteMany marks many attempts completed in one statement and returns
// those that were still held (the others' writes were refused by their
// lease token). ages are how long ago each handler returned: finished_at is
// when the job finished, on the database's clock, not when its batch was
// written.
func (s *Store) CompleteMany(ctx context.Context, db DBTX, ids, tokens []int64, ages []float64) ([]Attempt, error) {
	// The lease token is set only while running, so matching it needs no
	// status condition; one on status or lease_until would make the lease
	// index eligible, and with stale statistics the planner probed it once
	// per id, scanning every running row each time (10k completions took 10 s).
	rows, err := db.Query(ctx, s.sql(`UPDATE spool.spool_jobs j SET status = 'completed', lease_until = NULL, lease_token = NULL,
			finished_at = now() - c.age_ms * interval '1 millisecond'
		FROM unnest($1::bigint[], $2::bigint[], $3::float8[]) AS c(id, token, age_ms)
		WHERE j.id = c.id AND j.lease_token = c.token RETURNING c.id, c.token`), ids, tokens, ages)
	if err != nil {
		return nil, Interpret(err)
	}
	written, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attempt, error) {
		var a Attempt
		return a, r.Scan(&a.ID, &a.Token)
	})
	return written, Interpret(err)
}

// Complete marks one attempt completed with its result (JSON text, "" for
// none); run it in the transaction that also enqueues its follow-ups and
// moves its workflow on. It reports whether the attempt was still held.
func (s *Store) Complete(ctx context.Context, tx DBTX, a Attempt, result string) (bool, error) {
	tag, err := tx.Exec(ctx, s.sql(`UPDATE spool.spool_jobs SET status = 'completed', finished_at = now(), lease_until = NULL,
			lease_token = NULL, result = NULLIF($3, '')::jsonb
		WHERE id = $1 AND lease_token = $2`), a.ID, a.Token, result)
	return tag.RowsAffected() == 1, Interpret(err)
}

// Fail records a failed attempt: status is retrying (run again after
// delay) or dead. It reports whether the attempt was still held.
func (s *Store) Fail(ctx context.Context, db DBTX, a Attempt, status spooltype.Status, delay time.Duration, msg string) (bool, error) {
	tag, err := db.Exec(ctx, s.sql(`UPDATE spool.spool_jobs j SET status = $3,
			run_at = CASE WHEN $3 = 'retrying' THEN now() + $4 * interval '1 millisecond' ELSE run_at END,
			finished_at = CASE WHEN $3 = 'dead' THEN now() END,
			lease_until = NULL, lease_token = NULL, `+appendError("$5")+`
		WHERE id = $1 AND lease_token = $2`), a.ID, a.Token, string(status), delay.Milliseconds(), ClipError(msg))
	return tag.RowsAffected() == 1, Interpret(err)
}

// Snooze puts a job back for later without spending the attempt.
func (s *Store) Snooze(ctx context.Context, db DBTX, a Attempt, after time.Duration) (bool, error) {
	tag, err := db.Exec(ctx, s.sql(`UPDATE spool.spool_jobs SET status = 'pending', attempts = attempts - 1,
			run_at = now() + $3 * interval '1 millisecond', lease_until = NULL, lease_token = NULL
		WHERE id = $1 AND lease_token = $2`), a.ID, a.Token, after.Milliseconds())
	return tag.RowsAffected() == 1, Interpret(err)
}

// HandBack returns an unfinished job to pending without counting the
// attempt and wakes other workers, so a shutdown costs the job nothing.
func (s *Store) HandBack(ctx context.Context, db DBTX, a Attempt) (bool, error) {
	var n int
	err := db.QueryRow(ctx, s.sql(`WITH back AS (
			UPDATE spool.spool_jobs SET status = 'pending', attempts = greatest(attempts - 1, 0),
				lease_until = NULL, lease_token = NULL, worker_id = NULL, started_at = NULL
			WHERE id = $1 AND lease_token = $2 RETURNING queue)
		SELECT count(*) FROM back, LATERAL (SELECT pg_notify('spool:jobs', back.queue)) AS n`), a.ID, a.Token).Scan(&n)
	return n == 1, Interpret(err)
}

// Renew extends the leases of attempts still held and returns the job ids
// of those.
func (s *Store) Renew(ctx context.Context, db DBTX, ids, tokens []int64, lease time.Duration) (map[int64]bool, error) {
	rows, err := db.Query(ctx, s.sql(`UPDATE spool.spool_jobs j SET lease_until = now() + $3 * interval '1 millisecond'
		FROM unnest($1::bigint[], $2::bigint[]) AS l(id, token)
		WHERE j.id = l.id AND j.lease_token = l.token RETURNING j.id`), ids, tokens, lease.Milliseconds())
	if err != nil {
		return nil, Interpret(err)
	}
	defer rows.Close()
	owned := make(map[int64]bool, len(ids))
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, Interpret(err)
		}
		owned[id] = true
	}
	return owned, Interpret(rows.Err())
}
