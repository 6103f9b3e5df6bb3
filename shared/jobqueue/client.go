package jobqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DBTX is what both a pool and a transaction offer; queries take it so they
// run the same either way.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Client enqueues and inspects jobs.
type Client struct {
	pool    *pgxpool.Pool
	metrics *Metrics
	// typeAttempts gives a job type's attempt limit (0: none of its own);
	// the limit is stored on the row at enqueue, so the enqueuer must know it.
	typeAttempts func(typ string) int
}

// NewClient returns a client on pool; metrics may be nil.
func NewClient(pool *pgxpool.Pool, metrics *Metrics) *Client {
	return &Client{pool: pool, metrics: metrics}
}

// SetTypeMaxAttempts makes f the attempt limit of jobs enqueued without
// one: f(type) when it is positive, else DefaultMaxAttempts. Call it before
// the client is used.
func (c *Client) SetTypeMaxAttempts(f func(typ string) int) { c.typeAttempts = f }

// Pool is the client's connection pool.
func (c *Client) Pool() *pgxpool.Pool { return c.pool }

// EnqueueParams describes one job to enqueue. Zero values mean defaults.
type EnqueueParams struct {
	Type           string
	Payload        any // marshalled with encoding/json; json.RawMessage is used as is
	Queue          string
	Priority       int
	RunAt          time.Time // zero: now, by the database's clock
	MaxAttempts    int
	Timeout        time.Duration
	BackoffBase    time.Duration
	BackoffMax     time.Duration
	IdempotencyKey string
	RequestID      string // the API request that enqueued the job, for tracing
}

// EnqueueResult is what an enqueue produced: a new job, or the existing one
// holding the same idempotency key.
type EnqueueResult struct {
	Job       *Job
	Duplicate bool
}

// Enqueue inserts one job in its own transaction.
func (c *Client) Enqueue(ctx context.Context, p EnqueueParams) (EnqueueResult, error) {
	return c.enqueue(ctx, c.pool, p)
}

// EnqueueTx inserts one job inside tx: it becomes visible, and wakes workers,
// only when tx commits, and vanishes if tx rolls back.
func (c *Client) EnqueueTx(ctx context.Context, tx pgx.Tx, p EnqueueParams) (EnqueueResult, error) {
	return c.enqueue(ctx, tx, p)
}

const insertJobSQL = `INSERT INTO spool_jobs
	(type, queue, priority, run_at, max_attempts, timeout_ms, backoff_base_ms, backoff_max_ms, idempotency_key, payload, request_id)
	VALUES ($1, $2, $3, coalesce($4, now()), $5, $6, $7, $8, $9, $10, $11)
	ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
	RETURNING ` + jobColumns

func (c *Client) enqueue(ctx context.Context, db DBTX, p EnqueueParams) (EnqueueResult, error) {
	row, err := c.toRow(p)
	if err != nil {
		return EnqueueResult{}, err
	}
	// A key's holder may be pruned between the failed insert and the lookup;
	// then the next insert succeeds. Two rounds settle any such race.
	for range 3 {
		job, err := scanJob(db.QueryRow(ctx, insertJobSQL, row.typ, row.queue, row.priority, row.runAt,
			row.maxAttempts, row.timeoutMs, row.backoffBaseMs, row.backoffMaxMs, row.key, row.payload, row.requestID))
		if err == nil {
			c.metrics.enqueued(job.Type, 1)
			return EnqueueResult{Job: job}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return EnqueueResult{}, interpretError(fmt.Errorf("enqueue: %w", err))
		}
		job, err = scanJob(db.QueryRow(ctx, `SELECT `+jobColumns+` FROM spool_jobs WHERE idempotency_key = $1`, row.key))
		if err == nil {
			return EnqueueResult{Job: job, Duplicate: true}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return EnqueueResult{}, interpretError(fmt.Errorf("enqueue: find duplicate: %w", err))
		}
	}
	return EnqueueResult{}, fmt.Errorf("enqueue: idempotency key %q kept changing hands", p.IdempotencyKey)
}

// insertRow is EnqueueParams reduced to column values (NULL as nil).
type insertRow struct {
	typ, queue                             string
	priority                               int
	runAt                                  *time.Time
	maxAttempts                            int
	timeoutMs, backoffBaseMs, backoffMaxMs *int32
	key, requestID                         *string
	payload                                []byte
}

