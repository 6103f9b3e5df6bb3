package jobqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// ErrInvalidWorkflow wraps every reason a workflow definition is refused.
var ErrInvalidWorkflow = errors.New("invalid workflow")

// MaxWorkflowSteps bounds one workflow.
const MaxWorkflowSteps = 1000

// WorkflowStep is one job of a workflow and the steps it waits for.
type WorkflowStep struct {
	Name      string
	Params    EnqueueParams
	DependsOn []string
	// ContinueOnFailure lets dependants run when this step dies, instead of
	// cancelling them and failing the workflow.
	ContinueOnFailure bool
}

// WorkflowParams declares a workflow: a DAG of steps.
type WorkflowParams struct {
	Name  string
	Steps []WorkflowStep
	// OnFailure, if set, is enqueued in the transaction that fails the
	// workflow (to compensate: refund, restock); its payload gets
	// "workflow_id" added.
	OnFailure *EnqueueParams
	RequestID string
}

// Workflow is a workflow and its steps.
type Workflow struct {
	ID         int64          `json:"id"`
	Name       string         `json:"name"`
	Status     string         `json:"status"` // running, completed, failed, cancelled
	CreatedAt  time.Time      `json:"created_at"`
	FinishedAt *time.Time     `json:"finished_at,omitempty"`
	Steps      []WorkflowView `json:"steps"`
}

