package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/spooltype"
)

// Statements of spool_jobs outside the worker's hot path.

// Job is the stored row type.
type Job = spooltype.Job

// jobColumns is the select list of a whole job, in the order scanJob reads.
const jobColumns = `id, type, queue, status, priority, attempts, max_attempts, run_at,
	timeout_ms, backoff_base_ms, backoff_max_ms, idempotency_key, worker_id, lease_until,
	last_error, errors, errors_dropped, payload, result, created_at, started_at, finished_at,
	workflow_id, step, parents, continue_on_failure, request_id, trace_parent`

// listColumns is jobColumns without the columns a row can make large (the
// payload, the error history, the result): what a brief list reads.
const listColumns = `id, type, queue, status, priority, attempts, max_attempts, run_at,
	timeout_ms, backoff_base_ms, backoff_max_ms, idempotency_key, worker_id, lease_until,
	last_error, NULL::jsonb, errors_dropped, NULL::jsonb, NULL::jsonb, created_at, started_at, finished_at,
	workflow_id, step, parents, continue_on_failure, request_id, trace_parent`

func scanJob(row pgx.Row) (*Job, error) {
	var (
		j                    Job
		timeout, bbase, bmax *int32
		errs                 []byte
	)
	err := row.Scan(&j.ID, &j.Kind, &j.Queue, &j.Status, &j.Priority, &j.Attempts, &j.MaxAttempts, &j.RunAt,
		&timeout, &bbase, &bmax, &j.IdempotencyKey, &j.WorkerID, &j.LeaseUntil,
		&j.LastError, &errs, &j.ErrorsDropped, &j.Payload, &j.Result, &j.CreatedAt, &j.StartedAt, &j.FinishedAt,
		&j.WorkflowID, &j.Step, &j.Parents, &j.ContinueOnFailure, &j.RequestID, &j.TraceParent)
	if err != nil {
		return nil, err
	}
	j.Timeout, j.BackoffBase, j.BackoffMax = ms(timeout), ms(bbase), ms(bmax)
	if j.Errors, err = decodeErrors(errs); err != nil {
		return nil, fmt.Errorf("decode error history of job %d: %w", j.ID, err)
	}
	return &j, nil
}

func scanJobs(rows pgx.Rows) ([]*Job, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Job, error) { return scanJob(r) })
}

// storedError is an error history entry as the database writes it.
type storedError struct {
	Attempt  int       `json:"attempt"`
	Error    string    `json:"error"`
	At       time.Time `json:"at"`
	WorkerID string    `json:"worker_id"`
}

func decodeErrors(b []byte) ([]spooltype.AttemptError, error) {
	if len(b) == 0 || string(b) == "[]" {
		return []spooltype.AttemptError{}, nil
	}
	var in []storedError
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, err
	}
	out := make([]spooltype.AttemptError, len(in))
	for i, e := range in {
		out[i] = spooltype.AttemptError(e)
	}
	return out, nil
}

func ms(v *int32) time.Duration {
	if v == nil {
		return 0
	}
	return time.Duration(*v) * time.Millisecond
}

// Millis is d in whole milliseconds for a *_ms column, 0 (stored as NULL)
// for unset.
func Millis(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	return int32(min(max(d.Milliseconds(), 1), 1<<31-1))
}

// InsertRow is one job reduced to column values, validated and with its
// kind's policy applied. Zero durations and empty strings are stored as
// NULL.
type InsertRow struct {
	Kind, Queue                          string
	Priority                             int
	RunAt                                time.Time // zero: now()
	MaxAttempts                          int
	TimeoutMs, BackoffBaseMs, BackoffMax int32
	Key                                  string
	// Payload is JSON text. Passed as text, it reaches jsonb the same way
	// over the extended and the simple protocol (PgBouncer in transaction
	// mode); as bytes, the simple protocol would send it as bytea.
	Payload     string
	RequestID   string
	TraceParent string
}

func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

const insertSQL = `INSERT INTO spool.spool_jobs
	(type, queue, priority, run_at, max_attempts, timeout_ms, backoff_base_ms, backoff_max_ms, idempotency_key, payload, request_id, trace_parent)
	VALUES ($1, $2, $3, coalesce($4, now()), $5, NULLIF($6, 0), NULLIF($7, 0), NULLIF($8, 0), NULLIF($9, ''), $10::text::jsonb, NULLIF($11, ''), NULLIF($12, ''))
	ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
	RETURNING ` + jobColumns

