package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/spooltype"
)

// Statements of spool_workflows and of workflow steps in spool_jobs. Every
// writer locks its own step first and the workflow second.

// onFailure is a workflow's failure job as stored, policy applied.
type onFailure struct {
	Kind        string `json:"type"`
	Queue       string `json:"queue"`
	Priority    int    `json:"priority,omitempty"`
	MaxAttempts int    `json:"max_attempts"`
	TimeoutMs   int32  `json:"timeout_ms,omitempty"`
	BackoffBase int32  `json:"backoff_base_ms,omitempty"`
	BackoffMax  int32  `json:"backoff_max_ms,omitempty"`
	Payload     string `json:"payload"`
}

// InsertWorkflow writes a workflow row; fail, if not nil, is the job its
// failure enqueues.
func (s *Store) InsertWorkflow(ctx context.Context, tx DBTX, name, requestID string, fail *InsertRow) (*spooltype.Workflow, error) {
	var stored []byte
	if fail != nil {
		var err error
		if stored, err = json.Marshal(onFailure{Kind: fail.Kind, Queue: fail.Queue, Priority: fail.Priority, MaxAttempts: fail.MaxAttempts,
			TimeoutMs: fail.TimeoutMs, BackoffBase: fail.BackoffBaseMs, BackoffMax: fail.BackoffMax, Payload: fail.Payload}); err != nil {
			return nil, err
		}
	}
	wf := &spooltype.Workflow{Name: name, Status: "running"}
	err := tx.QueryRow(ctx, s.sql(`INSERT INTO spool.spool_workflows (name, on_failure, request_id)
		VALUES ($1, $2::text::jsonb, NULLIF($3, '')) RETURNING id, created_at`), name, nullString(stored), requestID).Scan(&wf.ID, &wf.CreatedAt)
	if err != nil {
		return nil, Interpret(fmt.Errorf("create workflow: %w", err))
	}
	return wf, nil
}

func nullString(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

// Step is one workflow step to write.
type Step struct {
	Row               InsertRow
	Name              string
	Parents           []int64
	ContinueOnFailure bool
}

// InsertStep writes one step: pending without parents (waking workers on
// commit), else blocked. It returns the step's job id.
func (s *Store) InsertStep(ctx context.Context, tx DBTX, wfID int64, st Step) (int64, error) {
	r := st.Row
	var id int64
	err := tx.QueryRow(ctx, s.sql(`INSERT INTO spool.spool_jobs
		(type, queue, priority, run_at, max_attempts, timeout_ms, backoff_base_ms, backoff_max_ms, payload,
		 status, workflow_id, step, parents, continue_on_failure, request_id, trace_parent)
		VALUES ($1, $2, $3, now(), $4, NULLIF($5, 0), NULLIF($6, 0), NULLIF($7, 0), $8::text::jsonb,
		 CASE WHEN cardinality($11::bigint[]) = 0 THEN 'pending' ELSE 'blocked' END, $9, $10, $11, $12, NULLIF($13, ''), NULLIF($14, ''))
		RETURNING id`), r.Kind, r.Queue, r.Priority, r.MaxAttempts, r.TimeoutMs, r.BackoffBaseMs, r.BackoffMax, r.Payload,
		wfID, st.Name, st.Parents, st.ContinueOnFailure, r.RequestID, r.TraceParent).Scan(&id)
	if err != nil {
		return 0, Interpret(fmt.Errorf("create workflow step %q: %w", st.Name, err))
	}
	return id, nil
}

// GetWorkflow returns a workflow with every step's state.
func (s *Store) GetWorkflow(ctx context.Context, db DBTX, id int64) (*spooltype.Workflow, error) {
	wf := &spooltype.Workflow{ID: id}
	err := db.QueryRow(ctx, s.sql(`SELECT name, status, created_at, finished_at FROM spool.spool_workflows WHERE id = $1`), id).
		Scan(&wf.Name, &wf.Status, &wf.CreatedAt, &wf.FinishedAt)
	if err != nil {
		return nil, Interpret(err)
	}
	rows, err := db.Query(ctx, s.sql(`SELECT j.step, j.id, j.type, j.status, j.attempts,
			coalesce((SELECT array_agg(p.step ORDER BY p.id) FROM spool.spool_jobs p WHERE p.id = ANY(j.parents)), '{}'),
			j.started_at, j.finished_at, j.result, j.last_error
		FROM spool.spool_jobs j WHERE j.workflow_id = $1 ORDER BY j.id`), id)
	if err != nil {
		return nil, Interpret(err)
	}
	wf.Steps, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (spooltype.StepState, error) {
		var v spooltype.StepState
		err := r.Scan(&v.Name, &v.JobID, &v.Kind, &v.Status, &v.Attempts, &v.DependsOn, &v.StartedAt, &v.FinishedAt, &v.Result, &v.LastError)
		return v, err
	})
	return wf, Interpret(err)
}

// WorkflowStatus returns a workflow's status.
func (s *Store) WorkflowStatus(ctx context.Context, tx DBTX, id int64) (string, error) {
	var status string
	err := tx.QueryRow(ctx, s.sql(`SELECT status FROM spool.spool_workflows WHERE id = $1`), id).Scan(&status)
	return status, Interpret(err)
}

// CancelWorkflow cancels every step that has not started, then the
// workflow; false if the workflow was no longer running.
func (s *Store) CancelWorkflow(ctx context.Context, tx DBTX, id int64) (bool, error) {
	if _, err := tx.Exec(ctx, s.sql(`UPDATE spool.spool_jobs SET status = 'cancelled', finished_at = now()
		WHERE workflow_id = $1 AND status IN ('pending', 'retrying', 'blocked')`), id); err != nil {
		return false, err
	}
	tag, err := tx.Exec(ctx, s.sql(`UPDATE spool.spool_workflows SET status = 'cancelled', finished_at = now() WHERE id = $1 AND status = 'running'`), id)
	return tag.RowsAffected() == 1, err
}