// WorkflowView is one step as GET /v1/workflows/{id} shows it.
type WorkflowView struct {
	Name      string          `json:"name"`
	JobID     int64           `json:"job_id"`
	Type      string          `json:"type"`
	Status    Status          `json:"status"`
	Attempts  int             `json:"attempts"`
	DependsOn []string        `json:"depends_on"`
	StartedAt *time.Time      `json:"started_at,omitempty"`
	Finished  *time.Time      `json:"finished_at,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	LastError *string         `json:"last_error,omitempty"`
}

// ValidText reports whether PostgreSQL's text type can store s: it must be
// valid UTF-8 without U+0000, or the server refuses it (SQLSTATE 22021)
// and the caller sees an internal error instead of a refusal.
func ValidText(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return false
		}
	}
	return utf8.ValidString(s)
}

// MaxWorkflowName bounds workflow and step names, in bytes.
const MaxWorkflowName = 128

// Validate checks p as CreateWorkflow will, without a database: names,
// step count, idempotency keys and the DAG. Errors wrap ErrInvalidWorkflow.
func (p WorkflowParams) Validate() error {
	_, err := p.order()
	return err
}

// order checks the DAG and returns the steps parents first (Kahn's
// algorithm): unknown dependencies, duplicates and cycles are refused.
func (p WorkflowParams) order() ([]int, error) {
	if p.Name == "" || len(p.Name) > MaxWorkflowName || !ValidText(p.Name) {
		return nil, fmt.Errorf("%w: name must be 1-%d bytes of UTF-8 without U+0000", ErrInvalidWorkflow, MaxWorkflowName)
	}
	if len(p.Steps) == 0 || len(p.Steps) > MaxWorkflowSteps {
		return nil, fmt.Errorf("%w: a workflow has 1-%d steps", ErrInvalidWorkflow, MaxWorkflowSteps)
	}
	index := map[string]int{}
	for i, s := range p.Steps {
		if s.Name == "" || len(s.Name) > MaxWorkflowName || !ValidText(s.Name) {
			return nil, fmt.Errorf("%w: step %d: name must be 1-%d bytes of UTF-8 without U+0000", ErrInvalidWorkflow, i, MaxWorkflowName)
		}
		if _, dup := index[s.Name]; dup {
			return nil, fmt.Errorf("%w: step name %q used twice", ErrInvalidWorkflow, s.Name)
		}
		if s.Params.IdempotencyKey != "" {
			return nil, fmt.Errorf("%w: step %q: workflow steps take no idempotency key", ErrInvalidWorkflow, s.Name)
		}
		index[s.Name] = i
	}
	waiting := make([]int, len(p.Steps))
	children := make([][]int, len(p.Steps))
	for i, s := range p.Steps {
		seen := map[string]bool{}
		for _, d := range s.DependsOn {
			j, ok := index[d]
			if !ok {
				return nil, fmt.Errorf("%w: step %q depends on unknown step %q", ErrInvalidWorkflow, s.Name, d)
			}
			if seen[d] {
				return nil, fmt.Errorf("%w: step %q lists %q twice", ErrInvalidWorkflow, s.Name, d)
			}
			seen[d] = true
			waiting[i]++
			children[j] = append(children[j], i)
		}
	}
	var ready, out []int
	for i, n := range waiting {
		if n == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		i := ready[0]
		ready = ready[1:]
		out = append(out, i)
		for _, c := range children[i] {
			if waiting[c]--; waiting[c] == 0 {
				ready = append(ready, c)
			}
		}
	}
	if len(out) != len(p.Steps) {
		return nil, fmt.Errorf("%w: the dependencies form a cycle", ErrInvalidWorkflow)
	}
	return out, nil
}

// CreateWorkflow writes a workflow and its steps in one transaction.
func (c *Client) CreateWorkflow(ctx context.Context, p WorkflowParams) (*Workflow, error) {
	var wf *Workflow
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var err error
		wf, err = c.CreateWorkflowTx(ctx, tx, p)
		return err
	})
	return wf, interpretError(err)
}

const insertStepSQL = `INSERT INTO spool_jobs
	(type, queue, priority, run_at, max_attempts, timeout_ms, backoff_base_ms, backoff_max_ms, payload,
	 status, workflow_id, step, parents, continue_on_failure, request_id)
	VALUES ($1, $2, $3, coalesce($4, now()), $5, $6, $7, $8, $9,
	 CASE WHEN cardinality($12::bigint[]) = 0 THEN 'pending' ELSE 'blocked' END, $10, $11, $12, $13, $14)
	RETURNING id`

// CreateWorkflowTx writes a workflow inside a caller's transaction: steps
// without parents are pending (and wake workers on commit), the rest blocked.
func (c *Client) CreateWorkflowTx(ctx context.Context, tx pgx.Tx, p WorkflowParams) (*Workflow, error) {
	order, err := p.order()
	if err != nil {
		return nil, err
	}
	var failType *string
	var failPayload []byte
	if p.OnFailure != nil {
		failType = &p.OnFailure.Type
		if failPayload, err = marshalPayload(p.OnFailure.Payload); err != nil {
			return nil, err
		}
	}
	wf := &Workflow{Name: p.Name, Status: "running"}
	if err := tx.QueryRow(ctx, `INSERT INTO spool_workflows (name, on_failure_type, on_failure_payload, request_id)
		VALUES ($1, $2, $3, NULLIF($4, '')) RETURNING id, created_at`, p.Name, failType, failPayload, p.RequestID).Scan(&wf.ID, &wf.CreatedAt); err != nil {
		return nil, interpretError(fmt.Errorf("create workflow: %w", err))
	}
	ids := map[string]int64{}
	for _, i := range order {
		s := p.Steps[i]
		r, err := c.toRow(s.Params)
		if err != nil {
			return nil, err
		}
		parents := make([]int64, 0, len(s.DependsOn))
		for _, d := range s.DependsOn {
			parents = append(parents, ids[d])
		}
		var id int64
		if err := tx.QueryRow(ctx, insertStepSQL, r.typ, r.queue, r.priority, r.runAt, r.maxAttempts, r.timeoutMs,
			r.backoffBaseMs, r.backoffMaxMs, r.payload, wf.ID, s.Name, parents, s.ContinueOnFailure, nullIfEmpty(p.RequestID)).Scan(&id); err != nil {
			return nil, interpretError(fmt.Errorf("create workflow step %q: %w", s.Name, err))
		}
		ids[s.Name] = id
		c.metrics.enqueued(r.typ, 1)
	}
	for _, s := range p.Steps {
		wf.Steps = append(wf.Steps, WorkflowView{Name: s.Name, JobID: ids[s.Name], Type: s.Params.Type, DependsOn: nonNilStrings(s.DependsOn)})
	}
	return wf, nil
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GetWorkflow returns a workflow with every step's state.
func (c *Client) GetWorkflow(ctx context.Context, id int64) (*Workflow, error) {
	wf := &Workflow{ID: id}
	err := c.pool.QueryRow(ctx, `SELECT name, status, created_at, finished_at FROM spool_workflows WHERE id = $1`, id).
		Scan(&wf.Name, &wf.Status, &wf.CreatedAt, &wf.FinishedAt)
	if err != nil {
		return nil, interpretError(err)
	}
	rows, err := c.pool.Query(ctx, `SELECT j.step, j.id, j.type, j.status, j.attempts,
			coalesce((SELECT array_agg(p.step ORDER BY p.id) FROM spool_jobs p WHERE p.id = ANY(j.parents)), '{}'),
			j.started_at, j.finished_at, j.result, j.last_error
		FROM spool_jobs j WHERE j.workflow_id = $1 ORDER BY j.id`, id)
	if err != nil {
		return nil, interpretError(err)
	}
	wf.Steps, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (WorkflowView, error) {
		var v WorkflowView
		var result []byte
		err := r.Scan(&v.Name, &v.JobID, &v.Type, &v.Status, &v.Attempts, &v.DependsOn, &v.StartedAt, &v.Finished, &result, &v.LastError)
		v.Result = result
		return v, err
	})
	return wf, interpretError(err)
}

// CancelWorkflow cancels every step that has not started; running steps
// finish. ErrInvalidState if the workflow already ended.
func (c *Client) CancelWorkflow(ctx context.Context, id int64) (*Workflow, error) {
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var status string
		if err := tx.QueryRow(ctx, `SELECT status FROM spool_workflows WHERE id = $1`, id).Scan(&status); err != nil {
			return err
		}
		if status != "running" {
			return ErrInvalidState
		}
		// Steps first, then the workflow: the lock order every writer uses.
		if _, err := tx.Exec(ctx, `UPDATE spool_jobs SET status = 'cancelled', finished_at = now()
			WHERE workflow_id = $1 AND status IN ('pending', 'retrying', 'blocked')`, id); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE spool_workflows SET status = 'cancelled', finished_at = now() WHERE id = $1 AND status = 'running'`, id)
		if err == nil && tag.RowsAffected() == 0 {
			return ErrInvalidState // finished meanwhile
		}
		return err
	})
	if err != nil {
		return nil, interpretError(err)
	}
	return c.GetWorkflow(ctx, id)
}