func (c *Client) toRow(p EnqueueParams) (insertRow, error) {
	if p.Type == "" {
		return insertRow{}, errors.New("enqueue: job type is required")
	}
	payload, err := marshalPayload(p.Payload)
	if err != nil {
		return insertRow{}, err
	}
	r := insertRow{typ: p.Type, queue: p.Queue, priority: p.Priority, maxAttempts: p.MaxAttempts,
		timeoutMs: msPtr(p.Timeout), backoffBaseMs: msPtr(p.BackoffBase), backoffMaxMs: msPtr(p.BackoffMax), payload: payload}
	if r.queue == "" {
		r.queue = DefaultQueue
	}
	if r.maxAttempts <= 0 && c.typeAttempts != nil {
		r.maxAttempts = c.typeAttempts(p.Type)
	}
	if r.maxAttempts <= 0 {
		r.maxAttempts = DefaultMaxAttempts
	}
	if !p.RunAt.IsZero() {
		r.runAt = &p.RunAt
	}
	if p.IdempotencyKey != "" {
		r.key = &p.IdempotencyKey
	}
	r.requestID = nullIfEmpty(p.RequestID)
	return r, nil
}

func marshalPayload(v any) ([]byte, error) {
	switch p := v.(type) {
	case nil:
		return []byte(`{}`), nil
	case json.RawMessage:
		if len(p) == 0 {
			return []byte(`{}`), nil
		}
		return p, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("enqueue: encode payload: %w", err)
	}
	return b, nil
}

func msPtr(d time.Duration) *int32 {
	if d <= 0 {
		return nil
	}
	ms := int32(min(d.Milliseconds(), 1<<31-1))
	return &ms
}

// EnqueueMany inserts jobs in one statement and one transaction, and returns
// a result per job in input order (Job holds only the ID).
func (c *Client) EnqueueMany(ctx context.Context, ps []EnqueueParams) ([]EnqueueResult, error) {
	var out []EnqueueResult
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var err error
		out, err = c.EnqueueManyTx(ctx, tx, ps)
		return err
	})
	return out, interpretError(err)
}

const insertManySQL = `INSERT INTO spool_jobs
	(type, queue, priority, run_at, max_attempts, timeout_ms, backoff_base_ms, backoff_max_ms, idempotency_key, payload, request_id)
	SELECT t.type, t.queue, t.priority, CASE WHEN t.has_run_at THEN t.run_at ELSE now() END, t.max_attempts,
		NULLIF(t.timeout_ms, 0), NULLIF(t.backoff_base_ms, 0), NULLIF(t.backoff_max_ms, 0), NULLIF(t.key, ''), t.payload::jsonb,
		NULLIF(t.request_id, '')
	FROM unnest($1::text[], $2::text[], $3::smallint[], $4::timestamptz[], $5::bool[], $6::int[], $7::int[], $8::int[], $9::int[], $10::text[], $11::text[], $12::text[])
		WITH ORDINALITY AS t(type, queue, priority, run_at, has_run_at, max_attempts, timeout_ms, backoff_base_ms, backoff_max_ms, key, payload, request_id, ord)
	ORDER BY t.ord
	ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
	RETURNING id, idempotency_key`

// EnqueueManyTx is EnqueueMany inside a caller's transaction.
func (c *Client) EnqueueManyTx(ctx context.Context, tx pgx.Tx, ps []EnqueueParams) ([]EnqueueResult, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	cols := newBatchColumns(len(ps))
	for _, p := range ps {
		r, err := c.toRow(p)
		if err != nil {
			return nil, err
		}
		cols.add(r)
	}
	rows, err := tx.Query(ctx, insertManySQL, cols.types, cols.queues, cols.priorities, cols.runAts, cols.hasRunAt,
		cols.maxAttempts, cols.timeouts, cols.backoffBases, cols.backoffMaxes, cols.keys, cols.payloads, cols.requestIDs)
	if err != nil {
		return nil, interpretError(fmt.Errorf("enqueue batch: %w", err))
	}
	type inserted struct {
		id  int64
		key *string
	}
	ins, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (inserted, error) {
		var i inserted
		return i, r.Scan(&i.id, &i.key)
	})
	if err != nil {
		return nil, interpretError(fmt.Errorf("enqueue batch: %w", err))
	}
	for typ, n := range cols.counts {
		c.metrics.enqueued(typ, n)
	}
	return matchInserted(ctx, tx, cols.keys, ins, func(i inserted) (int64, *string) { return i.id, i.key })
}