// LockWorkflow takes a workflow's row lock for the transaction, so steps
// finishing at once take turns (each must see the other's completion).
func (s *Store) LockWorkflow(ctx context.Context, tx DBTX, id int64) error {
	_, err := tx.Exec(ctx, s.sql(`SELECT 1 FROM spool.spool_workflows WHERE id = $1 FOR UPDATE`), id)
	return err
}

// Unblock makes blocked steps whose parents all completed (or died letting
// dependants continue) pending, and wakes idle workers at commit as an
// insert would.
func (s *Store) Unblock(ctx context.Context, tx DBTX, wfID int64) error {
	_, err := tx.Exec(ctx, s.sql(`WITH woken AS (UPDATE spool.spool_jobs c SET status = 'pending', run_at = now()
		WHERE c.workflow_id = $1 AND c.status = 'blocked' AND NOT EXISTS (
			SELECT 1 FROM spool.spool_jobs p WHERE p.id = ANY(c.parents)
			AND NOT (p.status = 'completed' OR (p.status = 'dead' AND p.continue_on_failure)))
		RETURNING c.queue)
		SELECT pg_notify('spool:jobs', q.queue) FROM (SELECT DISTINCT queue FROM woken) AS q`), wfID)
	return err
}

// FinishIfDone completes a running workflow with nothing left to run.
func (s *Store) FinishIfDone(ctx context.Context, tx DBTX, wfID int64) error {
	_, err := tx.Exec(ctx, s.sql(`UPDATE spool.spool_workflows SET status = 'completed', finished_at = now()
		WHERE id = $1 AND status = 'running' AND NOT EXISTS (
			SELECT 1 FROM spool.spool_jobs WHERE workflow_id = $1 AND status IN ('pending', 'running', 'retrying', 'blocked'))`), wfID)
	return err
}

// CancelDescendants cancels the blocked descendants of a failed step,
// noting the step, so retrying it can revive them.
func (s *Store) CancelDescendants(ctx context.Context, tx DBTX, wfID, stepID int64) error {
	_, err := tx.Exec(ctx, s.sql(`WITH RECURSIVE doomed AS (
			SELECT c.id FROM spool.spool_jobs c WHERE c.workflow_id = $1 AND c.status = 'blocked' AND $2 = ANY(c.parents)
			UNION
			SELECT c.id FROM spool.spool_jobs c JOIN doomed d ON d.id = ANY(c.parents)
			WHERE c.workflow_id = $1 AND c.status = 'blocked')
		UPDATE spool.spool_jobs SET status = 'cancelled', finished_at = now(), cancelled_by = $2,
			last_error = 'cancelled: an earlier step of the workflow failed'
		WHERE id IN (SELECT id FROM doomed)`), wfID, stepID)
	return err
}

// EndWorkflow marks a running workflow failed or cancelled and returns its
// failure job, if it has one; ended is false if it had already ended.
func (s *Store) EndWorkflow(ctx context.Context, tx DBTX, wfID int64, status string) (fail *InsertRow, ended bool, err error) {
	var stored []byte
	err = tx.QueryRow(ctx, s.sql(`UPDATE spool.spool_workflows SET status = $2, finished_at = now()
		WHERE id = $1 AND status = 'running' RETURNING on_failure`), wfID, status).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil || stored == nil {
		return nil, err == nil, err
	}
	var f onFailure
	if err := json.Unmarshal(stored, &f); err != nil {
		return nil, true, fmt.Errorf("workflow %d failure job: %w", wfID, err)
	}
	return &InsertRow{Kind: f.Kind, Queue: f.Queue, Priority: f.Priority, MaxAttempts: f.MaxAttempts, TimeoutMs: f.TimeoutMs,
		BackoffBaseMs: f.BackoffBase, BackoffMax: f.BackoffMax, Payload: f.Payload}, true, nil
}

// Revive undoes a workflow failure when its failed step is retried: the
// steps its death cancelled are blocked again and the workflow runs.
func (s *Store) Revive(ctx context.Context, tx DBTX, stepIDs []int64) error {
	_, err := tx.Exec(ctx, s.sql(`WITH revived AS (
			UPDATE spool.spool_jobs SET status = 'blocked', finished_at = NULL, cancelled_by = NULL, last_error = NULL
			WHERE cancelled_by = ANY($1) RETURNING workflow_id)
		UPDATE spool.spool_workflows SET status = 'running', finished_at = NULL
		WHERE status = 'failed' AND id IN (SELECT workflow_id FROM spool.spool_jobs WHERE id = ANY($1) AND workflow_id IS NOT NULL
			UNION SELECT workflow_id FROM revived)`), stepIDs)
	return err
}

// ParentResults returns the results of a step's parents, by step name.
func (s *Store) ParentResults(ctx context.Context, db DBTX, parents []int64) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	if len(parents) == 0 {
		return out, nil
	}
	rows, err := db.Query(ctx, s.sql(`SELECT step, result FROM spool.spool_jobs WHERE id = ANY($1)`), parents)
	if err != nil {
		return nil, Interpret(err)
	}
	var step string
	var result []byte
	_, err = pgx.ForEachRow(rows, []any{&step, &result}, func() error {
		out[step] = json.RawMessage(result)
		return nil
	})
	return out, Interpret(err)
}
