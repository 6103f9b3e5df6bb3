package jobqueue

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolq/spool/shared/jobqueue/internal/enqueue"
	"github.com/spoolq/spool/shared/jobqueue/internal/maintenance"
	"github.com/spoolq/spool/shared/jobqueue/internal/store"
	"github.com/spoolq/spool/shared/jobqueue/internal/workflow"
)

// ClientOpts configures a Client; nil means defaults.
type ClientOpts struct {
	// Schema is the PostgreSQL schema Spool's tables live in ("" means
	// "spool"), as migrated by postgres.Spool(schema).
	Schema string
	// Kinds are the kinds this process declares: enqueueing one applies
	// its policy and checks its payload strictly.
	Kinds *Kinds
	// Metrics counts enqueued jobs; nil counts nothing.
	Metrics *Metrics
	// Clock is what RunAt's bound (a year ahead) is measured on; nil: the
	// system clock.
	Clock Clock
}

// Client enqueues, inspects and manages jobs. It is safe for concurrent
// use.
type Client struct {
	pool      *pgxpool.Pool
	store     *store.Store
	pols      *policies
	enq       *enqueue.Enqueuer
	workflows *workflow.Engine
	metrics   *Metrics
}

// NewClient returns a client on pool.
func NewClient(pool *pgxpool.Pool, opts *ClientOpts) (*Client, error) {
	var o ClientOpts
	if opts != nil {
		o = *opts
	}
	st, err := store.New(o.Schema)
	if err != nil {
		return nil, err
	}
	pols := &policies{local: o.Kinds}
	enq := &enqueue.Enqueuer{Store: st, Kinds: pols, Metrics: o.Metrics.set(), Now: nowOf(o.Clock)}
	return &Client{pool: pool, store: st, pols: pols, enq: enq, metrics: o.Metrics,
		workflows: &workflow.Engine{Store: st, Enqueuer: enq}}, nil
}

// SetPolicies gives the client the policies of kinds it does not declare
// itself, such as the catalog's (package catalog). Call it before the
// client is used.
func (c *Client) SetPolicies(src PolicySource) { c.pols.other = src }

// Pool is the client's connection pool.
func (c *Client) Pool() *pgxpool.Pool { return c.pool }

// Schema is the schema the client's tables live in.
func (c *Client) Schema() string { return c.store.Schema() }

// EnqueueResult is what an enqueue produced: a new job, or the existing
// one holding the same idempotency key.
type EnqueueResult struct {
	Job       *Job
	Duplicate bool
}

// Enqueue inserts one job in its own transaction. Invalid parameters are
// an *InvalidError (errors.Is(err, ErrInvalid)).
func (c *Client) Enqueue(ctx context.Context, p EnqueueParams) (EnqueueResult, error) {
	return c.EnqueueTx(ctx, c.pool, p)
}

// EnqueueTx inserts one job inside tx (any DBTX, usually a pgx.Tx): it
// becomes visible, and wakes workers, only when tx commits, and vanishes
// if tx rolls back.
func (c *Client) EnqueueTx(ctx context.Context, tx DBTX, p EnqueueParams) (EnqueueResult, error) {
	job, dup, err := c.enq.One(ctx, tx, p)
	if err != nil {
		return EnqueueResult{}, err
	}
	return EnqueueResult{Job: job, Duplicate: dup}, nil
}

// Inserted is one job of a batch: its id, and whether it already existed
// (its idempotency key was taken, or given twice in the batch).
type Inserted = store.Inserted

// EnqueueMany inserts jobs in one statement and one transaction, all or
// nothing, and returns a result per job in input order. A refused job is a
// *BatchError naming its index.
func (c *Client) EnqueueMany(ctx context.Context, ps []EnqueueParams) ([]Inserted, error) {
	var out []Inserted
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var err error
		out, err = c.EnqueueManyTx(ctx, tx, ps)
		return err
	})
	return out, store.Interpret(err)
}

// EnqueueManyTx is EnqueueMany inside a caller's transaction.
func (c *Client) EnqueueManyTx(ctx context.Context, tx pgx.Tx, ps []EnqueueParams) ([]Inserted, error) {
	return c.enq.Many(ctx, tx, ps)
}

// EnqueueManyFast inserts jobs with COPY, the fastest way into PostgreSQL,
// in its own transaction, and returns how many it wrote. It returns no ids
// and takes no idempotency keys (COPY cannot skip conflicts); the insert
// trigger still wakes workers when it commits.
func (c *Client) EnqueueManyFast(ctx context.Context, ps []EnqueueParams) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var err error
		n, err = c.EnqueueManyFastTx(ctx, tx, ps)
		return err
	})
	return n, store.Interpret(err)
}

// EnqueueManyFastTx is EnqueueManyFast inside a caller's transaction.
func (c *Client) EnqueueManyFastTx(ctx context.Context, tx pgx.Tx, ps []EnqueueParams) (int64, error) {
	return c.enq.Copy(ctx, tx, ps)
}

