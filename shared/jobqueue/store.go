package jobqueue

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// The worker's queries, in one place. Every write that finishes an attempt is
// guarded by worker_id and status, so a worker never overwrites a job that
// was cancelled, rescued or handed to someone else meanwhile.

// claimSQLFor builds the claim statement. Paused queues yield nothing.
// Limited claims stamp start and lease with clock_timestamp(): they run
// after waiting for a lock, and the transaction's start time would be stale.
//
// Prepared statements get generic plans, which cannot see parameters, so
// two choices here keep every plan on the claim index: the claimed ids go
// to the UPDATE as an array (joined, they were hash-joined against a scan of
// the whole table), and the LIMIT is part of the text (as a parameter, the
// planner sorted every pending row instead of reading the index in order):
// 2 ms instead of 35-60 ms per claim at 50k pending jobs.
func claimSQLFor(clock string) string {
	return `UPDATE spool_jobs SET status = 'running', attempts = attempts + 1, worker_id = $3,
		started_at = ` + clock + `, lease_until = ` + clock + ` + $4 * interval '1 millisecond'
	WHERE id = ANY(ARRAY(
		SELECT id FROM spool_jobs
		WHERE queue = $1 AND status IN ('pending', 'retrying') AND run_at <= ` + clock + ` AND type = ANY($2)
			AND NOT EXISTS (SELECT 1 FROM spool_queues q WHERE q.name = $1 AND q.paused)
		ORDER BY priority DESC, run_at, id
		LIMIT %d
		FOR UPDATE SKIP LOCKED))
	RETURNING ` + jobColumns
}

var (
	claimSQL        = claimSQLFor("now()")
	claimPreciseSQL = claimSQLFor("clock_timestamp()")
)

// asyncCommit makes the current transaction's commit not wait for its WAL
// flush. Claims use it: a claim lost in a database crash only means its job
// runs again, which at-least-once allows; waiting for a flush per claim
// would bound a worker by disk latency. Enqueues and completions stay
// durable.
const asyncCommit = `SELECT set_config('synchronous_commit', 'off', true)`

// Sender runs a batch of statements in one round trip; a pool is one.
type Sender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// claim takes up to limit due jobs of queue in one round trip: the
// statements of a batch share one implicit transaction, so the async
// commit applies to the claim alone.
func claim(ctx context.Context, db Sender, queue string, types []string, limit int, workerID string, lease time.Duration) ([]*Job, error) {
	b := &pgx.Batch{}
	b.Queue(asyncCommit)
	b.Queue(withLimit(claimSQL, limit), queue, types, workerID, lease.Milliseconds())
	br := db.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, interpretError(err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, interpretError(err)
	}
	jobs, err := scanJobs(rows)
	if err != nil {
		return nil, interpretError(err)
	}
	sortClaimed(jobs)
	return jobs, interpretError(br.Close())
}

// withLimit writes the claim size into the statement (one cached statement
// per size; sizes are bounded by MaxClaim).
func withLimit(sql string, limit int) string { return fmt.Sprintf(sql, limit) }