// ParentResults returns the results of a workflow step's parents, by step
// name, so a step can use what the steps before it produced.
func ParentResults(ctx context.Context, db DBTX, job *Job) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	if len(job.Parents) == 0 {
		return out, nil
	}
	rows, err := db.Query(ctx, `SELECT step, result FROM spool_jobs WHERE id = ANY($1)`, job.Parents)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	for rows.Next() {
		var step string
		var result []byte
		if err := rows.Scan(&step, &result); err != nil {
			return nil, err
		}
		out[step] = result
	}
	return out, interpretError(rows.Err())
}

// advance moves a workflow on after one of its steps finished, inside the
// transaction that finished it: children whose parents are all done become
// pending; a step that died (and does not let dependants continue), or was
// cancelled, cancels its blocked descendants and fails the workflow; a
// workflow with nothing left to run completes.
//
// m counts the compensation job it may enqueue.
func advance(ctx context.Context, tx pgx.Tx, m *Metrics, wfID, stepID int64, status Status, continueOnFailure bool) error {
	// Steps finishing at once must not each miss the other's uncommitted
	// completion (the fan-in would never unblock): take turns per workflow.
	// Every writer locks its own step first and the workflow second.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM spool_workflows WHERE id = $1 FOR UPDATE`, wfID); err != nil {
		return fmt.Errorf("lock workflow: %w", err)
	}
	if (status == StatusDead && !continueOnFailure) || status == StatusCancelled {
		if err := failWorkflow(ctx, tx, m, wfID, stepID, status); err != nil {
			return err
		}
	}
	// Unblocked steps wake idle workers at commit, as an insert would;
	// otherwise each step of a chain would wait up to a poll interval.
	if _, err := tx.Exec(ctx, `WITH woken AS (UPDATE spool_jobs c SET status = 'pending', run_at = now()
		WHERE c.workflow_id = $1 AND c.status = 'blocked' AND NOT EXISTS (
			SELECT 1 FROM spool_jobs p WHERE p.id = ANY(c.parents)
			AND NOT (p.status = 'completed' OR (p.status = 'dead' AND p.continue_on_failure)))
		RETURNING c.queue)
		SELECT pg_notify('spool_jobs', q.queue) FROM (SELECT DISTINCT queue FROM woken) AS q`, wfID); err != nil {
		return fmt.Errorf("unblock steps: %w", err)
	}
	_, err := tx.Exec(ctx, `UPDATE spool_workflows SET status = 'completed', finished_at = now()
		WHERE id = $1 AND status = 'running' AND NOT EXISTS (
			SELECT 1 FROM spool_jobs WHERE workflow_id = $1 AND status IN ('pending', 'running', 'retrying', 'blocked'))`, wfID)
	return err
}