// matchInserted maps inserted ids back to input positions. Ids are assigned
// in input order, so keyless rows take the keyless ids in ascending order;
// keyed rows are matched by key, and keys that were not inserted belong to
// existing jobs (duplicates).
func matchInserted[T any](ctx context.Context, tx pgx.Tx, keys []string, ins []T, get func(T) (int64, *string)) ([]EnqueueResult, error) {
	byKey := map[string]int64{}
	var keyless []int64
	for _, i := range ins {
		id, key := get(i)
		if key != nil {
			byKey[*key] = id
		} else {
			keyless = append(keyless, id)
		}
	}
	sort.Slice(keyless, func(a, b int) bool { return keyless[a] < keyless[b] })
	var missing []string
	for _, k := range keys {
		if _, ok := byKey[k]; k != "" && !ok {
			missing = append(missing, k)
		}
	}
	existing, err := idsByKey(ctx, tx, missing)
	if err != nil {
		return nil, err
	}
	out := make([]EnqueueResult, len(keys))
	seen := map[string]bool{}
	for i, k := range keys {
		if k == "" {
			out[i] = EnqueueResult{Job: &Job{ID: keyless[0]}}
			keyless = keyless[1:]
			continue
		}
		id, fresh := byKey[k]
		if !fresh {
			id = existing[k]
		}
		out[i] = EnqueueResult{Job: &Job{ID: id}, Duplicate: !fresh || seen[k]}
		seen[k] = true
	}
	return out, nil
}

func idsByKey(ctx context.Context, tx pgx.Tx, keys []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT idempotency_key, id FROM spool_jobs WHERE idempotency_key = ANY($1)`, keys)
	if err != nil {
		return nil, interpretError(err)
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
	return out, rows.Err()
}

type batchColumns struct {
	types, queues, keys, payloads, requestIDs         []string
	priorities                                        []int16
	runAts                                            []time.Time
	hasRunAt                                          []bool
	maxAttempts, timeouts, backoffBases, backoffMaxes []int32
	counts                                            map[string]int
}

func newBatchColumns(n int) *batchColumns {
	return &batchColumns{
		types: make([]string, 0, n), queues: make([]string, 0, n), keys: make([]string, 0, n), payloads: make([]string, 0, n), requestIDs: make([]string, 0, n),
		priorities: make([]int16, 0, n), runAts: make([]time.Time, 0, n), hasRunAt: make([]bool, 0, n),
		maxAttempts: make([]int32, 0, n), timeouts: make([]int32, 0, n), backoffBases: make([]int32, 0, n), backoffMaxes: make([]int32, 0, n),
		counts: map[string]int{},
	}
}

func (b *batchColumns) add(r insertRow) {
	b.types = append(b.types, r.typ)
	b.queues = append(b.queues, r.queue)
	b.priorities = append(b.priorities, int16(r.priority))
	b.hasRunAt = append(b.hasRunAt, r.runAt != nil)
	if r.runAt != nil {
		b.runAts = append(b.runAts, *r.runAt)
	} else {
		b.runAts = append(b.runAts, time.Time{})
	}
	b.maxAttempts = append(b.maxAttempts, int32(r.maxAttempts))
	b.timeouts = append(b.timeouts, deref(r.timeoutMs))
	b.backoffBases = append(b.backoffBases, deref(r.backoffBaseMs))
	b.backoffMaxes = append(b.backoffMaxes, deref(r.backoffMaxMs))
	key := ""
	if r.key != nil {
		key = *r.key
	}
	b.keys = append(b.keys, key)
	b.payloads = append(b.payloads, string(r.payload))
	rid := ""
	if r.requestID != nil {
		rid = *r.requestID
	}
	b.requestIDs = append(b.requestIDs, rid)
	b.counts[r.typ]++
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// Get returns one job.
func (c *Client) Get(ctx context.Context, id int64) (*Job, error) {
	job, err := scanJob(c.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM spool_jobs WHERE id = $1`, id))
	return job, interpretError(err)
}

