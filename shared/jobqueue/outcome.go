package jobqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// MaxResultBytes bounds a job's stored result: results are for small facts
// (an id, a total) that later steps read, not for bulk data.
const MaxResultBytes = 64 << 10

// attemptOutcome collects what a handler asks to be written with its
// completion.
type attemptOutcome struct {
	mu        sync.Mutex
	result    json.RawMessage
	followUps []EnqueueParams
}

type outcomeKey struct{}

func withOutcome(ctx context.Context) (context.Context, *attemptOutcome) {
	o := &attemptOutcome{}
	return context.WithValue(ctx, outcomeKey{}, o), o
}

func outcomeOf(ctx context.Context) (*attemptOutcome, error) {
	o, ok := ctx.Value(outcomeKey{}).(*attemptOutcome)
	if !ok {
		return nil, errors.New("jobqueue: not called from a job handler's context")
	}
	return o, nil
}

// SetResult stores v (as JSON) as the job's result when it completes;
// workflow steps read their parents' results with ParentResults.
func SetResult(ctx context.Context, v any) error {
	o, err := outcomeOf(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if len(b) > MaxResultBytes {
		return fmt.Errorf("result is %d bytes; at most %d", len(b), MaxResultBytes)
	}
	o.mu.Lock()
	o.result = b
	o.mu.Unlock()
	return nil
}

// Then chains follow-up jobs: they are enqueued in the same transaction
// that marks this job completed, so neither exists without the other. If
// the job fails instead, they are not enqueued.
func Then(ctx context.Context, jobs ...EnqueueParams) error {
	o, err := outcomeOf(ctx)
	if err != nil {
		return err
	}
	o.mu.Lock()
	o.followUps = append(o.followUps, jobs...)
	o.mu.Unlock()
	return nil
}

func (o *attemptOutcome) simple() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.result == nil && len(o.followUps) == 0
}

// completeTx marks a job completed together with its result, its follow-up
// jobs and the workflow's next steps, all in one transaction.
func completeTx(ctx context.Context, db Beginner, enq *Client, job *Job, workerID string, o *attemptOutcome) (bool, error) {
	o.mu.Lock()
	result, followUps := o.result, o.followUps
	o.mu.Unlock()
	done := false
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE spool_jobs SET status = 'completed', finished_at = now(), lease_until = NULL, result = $3
			WHERE id = $1 AND worker_id = $2 AND status = 'running'`, job.ID, workerID, result)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		done = true
		if len(followUps) > 0 {
			if _, err := enq.EnqueueManyTx(ctx, tx, followUps); err != nil {
				return fmt.Errorf("enqueue follow-ups: %w", err)
			}
		}
		if job.WorkflowID != nil {
			return advance(ctx, tx, enq.metrics, *job.WorkflowID, job.ID, StatusCompleted, job.ContinueOnFailure)
		}
		return nil
	})
	return done, interpretError(err)
}

// deadTx marks a workflow step dead and moves its workflow on, in one
// transaction.
func deadTx(ctx context.Context, db Beginner, m *Metrics, job *Job, workerID, msg string) (bool, error) {
	done := false
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		ok, err := fail(ctx, tx, job.ID, workerID, StatusDead, 0, msg)
		if err != nil || !ok {
			return err
		}
		done = true
		return advance(ctx, tx, m, *job.WorkflowID, job.ID, StatusDead, job.ContinueOnFailure)
	})
	return done, interpretError(err)
}