// sortClaimed puts a claimed batch back in claim order (an UPDATE returns
// rows in table order), so handlers start highest priority first.
func sortClaimed(jobs []*Job) {
	slices.SortFunc(jobs, func(a, b *Job) int {
		if a.Priority != b.Priority {
			return b.Priority - a.Priority
		}
		if c := a.RunAt.Compare(b.RunAt); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
}

func claimTx(ctx context.Context, db DBTX, sql, queue string, types []string, limit int, workerID string, lease time.Duration) ([]*Job, error) {
	rows, err := db.Query(ctx, withLimit(sql, limit), queue, types, workerID, lease.Milliseconds())
	if err != nil {
		return nil, interpretError(err)
	}
	jobs, err := scanJobs(rows)
	sortClaimed(jobs)
	return jobs, interpretError(err)
}

// nextDue is when the queue's next not-yet-due job becomes due (zero: none).
// It walks the claim index's distinct priorities (a handful, usually) and
// takes the earliest future run_at of each: two index probes per priority
// however many jobs wait.
func nextDue(ctx context.Context, db DBTX, queue string) (time.Time, error) {
	var t *time.Time
	err := db.QueryRow(ctx, `WITH RECURSIVE p(priority) AS (
			(SELECT priority FROM spool_jobs WHERE queue = $1 AND status IN ('pending', 'retrying')
				ORDER BY priority DESC LIMIT 1)
			UNION ALL
			SELECT (SELECT j.priority FROM spool_jobs j WHERE j.queue = $1 AND j.status IN ('pending', 'retrying')
				AND j.priority < p.priority ORDER BY j.priority DESC LIMIT 1)
			FROM p WHERE p.priority IS NOT NULL)
		SELECT min((SELECT j.run_at FROM spool_jobs j WHERE j.queue = $1 AND j.status IN ('pending', 'retrying')
			AND j.priority = p.priority AND j.run_at > now() ORDER BY j.run_at LIMIT 1))
		FROM p WHERE p.priority IS NOT NULL`, queue).Scan(&t)
	if t == nil {
		return time.Time{}, interpretError(err)
	}
	return *t, interpretError(err)
}

// completeMany marks many of this worker's jobs completed in one statement.
// ages are how long ago each handler returned: finished_at is when the job
// finished, on the database's clock, not when its batch was written.
func completeMany(ctx context.Context, db DBTX, ids []int64, ages []float64, workerID string) (int64, error) {
	// "lease_until IS NOT NULL" means running (a CHECK constraint ties the
	// two) but, unlike status = 'running', does not make the lease index
	// eligible: with stale statistics the planner probed it once per id,
	// scanning every running row each time (10k completions took 10 s).
	tag, err := db.Exec(ctx, `UPDATE spool_jobs j SET status = 'completed', lease_until = NULL,
			finished_at = now() - c.age_ms * interval '1 millisecond'
		FROM unnest($1::bigint[], $2::float8[]) AS c(id, age_ms)
		WHERE j.id = c.id AND j.worker_id = $3 AND j.lease_until IS NOT NULL`, ids, ages, workerID)
	return tag.RowsAffected(), interpretError(err)
}

// fail records a failed attempt; status is retrying (run again after delay)
// or dead.
func fail(ctx context.Context, db DBTX, id int64, workerID string, status Status, delay time.Duration, msg string) (bool, error) {
	tag, err := db.Exec(ctx, `UPDATE spool_jobs SET status = $3,
			run_at = CASE WHEN $3 = 'retrying' THEN now() + $4 * interval '1 millisecond' ELSE run_at END,
			finished_at = CASE WHEN $3 = 'dead' THEN now() END,
			lease_until = NULL, last_error = $5,
			errors = errors || jsonb_build_array(jsonb_build_object(
				'attempt', attempts, 'error', $5::text, 'at', now(), 'worker_id', worker_id))
		WHERE id = $1 AND worker_id = $2 AND status = 'running'`, id, workerID, string(status), delay.Milliseconds(), msg)
	return tag.RowsAffected() == 1, interpretError(err)
}

// snooze puts a job back for later without spending the attempt.
func snooze(ctx context.Context, db DBTX, id int64, workerID string, after time.Duration) (bool, error) {
	tag, err := db.Exec(ctx, `UPDATE spool_jobs SET status = 'pending', attempts = attempts - 1,
			run_at = now() + $3 * interval '1 millisecond', lease_until = NULL
		WHERE id = $1 AND worker_id = $2 AND status = 'running'`, id, workerID, after.Milliseconds())
	return tag.RowsAffected() == 1, interpretError(err)
}

// handBack returns an unfinished job to pending without counting the attempt
// and wakes other workers, so a shutdown costs the job nothing.
func handBack(ctx context.Context, db DBTX, id int64, workerID string) (bool, error) {
	var n int
	err := db.QueryRow(ctx, `WITH back AS (
			UPDATE spool_jobs SET status = 'pending', attempts = greatest(attempts - 1, 0),
				lease_until = NULL, worker_id = NULL, started_at = NULL
			WHERE id = $1 AND worker_id = $2 AND status = 'running' RETURNING queue)
		SELECT count(*) FROM back, LATERAL (SELECT pg_notify('spool_jobs', back.queue)) AS n`, id, workerID).Scan(&n)
	return n == 1, interpretError(err)
}

// renewLeases extends the leases of the jobs this worker holds and returns
// the ids it still owns.
func renewLeases(ctx context.Context, db DBTX, ids []int64, workerID string, lease time.Duration) (map[int64]bool, error) {
	rows, err := db.Query(ctx, `UPDATE spool_jobs SET lease_until = now() + $3 * interval '1 millisecond'
		WHERE id = ANY($1) AND worker_id = $2 AND lease_until IS NOT NULL RETURNING id`, ids, workerID, lease.Milliseconds())
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	owned := make(map[int64]bool, len(ids))
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		owned[id] = true
	}
	return owned, interpretError(rows.Err())
}

// RescuedJob is a job whose worker's lease ran out.
type RescuedJob struct {
	ID       int64
	Type     string
	Queue    string
	Attempts int // the attempt that was lost
	Status   Status
	WorkerID string
}

const lostWorkerError = "worker lost: lease expired"

// rescue moves running jobs whose lease expired back to retrying (counting
// the attempt) or to dead after the last one, moving the workflows of dead
// steps on in the same transaction. SKIP LOCKED makes it safe to run in
// every replica at once.
func rescue(ctx context.Context, db Beginner, m *Metrics, limit int) ([]RescuedJob, error) {
	var out []RescuedJob
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `WITH lost AS (
				SELECT id AS lost_id FROM spool_jobs
				WHERE status = 'running' AND lease_until < now()
				ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED)
			UPDATE spool_jobs SET
				status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'retrying' END,
				finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
				run_at = now(), lease_until = NULL, last_error = $2,
				errors = errors || jsonb_build_array(jsonb_build_object(
					'attempt', attempts, 'error', $2::text, 'at', now(), 'worker_id', worker_id))
			FROM lost WHERE id = lost.lost_id
			RETURNING id, type, queue, attempts, status, coalesce(worker_id, ''), workflow_id, continue_on_failure`, limit, lostWorkerError)
		if err != nil {
			return err
		}
		type step struct {
			wf, id int64
			cont   bool
		}
		var dead []step
		for rows.Next() {
			var r RescuedJob
			var wf *int64
			var cont bool
			if err := rows.Scan(&r.ID, &r.Type, &r.Queue, &r.Attempts, &r.Status, &r.WorkerID, &wf, &cont); err != nil {
				return err
			}
			out = append(out, r)
			if wf != nil && r.Status == StatusDead {
				dead = append(dead, step{*wf, r.ID, cont})
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, d := range dead {
			if err := advance(ctx, tx, m, d.wf, d.id, StatusDead, d.cont); err != nil {
				return err
			}
		}
		return nil
	})
	return out, interpretError(err)
}