// Insert writes one job. When its idempotency key is taken it returns the
// job holding the key and duplicate true.
func (s *Store) Insert(ctx context.Context, db DBTX, r InsertRow) (job *Job, duplicate bool, err error) {
	// A key's holder may be pruned between the failed insert and the
	// lookup; then the next insert succeeds. Three rounds settle any race.
	for range 3 {
		job, err = scanJob(db.QueryRow(ctx, s.sql(insertSQL), r.Kind, r.Queue, r.Priority, nullTime(r.RunAt),
			r.MaxAttempts, r.TimeoutMs, r.BackoffBaseMs, r.BackoffMax, r.Key, r.Payload, r.RequestID, r.TraceParent))
		if err == nil {
			return job, false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, false, Interpret(fmt.Errorf("enqueue: %w", err))
		}
		job, err = scanJob(db.QueryRow(ctx, s.sql(`SELECT `+jobColumns+` FROM spool.spool_jobs WHERE idempotency_key = $1`), r.Key))
		if err == nil {
			return job, true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, false, Interpret(fmt.Errorf("enqueue: find duplicate: %w", err))
		}
	}
	return nil, false, fmt.Errorf("enqueue: idempotency key %q kept changing hands", r.Key)
}

const insertManyBase = `INSERT INTO spool.spool_jobs
	(type, queue, priority, run_at, max_attempts, timeout_ms, backoff_base_ms, backoff_max_ms, idempotency_key, payload, request_id, trace_parent)
	SELECT t.type, t.queue, t.priority, CASE WHEN t.has_run_at THEN t.run_at ELSE now() END, t.max_attempts,
		NULLIF(t.timeout_ms, 0), NULLIF(t.backoff_base_ms, 0), NULLIF(t.backoff_max_ms, 0), NULLIF(t.key, ''), t.payload::jsonb,
		NULLIF(t.request_id, ''), NULLIF(t.trace_parent, '')
	FROM unnest($1::text[], $2::text[], $3::smallint[], $4::timestamptz[], $5::bool[], $6::int[], $7::int[], $8::int[], $9::int[], $10::text[], $11::text[], $12::text[], $13::text[])
		WITH ORDINALITY AS t(type, queue, priority, run_at, has_run_at, max_attempts, timeout_ms, backoff_base_ms, backoff_max_ms, key, payload, request_id, trace_parent, ord)
	ORDER BY t.ord
	ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
`

const insertManySQL = insertManyBase + `	RETURNING id, idempotency_key`

// insertManyJobsSQL returns whole jobs, for InsertManyJobs.
const insertManyJobsSQL = insertManyBase + `	RETURNING ` + jobColumns

// Inserted is one job of a batch: its id, and whether it already existed
// (its idempotency key was taken, or given twice in the batch).
type Inserted struct {
	ID        int64
	Duplicate bool
}

// InsertMany writes rows in one statement and returns one result per row,
// in input order. Run it in a transaction: ids are matched to rows by
// their order of assignment.
func (s *Store) InsertMany(ctx context.Context, tx DBTX, rows []InsertRow) ([]Inserted, error) {
	c := columnsOf(rows)
	res, err := tx.Query(ctx, s.sql(insertManySQL), c.kinds, c.queues, c.priorities, c.runAts, c.hasRunAt,
		c.maxAttempts, c.timeouts, c.backoffBases, c.backoffMaxes, c.keys, c.payloads, c.requestIDs, c.traceParents)
	if err != nil {
		return nil, Interpret(fmt.Errorf("enqueue batch: %w", err))
	}
	type row struct {
		id  int64
		key *string
	}
	ins, err := pgx.CollectRows(res, func(r pgx.CollectableRow) (row, error) {
		var i row
		return i, r.Scan(&i.id, &i.key)
	})
	if err != nil {
		return nil, Interpret(fmt.Errorf("enqueue batch: %w", err))
	}
	byKey := map[string]int64{}
	var keyless []int64
	for _, i := range ins {
		if i.key != nil {
			byKey[*i.key] = i.id
		} else {
			keyless = append(keyless, i.id)
		}
	}
	return s.matchInserted(ctx, tx, c.keys, byKey, keyless)
}