// Get returns one job with its error history and result.
func (c *Client) Get(ctx context.Context, id int64) (*Job, error) {
	return c.store.Get(ctx, c.pool, id)
}

// List returns jobs newest first, at most p.Limit of them.
func (c *Client) List(ctx context.Context, p ListParams) ([]*Job, error) {
	return c.store.List(ctx, c.pool, p)
}

// ListPage returns a page of jobs, newest first, and the cursor of the
// next page (pass it as After; 0 on the last page). With p.ScanLimit, a
// page filtered by type or queue examines at most that many jobs, so its
// cost is bounded at any depth of backlog; it can then hold fewer than
// p.Limit jobs, or none, and still have a next page.
func (c *Client) ListPage(ctx context.Context, p ListParams) (jobs []*Job, next int64, err error) {
	return c.store.ListPage(ctx, c.pool, p)
}

// ListTx is List inside tx, which sees its own uncommitted jobs.
func (c *Client) ListTx(ctx context.Context, tx DBTX, p ListParams) ([]*Job, error) {
	return c.store.List(ctx, tx, p)
}

// Cancel stops a job that has not finished. A running job's worker notices
// at its next lease renewal and cancels the handler's context. Cancelling a
// workflow step cancels the steps that depend on it. ErrInvalidState if
// the job already finished.
func (c *Client) Cancel(ctx context.Context, id int64) (*Job, error) {
	return c.transition(ctx, id, c.store.Cancel, func(tx pgx.Tx, j *Job) error {
		if j.WorkflowID == nil {
			return nil
		}
		return c.workflows.Advance(ctx, tx, *j.WorkflowID, j.ID, StatusCancelled, false)
	})
}

// Retry puts a dead or cancelled job back to pending with its attempts
// reset; its error history is kept. Retrying a workflow step that failed
// its workflow revives the workflow and the steps its failure cancelled.
func (c *Client) Retry(ctx context.Context, id int64) (*Job, error) {
	return c.transition(ctx, id, c.store.Retry, func(tx pgx.Tx, j *Job) error {
		if j.WorkflowID == nil {
			return nil
		}
		return c.workflows.Revive(ctx, tx, []int64{j.ID})
	})
}

// transition runs a state change and its follow-up in one transaction;
// no row means the job is missing (ErrNotFound) or in the wrong state.
func (c *Client) transition(ctx context.Context, id int64, change func(context.Context, store.DBTX, int64) (*Job, error),
	then func(pgx.Tx, *Job) error) (*Job, error) {
	var job *Job
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var err error
		if job, err = change(ctx, tx, id); err != nil {
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
	return job, store.Interpret(err)
}

// RetryDead puts every dead job matching f back to pending (attempts
// reset, history kept), reviving the workflows they failed, and returns
// how many.
func (c *Client) RetryDead(ctx context.Context, f DeadFilter) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var steps []int64
		var err error
		if n, steps, err = c.store.RetryDead(ctx, tx, f); err != nil || len(steps) == 0 {
			return err
		}
		return c.workflows.Revive(ctx, tx, steps)
	})
	return n, store.Interpret(err)
}

// DeleteDead deletes every dead job matching f and returns how many.
func (c *Client) DeleteDead(ctx context.Context, f DeadFilter) (int64, error) {
	return c.store.DeleteDead(ctx, c.pool, f)
}

// Stats counts jobs by queue and status.
func (c *Client) Stats(ctx context.Context) (map[string]*QueueStats, error) {
	return c.store.Stats(ctx, c.pool)
}

// Queues lists every queue that has jobs, a pause state or a limit, by
// name.
func (c *Client) Queues(ctx context.Context) ([]QueueInfo, error) {
	stats, err := c.Stats(ctx)
	if err != nil {
		return nil, err
	}
	return c.queuesWith(ctx, stats)
}

// queuesWith is Queues with the counts given.
func (c *Client) queuesWith(ctx context.Context, stats map[string]*QueueStats) ([]QueueInfo, error) {
	paused, err := c.store.QueueStates(ctx, c.pool)
	if err != nil {
		return nil, err
	}
	limits, err := c.Limits(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*QueueInfo{}
	get := func(name string) *QueueInfo {
		if q, ok := byName[name]; ok {
			return q
		}
		q := &QueueInfo{Name: name, QueueStats: QueueStats{Counts: map[Status]int64{}}}
		byName[name] = q
		return q
	}
	for name, s := range stats {
		get(name).QueueStats = *s
	}
	for name, p := range paused {
		get(name).Paused = p
	}
	for _, l := range limits {
		if l.Scope == ScopeQueue {
			get(l.Name).Limit = &l
		}
	}
	return sortedQueues(byName), nil
}

// SetPaused pauses or resumes a queue for every worker. Running jobs
// finish.
func (c *Client) SetPaused(ctx context.Context, queue string, paused bool) error {
	if err := CheckQueueName(queue); err != nil {
		return err
	}
	return c.store.SetPaused(ctx, c.pool, queue, paused)
}

// CreateWorkflow writes a workflow and its steps in one transaction.
// Definitions are checked first: errors wrap ErrInvalidWorkflow.
func (c *Client) CreateWorkflow(ctx context.Context, p WorkflowParams) (*Workflow, error) {
	var wf *Workflow
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var err error
		wf, err = c.CreateWorkflowTx(ctx, tx, p)
		return err
	})
	return wf, store.Interpret(err)
}