// ListParams filters a job listing. Empty fields do not filter.
type ListParams struct {
	Status Status
	Type   string
	Queue  string
	After  int64 // keyset cursor: only jobs with a smaller id (newest first)
	Limit  int
}

// List returns jobs newest first, at most p.Limit of them.
func (c *Client) List(ctx context.Context, p ListParams) ([]*Job, error) {
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
	if p.Type != "" {
		add("type = ?", p.Type)
	}
	if p.Queue != "" {
		add("queue = ?", p.Queue)
	}
	if p.After > 0 {
		add("id < ?", p.After)
	}
	sql := `SELECT ` + jobColumns + ` FROM spool_jobs`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, p.Limit)
	sql += ` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := c.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, interpretError(err)
	}
	jobs, err := scanJobs(rows)
	return jobs, interpretError(err)
}

// Cancel stops a job that has not finished. A running job's worker notices
// on its next heartbeat and cancels the handler's context. Cancelling a
// workflow step cancels the steps that depend on it.
func (c *Client) Cancel(ctx context.Context, id int64) (*Job, error) {
	return c.transition(ctx, id, `UPDATE spool_jobs SET status = 'cancelled', finished_at = now(), lease_until = NULL
		WHERE id = $1 AND status IN ('pending', 'retrying', 'running', 'blocked') RETURNING `+jobColumns,
		func(tx pgx.Tx, j *Job) error {
			if j.WorkflowID == nil {
				return nil
			}
			return advance(ctx, tx, c.metrics, *j.WorkflowID, j.ID, StatusCancelled, false)
		})
}

// Retry puts a dead or cancelled job back to pending with its attempts reset;
// its error history is kept. Retrying a workflow step that failed its
// workflow revives the workflow and the steps its failure cancelled.
func (c *Client) Retry(ctx context.Context, id int64) (*Job, error) {
	return c.transition(ctx, id, `WITH j AS (
			UPDATE spool_jobs SET status = 'pending', attempts = 0, run_at = now(), finished_at = NULL,
				started_at = NULL, lease_until = NULL, worker_id = NULL, cancelled_by = NULL
			WHERE id = $1 AND status IN ('dead', 'cancelled') RETURNING *)
		SELECT `+jobColumns+` FROM j, LATERAL (SELECT pg_notify('spool_jobs', j.queue)) AS n`,
		func(tx pgx.Tx, j *Job) error {
			if j.WorkflowID == nil {
				return nil
			}
			return revive(ctx, tx, []int64{j.ID})
		})
}

// transition runs a state change and its follow-up in one transaction;
// no row means the job is missing (ErrNotFound) or in the wrong state.
func (c *Client) transition(ctx context.Context, id int64, sql string, then func(pgx.Tx, *Job) error) (*Job, error) {
	var job *Job
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var err error
		if job, err = scanJob(tx.QueryRow(ctx, sql, id)); err != nil {
			return err
		}
		return then(tx, job)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := c.Get(ctx, id); err != nil {
			return nil, err
		}
		return nil, ErrInvalidState
	}
	return job, interpretError(err)
}

// QueueStats counts one queue's jobs by status.
type QueueStats struct {
	Counts map[Status]int64 `json:"counts"`
	// OldestDueAgeSeconds is how long the oldest due, unclaimed job has waited.
	OldestDueAgeSeconds float64 `json:"oldest_pending_age_seconds"`
}

// Stats counts jobs by queue and status.
func (c *Client) Stats(ctx context.Context) (map[string]*QueueStats, error) {
	rows, err := c.pool.Query(ctx, `SELECT queue, status, count(*),
			coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE status IN ('pending', 'retrying') AND run_at <= now())), 0)
		FROM spool_jobs GROUP BY queue, status`)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	out := map[string]*QueueStats{}
	for rows.Next() {
		var (
			queue  string
			status Status
			n      int64
			age    float64
		)
		if err := rows.Scan(&queue, &status, &n, &age); err != nil {
			return nil, err
		}
		qs := out[queue]
		if qs == nil {
			qs = &QueueStats{Counts: map[Status]int64{}}
			out[queue] = qs
		}
		qs.Counts[status] = n
		qs.OldestDueAgeSeconds = max(qs.OldestDueAgeSeconds, age)
	}
	return out, interpretError(rows.Err())
}