// matchInserted maps inserted ids back to input positions. Ids are
// assigned in input order, so keyless rows take the keyless ids in
// ascending order; keyed rows are matched by key, and keys that were not
// inserted belong to existing jobs (duplicates).
func (s *Store) matchInserted(ctx context.Context, tx DBTX, keys []string, byKey map[string]int64, keyless []int64) ([]Inserted, error) {
	slices.Sort(keyless)
	var missing []string
	for _, k := range keys {
		if _, ok := byKey[k]; k != "" && !ok {
			missing = append(missing, k)
		}
	}
	existing, err := s.idsByKey(ctx, tx, missing)
	if err != nil {
		return nil, err
	}
	out := make([]Inserted, len(keys))
	seen := map[string]bool{}
	for i, k := range keys {
		if k == "" {
			out[i] = Inserted{ID: keyless[0]}
			keyless = keyless[1:]
			continue
		}
		id, fresh := byKey[k]
		if !fresh {
			id = existing[k]
		}
		out[i] = Inserted{ID: id, Duplicate: !fresh || seen[k]}
		seen[k] = true
	}
	return out, nil
}

func (s *Store) idsByKey(ctx context.Context, tx DBTX, keys []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, s.sql(`SELECT idempotency_key, id FROM spool.spool_jobs WHERE idempotency_key = ANY($1)`), keys)
	if err != nil {
		return nil, Interpret(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var id int64
		if err := rows.Scan(&k, &id); err != nil {
			return nil, err
		}
		out[k] = id
	}
	return out, Interpret(rows.Err())
}

type columns struct {
	kinds, queues, keys, payloads, requestIDs         []string
	traceParents                                      []string
	priorities                                        []int16
	runAts                                            []time.Time
	hasRunAt                                          []bool
	maxAttempts, timeouts, backoffBases, backoffMaxes []int32
}

func columnsOf(rows []InsertRow) *columns {
	n := len(rows)
	c := &columns{
		kinds: make([]string, n), queues: make([]string, n), keys: make([]string, n), payloads: make([]string, n),
		requestIDs: make([]string, n), traceParents: make([]string, n), priorities: make([]int16, n), runAts: make([]time.Time, n), hasRunAt: make([]bool, n),
		maxAttempts: make([]int32, n), timeouts: make([]int32, n), backoffBases: make([]int32, n), backoffMaxes: make([]int32, n),
	}
	for i, r := range rows {
		c.kinds[i], c.queues[i], c.keys[i], c.payloads[i], c.requestIDs[i] = r.Kind, r.Queue, r.Key, r.Payload, r.RequestID
		c.traceParents[i] = r.TraceParent
		c.priorities[i], c.runAts[i], c.hasRunAt[i] = int16(r.Priority), r.RunAt, !r.RunAt.IsZero()
		c.maxAttempts[i], c.timeouts[i], c.backoffBases[i], c.backoffMaxes[i] = int32(r.MaxAttempts), r.TimeoutMs, r.BackoffBaseMs, r.BackoffMax
	}
	return c
}

// copyColumns are the columns COPY writes; the rest take their defaults.
var copyColumns = []string{"type", "queue", "priority", "run_at", "max_attempts", "timeout_ms", "backoff_base_ms", "backoff_max_ms", "payload", "request_id", "trace_parent"}

// Copy writes keyless rows with COPY, the fastest way into PostgreSQL, and
// returns how many it wrote. The insert trigger still wakes workers.
func (s *Store) Copy(ctx context.Context, tx pgx.Tx, rows []InsertRow) (int64, error) {
	// COPY cannot ask the server for now(); one statement-start timestamp
	// from the server keeps run_at on the database's clock.
	var now time.Time
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return 0, Interpret(err)
	}
	null := func(v int32) *int32 {
		if v == 0 {
			return nil
		}
		return &v
	}
	vals := make([][]any, len(rows))
	for i, r := range rows {
		runAt := r.RunAt
		if runAt.IsZero() {
			runAt = now
		}
		vals[i] = []any{r.Kind, r.Queue, int16(r.Priority), runAt, int32(r.MaxAttempts), null(r.TimeoutMs), null(r.BackoffBaseMs),
			null(r.BackoffMax), json.RawMessage(r.Payload), nullText(r.RequestID), nullText(r.TraceParent)}
	}
	n, err := tx.CopyFrom(ctx, s.Table("spool_jobs"), copyColumns, pgx.CopyFromRows(vals))
	if err != nil {
		return 0, Interpret(fmt.Errorf("enqueue fast: %w", err))
	}
	return n, nil
}

// Get returns one job, ErrNotFound if there is none.
func (s *Store) Get(ctx context.Context, db DBTX, id int64) (*Job, error) {
	job, err := scanJob(db.QueryRow(ctx, s.sql(`SELECT `+jobColumns+` FROM spool.spool_jobs WHERE id = $1`), id))
	return job, Interpret(err)
}