// failWorkflow cancels the blocked descendants of a failed step (noting
// which step did it, so a retry can revive them), marks the workflow failed
// (cancelled, if a user cancelled the step), and enqueues its failure job.
func failWorkflow(ctx context.Context, tx pgx.Tx, m *Metrics, wfID, stepID int64, status Status) error {
	if _, err := tx.Exec(ctx, `WITH RECURSIVE doomed AS (
			SELECT c.id FROM spool_jobs c WHERE c.workflow_id = $1 AND c.status = 'blocked' AND $2 = ANY(c.parents)
			UNION
			SELECT c.id FROM spool_jobs c JOIN doomed d ON d.id = ANY(c.parents)
			WHERE c.workflow_id = $1 AND c.status = 'blocked')
		UPDATE spool_jobs SET status = 'cancelled', finished_at = now(), cancelled_by = $2,
			last_error = 'cancelled: an earlier step of the workflow failed'
		WHERE id IN (SELECT id FROM doomed)`, wfID, stepID); err != nil {
		return fmt.Errorf("cancel dependants: %w", err)
	}
	newStatus := map[Status]string{StatusDead: "failed", StatusCancelled: "cancelled"}[status]
	var failType *string
	var failPayload []byte
	err := tx.QueryRow(ctx, `UPDATE spool_workflows SET status = $2, finished_at = now()
		WHERE id = $1 AND status = 'running' RETURNING on_failure_type, on_failure_payload`, wfID, newStatus).Scan(&failType, &failPayload)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && (failType == nil || status != StatusDead)) {
		return nil // already failed or cancelled, or nothing to compensate
	}
	if err != nil {
		return err
	}
	payload := map[string]any{}
	if len(failPayload) > 0 {
		if err := json.Unmarshal(failPayload, &payload); err != nil {
			return fmt.Errorf("workflow %d failure payload: %w", wfID, err)
		}
	}
	payload["workflow_id"] = wfID
	_, err = (&Client{metrics: m}).enqueue(ctx, tx, EnqueueParams{Type: *failType, Payload: payload,
		IdempotencyKey: fmt.Sprintf("workflow:%d:failed", wfID)})
	return err
}

// revive undoes a workflow failure when its failed step is retried: the
// steps its death cancelled are blocked again and the workflow runs.
func revive(ctx context.Context, tx pgx.Tx, stepIDs []int64) error {
	_, err := tx.Exec(ctx, `WITH revived AS (
			UPDATE spool_jobs SET status = 'blocked', finished_at = NULL, cancelled_by = NULL, last_error = NULL
			WHERE cancelled_by = ANY($1) RETURNING workflow_id)
		UPDATE spool_workflows SET status = 'running', finished_at = NULL
		WHERE status = 'failed' AND id IN (SELECT workflow_id FROM spool_jobs WHERE id = ANY($1) AND workflow_id IS NOT NULL
			UNION SELECT workflow_id FROM revived)`, stepIDs)
	return err
}
