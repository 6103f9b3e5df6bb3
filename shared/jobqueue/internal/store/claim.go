package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// The worker's hot path: claims and the writes that end attempts. Every
// write that ends an attempt is fenced by the attempt's lease token, set at
// claim and cleared by whatever ends the attempt (completion, failure,
// snooze, hand-back, cancel, rescue): a stale attempt — its lease lost in a
// partition, its job rescued and claimed again, even by the same worker —
// can never write over a newer one.

// claimColumns is what a handler gets of its job: everything but the error
// history and the result, which only grow and which no handler needs.
const claimColumns = `id, type, queue, status, priority, attempts, max_attempts, run_at,
	timeout_ms, backoff_base_ms, backoff_max_ms, idempotency_key, worker_id, lease_until,
	payload, created_at, started_at, workflow_id, step, parents, continue_on_failure, request_id, trace_parent`

func scanClaimed(row pgx.Row) (*Job, error) {
	var (
		j                    Job
		timeout, bbase, bmax *int32
	)
	err := row.Scan(&j.ID, &j.Kind, &j.Queue, &j.Status, &j.Priority, &j.Attempts, &j.MaxAttempts, &j.RunAt,
		&timeout, &bbase, &bmax, &j.IdempotencyKey, &j.WorkerID, &j.LeaseUntil,
		&j.Payload, &j.CreatedAt, &j.StartedAt, &j.WorkflowID, &j.Step, &j.Parents, &j.ContinueOnFailure, &j.RequestID, &j.TraceParent)
	if err != nil {
		return nil, err
	}
	j.Timeout, j.BackoffBase, j.BackoffMax = ms(timeout), ms(bbase), ms(bmax)
	return &j, nil
}

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
	return `UPDATE spool.spool_jobs SET status = 'running', attempts = attempts + 1, worker_id = $3, lease_token = $5,
		started_at = ` + clock + `, lease_until = ` + clock + ` + $4 * interval '1 millisecond'
	WHERE id = ANY(ARRAY(
		SELECT id FROM spool.spool_jobs
		WHERE queue = $1 AND status IN ('pending', 'retrying') AND run_at <= ` + clock + ` AND type = ANY($2)
			AND NOT EXISTS (SELECT 1 FROM spool.spool_queues q WHERE q.name = $1 AND q.paused)
		ORDER BY priority DESC, run_at, id
		LIMIT %d
		FOR UPDATE SKIP LOCKED))
	RETURNING ` + claimColumns
}

var (
	claimSQL        = claimSQLFor("now()")
	claimPreciseSQL = claimSQLFor("clock_timestamp()")
)

// ClaimParams says what one claim takes.
type ClaimParams struct {
	Queue    string
	Kinds    []string
	Limit    int
	WorkerID string
	Lease    time.Duration
	Token    int64 // the lease token of every job of this claim
}

// Claim takes up to p.Limit due jobs in one statement. It commits
// durably: a claim lost in a database crash (or a failover) would put its
// job back to pending while its worker still ran it, and another worker
// would take it at once (the e2e's postmaster SIGKILL showed two attempts
// overlapping); a durable claim keeps the lease, which the rescuer waits
// out. A drain of 30k jobs showed no cost against an asynchronous commit.
func (s *Store) Claim(ctx context.Context, db DBTX, p ClaimParams) ([]*Job, error) {
	return s.claim(ctx, db, claimSQL, p)
}

// ClaimTx is Claim inside a transaction that holds a limit's lock, with
// start and lease stamped by the clock at the claim itself.
func (s *Store) ClaimTx(ctx context.Context, tx DBTX, p ClaimParams) ([]*Job, error) {
	return s.claim(ctx, tx, claimPreciseSQL, p)
}

func (s *Store) claim(ctx context.Context, db DBTX, sql string, p ClaimParams) ([]*Job, error) {
	rows, err := db.Query(ctx, s.sql(fmt.Sprintf(sql, p.Limit)), p.Queue, p.Kinds, p.WorkerID, p.Lease.Milliseconds(), p.Token)
	if err != nil {
		return nil, Interpret(err)
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Job, error) { return scanClaimed(r) })
	if err != nil {
		return nil, Interpret(err)
	}
	SortClaimed(jobs)
	return jobs, nil
}

// SortClaimed puts a claimed batch back in claim order (an UPDATE returns
// rows in table order), so handlers start highest priority first.
func SortClaimed(jobs []*Job) {
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

// NextDue is when the queue's next not-yet-due job becomes due (zero:
// none). It walks the claim index's distinct priorities (a handful,
// usually) and takes the earliest future run_at of each: two index probes
// per priority however many jobs wait.
func (s *Store) NextDue(ctx context.Context, db DBTX, queue string) (time.Time, error) {
	var t *time.Time
	err := db.QueryRow(ctx, s.sql(`WITH RECURSIVE p(priority) AS (
			(SELECT priority FROM spool.spool_jobs WHERE queue = $1 AND status IN ('pending', 'retrying')
				ORDER BY priority DESC LIMIT 1)
			UNION ALL
			SELECT (SELECT j.priority FROM spool.spool_jobs j WHERE j.queue = $1 AND j.status IN ('pending', 'retrying')
				AND j.priority < p.priority ORDER BY j.priority DESC LIMIT 1)
			FROM p WHERE p.priority IS NOT NULL)
		SELECT min((SELECT j.run_at FROM spool.spool_jobs j WHERE j.queue = $1 AND j.status IN ('pending', 'retrying')
			AND j.priority = p.priority AND j.run_at > now() ORDER BY j.run_at LIMIT 1))
		FROM p WHERE p.priority IS NOT NULL`), queue).Scan(&t)
	if t == nil {
		return time.Time{}, Interpret(err)
	}
	return *t, Interpret(err)
}

// DueExists reports whether due jobs of kinds wait in queue.
func (s *Store) DueExists(ctx context.Context, tx DBTX, queue string, kinds []string) (bool, error) {
	var ok bool
	err := tx.QueryRow(ctx, s.sql(`SELECT EXISTS (SELECT 1 FROM spool.spool_jobs WHERE queue = $1 AND status IN ('pending', 'retrying')
		AND run_at <= now() AND type = ANY($2))`), queue, kinds).Scan(&ok)
	return ok, Interpret(err)
}