// List returns jobs newest first, at most p.Limit of them.
func (s *Store) List(ctx context.Context, db DBTX, p spooltype.ListParams) ([]*Job, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if p.Status != "" {
		add("status = ?", string(p.Status))
	}
	if p.Kind != "" {
		add("type = ?", p.Kind)
	}
	if p.Queue != "" {
		add("queue = ?", p.Queue)
	}
	if p.After > 0 {
		add("id < ?", p.After)
	}
	cols := jobColumns
	if p.Brief {
		cols = listColumns
	}
	sql := `SELECT ` + cols + ` FROM spool.spool_jobs`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, p.Limit)
	sql += ` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := db.Query(ctx, s.sql(sql), args...)
	if err != nil {
		return nil, Interpret(err)
	}
	jobs, err := scanJobs(rows)
	return jobs, Interpret(err)
}

// Cancel marks a job that has not finished cancelled and returns it;
// pgx.ErrNoRows if it is missing or finished. A running job's worker
// notices at its next lease renewal.
func (s *Store) Cancel(ctx context.Context, tx DBTX, id int64) (*Job, error) {
	return scanJob(tx.QueryRow(ctx, s.sql(`UPDATE spool.spool_jobs SET status = 'cancelled', finished_at = now(),
			lease_until = NULL, lease_token = NULL
		WHERE id = $1 AND status IN ('pending', 'retrying', 'running', 'blocked') RETURNING `+jobColumns), id))
}

// Retry puts a dead or cancelled job back to pending with its attempts
// reset (history kept), wakes workers, and returns it; pgx.ErrNoRows if it
// is missing or in another state.
func (s *Store) Retry(ctx context.Context, tx DBTX, id int64) (*Job, error) {
	return scanJob(tx.QueryRow(ctx, s.sql(`WITH j AS (
			UPDATE spool.spool_jobs SET status = 'pending', attempts = 0, run_at = now(), finished_at = NULL,
				started_at = NULL, lease_until = NULL, lease_token = NULL, worker_id = NULL, cancelled_by = NULL
			WHERE id = $1 AND status IN ('dead', 'cancelled') RETURNING *)
		SELECT `+jobColumns+` FROM j, LATERAL (SELECT pg_notify('spool:jobs', j.queue)) AS n`), id))
}

func deadWhere(f spooltype.DeadFilter) (string, []any) {
	conds, args := []string{"status = 'dead'"}, []any{}
	add := func(col string, v any) {
		args = append(args, v)
		conds = append(conds, col+" = $"+strconv.Itoa(len(args)))
	}
	if f.ID != 0 {
		add("id", f.ID)
	}
	if f.Kind != "" {
		add("type", f.Kind)
	}
	if f.Queue != "" {
		add("queue", f.Queue)
	}
	return strings.Join(conds, " AND "), args
}

// RetryDead puts every dead job matching f back to pending, wakes workers
// of their queues, and returns the ids of those that are workflow steps
// (their workflows are revived by the caller in the same transaction) and
// how many it retried.
func (s *Store) RetryDead(ctx context.Context, tx DBTX, f spooltype.DeadFilter) (n int64, steps []int64, err error) {
	where, args := deadWhere(f)
	rows, err := tx.Query(ctx, s.sql(`UPDATE spool.spool_jobs SET status = 'pending', attempts = 0, run_at = now(), finished_at = NULL,
			started_at = NULL, worker_id = NULL, cancelled_by = NULL
		WHERE `+where+` RETURNING id, queue, workflow_id IS NOT NULL`), args...)
	if err != nil {
		return 0, nil, err
	}
	queues := map[string]bool{}
	for rows.Next() {
		var id int64
		var queue string
		var inWorkflow bool
		if err := rows.Scan(&id, &queue, &inWorkflow); err != nil {
			return 0, nil, err
		}
		n++
		queues[queue] = true
		if inWorkflow {
			steps = append(steps, id)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, nil, err
	}
	for q := range queues {
		if _, err := tx.Exec(ctx, s.sql(`SELECT pg_notify('spool:jobs', $1)`), q); err != nil {
			return 0, nil, err
		}
	}
	return n, steps, nil
}

// DeleteDead deletes every dead job matching f and returns how many.
func (s *Store) DeleteDead(ctx context.Context, db DBTX, f spooltype.DeadFilter) (int64, error) {
	where, args := deadWhere(f)
	tag, err := db.Exec(ctx, s.sql(`DELETE FROM spool.spool_jobs WHERE `+where), args...)
	return tag.RowsAffected(), Interpret(err)
}

// Stats counts jobs by queue and status, with the age of each queue's
// oldest due job.
func (s *Store) Stats(ctx context.Context, db DBTX) (map[string]*spooltype.QueueStats, error) {
	rows, err := db.Query(ctx, s.sql(`SELECT queue, status, count(*),
			coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE status IN ('pending', 'retrying') AND run_at <= now())), 0)
		FROM spool.spool_jobs GROUP BY queue, status`))
	if err != nil {
		return nil, Interpret(err)
	}
	defer rows.Close()
	out := map[string]*spooltype.QueueStats{}
	for rows.Next() {
		var (
			queue  string
			status spooltype.Status
			n      int64
			age    float64
		)
		if err := rows.Scan(&queue, &status, &n, &age); err != nil {
			return nil, err
		}
		qs := out[queue]
		if qs == nil {
			qs = &spooltype.QueueStats{Counts: map[spooltype.Status]int64{}}
			out[queue] = qs
		}
		qs.Counts[status] = n
		qs.OldestDueAge = max(qs.OldestDueAge, time.Duration(age*float64(time.Second)))
	}
	return out, Interpret(rows.Err())
}

// CountWaitingByKind counts pending and retrying jobs per kind, so
// kinds that no live worker serves can be shown with their backlog.
func (s *Store) CountWaitingByKind(ctx context.Context, db DBTX) (map[string]int64, error) {
	rows, err := db.Query(ctx, s.sql(`SELECT type, count(*) FROM spool.spool_jobs WHERE status IN ('pending', 'retrying') GROUP BY type`))
	if err != nil {
		return nil, Interpret(err)
	}
	out := map[string]int64{}
	var kind string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&kind, &n}, func() error {
		out[kind] = n
		return nil
	})
	return out, Interpret(err)
}

// GetMany returns the jobs of ids, by id (missing ids are absent).
func (s *Store) GetMany(ctx context.Context, db DBTX, ids []int64) (map[int64]*Job, error) {
	rows, err := db.Query(ctx, s.sql(`SELECT `+jobColumns+` FROM spool.spool_jobs WHERE id = ANY($1)`), ids)
	if err != nil {
		return nil, Interpret(err)
	}
	jobs, err := scanJobs(rows)
	if err != nil {
		return nil, Interpret(err)
	}
	out := make(map[int64]*Job, len(jobs))
	for _, j := range jobs {
		out[j.ID] = j
	}
	return out, nil
}

// InsertManyJobs is InsertMany returning each row's whole job (the one
// holding its key when it is a duplicate), in one statement for the new
// ones: what a gathered group of single enqueues answers with.
func (s *Store) InsertManyJobs(ctx context.Context, tx DBTX, rows []InsertRow) ([]*Job, []Inserted, error) {
	c := columnsOf(rows)
	res, err := tx.Query(ctx, s.sql(insertManyJobsSQL), c.kinds, c.queues, c.priorities, c.runAts, c.hasRunAt,
		c.maxAttempts, c.timeouts, c.backoffBases, c.backoffMaxes, c.keys, c.payloads, c.requestIDs, c.traceParents)
	if err != nil {
		return nil, nil, Interpret(fmt.Errorf("enqueue batch: %w", err))
	}
	fresh, err := scanJobs(res)
	if err != nil {
		return nil, nil, Interpret(fmt.Errorf("enqueue batch: %w", err))
	}
	byID := make(map[int64]*Job, len(fresh))
	byKey := map[string]int64{}
	var keyless []int64
	for _, j := range fresh {
		byID[j.ID] = j
		if j.IdempotencyKey != nil {
			byKey[*j.IdempotencyKey] = j.ID
		} else {
			keyless = append(keyless, j.ID)
		}
	}
	ins, err := s.matchInserted(ctx, tx, c.keys, byKey, keyless)
	if err != nil {
		return nil, nil, err
	}
	jobs := make([]*Job, len(ins))
	var missing []int64
	for i, in := range ins {
		if jobs[i] = byID[in.ID]; jobs[i] == nil && in.ID != 0 {
			missing = append(missing, in.ID)
		}
	}
	if len(missing) > 0 { // duplicates of jobs written before
		held, err := s.GetMany(ctx, tx, missing)
		if err != nil {
			return nil, nil, err
		}
		for i, in := range ins {
			if jobs[i] == nil {
				jobs[i] = held[in.ID]
			}
		}
	}
	return jobs, ins, nil
}