// CreateWorkflowTx writes a workflow inside a caller's transaction: steps
// without parents are pending (and wake workers on commit), the rest
// blocked until their parents complete.
func (c *Client) CreateWorkflowTx(ctx context.Context, tx pgx.Tx, p WorkflowParams) (*Workflow, error) {
	return c.workflows.Create(ctx, tx, p)
}

// ErrInvalidWorkflow wraps every reason a workflow definition is refused.
var ErrInvalidWorkflow = workflow.ErrInvalid

// ValidateWorkflow checks p as CreateWorkflow will, without a database.
func ValidateWorkflow(p WorkflowParams) error {
	_, err := workflow.Order(p)
	return err
}

// GetWorkflow returns a workflow with every step's state.
func (c *Client) GetWorkflow(ctx context.Context, id int64) (*Workflow, error) {
	return c.store.GetWorkflow(ctx, c.pool, id)
}

// CancelWorkflow cancels every step that has not started; running steps
// finish. ErrInvalidState if the workflow already ended.
func (c *Client) CancelWorkflow(ctx context.Context, id int64) (*Workflow, error) {
	if err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error { return c.workflows.Cancel(ctx, tx, id) }); err != nil {
		return nil, store.Interpret(err)
	}
	return c.GetWorkflow(ctx, id)
}

// ParentResults returns the results of a workflow step's parents, by step
// name, so a step can use what the steps before it produced.
func (c *Client) ParentResults(ctx context.Context, job *Job) (map[string][]byte, error) {
	res, err := c.store.ParentResults(ctx, c.pool, job.Parents)
	out := make(map[string][]byte, len(res))
	for k, v := range res {
		out[k] = v
	}
	return out, err
}

// Kinds lists the kind catalog: every kind a worker has published, with
// the live workers that run it.
func (c *Client) Kinds(ctx context.Context) ([]KindInfo, error) {
	return c.store.Kinds(ctx, c.pool, maintenance.LiveWithin)
}

// PublishKinds writes kinds to the catalog as publisher's, as a worker
// does when it starts: each kind's description, payload schema and policy.
func (c *Client) PublishKinds(ctx context.Context, publisher string, kinds *Kinds) error {
	return c.store.PublishKinds(ctx, c.pool, publisher, kinds.Infos())
}

// ForgetKind removes a kind from the catalog (a worker that runs it
// publishes it again when it starts). ErrNotFound if it is not there.
func (c *Client) ForgetKind(ctx context.Context, name string) error {
	return c.store.ForgetKind(ctx, c.pool, name)
}

// Workers lists the workers that have reported themselves, newest
// heartbeat first; Live is false for those that stopped or were lost.
func (c *Client) Workers(ctx context.Context) ([]WorkerInfo, error) {
	return c.store.Workers(ctx, c.pool, maintenance.LiveWithin)
}

// WaitingByKind counts pending and retrying jobs per kind.
func (c *Client) WaitingByKind(ctx context.Context) (map[string]int64, error) {
	return c.store.CountWaitingByKind(ctx, c.pool)
}

// Once performs an effect at most once per key, however often the job
// that asks for it is retried or re-run after a crash. It records key in
// the effect ledger and runs fn in the same transaction: either both the
// ledger entry and fn's writes commit, or neither does. It reports whether
// fn ran (false: the effect had already happened).
//
// fn must make the effect durable through tx (write the email to an
// outbox, the charge to a payments table). For a call to an outside
// service, pass key to the service as its idempotency key instead.
func (c *Client) Once(ctx context.Context, key string, jobID int64, fn func(pgx.Tx) error) (bool, error) {
	ran := false
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		fresh, err := c.store.RecordEffect(ctx, tx, key, jobID)
		if err != nil || !fresh {
			return err
		}
		ran = true
		return fn(tx)
	})
	if err != nil {
		return false, store.Interpret(fmt.Errorf("effect %q: %w", key, err))
	}
	return ran, nil
}

// EffectKey is the default key of a job's effect: one per job and effect
// name, stable across attempts.
func EffectKey(job *Job, effect string) string {
	return fmt.Sprintf("%s:%d:%s", job.Kind, job.ID, effect)
}
