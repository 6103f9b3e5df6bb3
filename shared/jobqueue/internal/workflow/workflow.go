// Package workflow runs DAGs of jobs: it checks a definition, writes a
// workflow and its steps in one transaction, and, inside the transaction
// that ends a step, moves its workflow on (unblocks children, fails or
// completes the workflow, enqueues the failure job). Retrying a failed
// step revives its workflow.
package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/spoolq/spool/shared/jobqueue/internal/enqueue"
	"github.com/spoolq/spool/shared/jobqueue/internal/store"
	"github.com/spoolq/spool/shared/spooltype"
)

// ErrInvalid wraps every reason a workflow definition is refused.
var ErrInvalid = errors.New("invalid workflow")

// Bounds of one workflow.
const (
	MaxSteps = 1000
	MaxName  = 128 // bytes, workflow and step names
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Order checks p without a database (names, step count, keys, the DAG) and
// returns the steps parents first (Kahn's algorithm): unknown
// dependencies, duplicates and cycles are refused with ErrInvalid.
func Order(p spooltype.WorkflowParams) ([]int, error) {
	if !validName(p.Name) {
		return nil, invalidf("name must be 1-%d bytes of UTF-8 without U+0000", MaxName)
	}
	if len(p.Steps) == 0 || len(p.Steps) > MaxSteps {
		return nil, invalidf("a workflow has 1-%d steps", MaxSteps)
	}
	index := map[string]int{}
	for i, s := range p.Steps {
		if !validName(s.Name) {
			return nil, invalidf("step %d: name must be 1-%d bytes of UTF-8 without U+0000", i, MaxName)
		}
		if _, dup := index[s.Name]; dup {
			return nil, invalidf("step name %q used twice", s.Name)
		}
		if s.Params.IdempotencyKey != "" || !s.Params.RunAt.IsZero() {
			return nil, invalidf("step %q: workflow steps take no idempotency key and no run_at", s.Name)
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
				return nil, invalidf("step %q depends on unknown step %q", s.Name, d)
			}
			if seen[d] {
				return nil, invalidf("step %q lists %q twice", s.Name, d)
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
		return nil, invalidf("the dependencies form a cycle")
	}
	return out, nil
}

func validName(s string) bool { return s != "" && len(s) <= MaxName && spooltype.ValidText(s) }

// Engine writes and moves workflows.
type Engine struct {
	Store    *store.Store
	Enqueuer *enqueue.Enqueuer
}

// Create writes a workflow inside tx: steps without parents are pending
// (and wake workers on commit), the rest blocked.
func (e *Engine) Create(ctx context.Context, tx store.DBTX, p spooltype.WorkflowParams) (*spooltype.Workflow, error) {
	order, err := Order(p)
	if err != nil {
		return nil, err
	}
	rows := make([]store.InsertRow, len(p.Steps))
	for i, s := range p.Steps {
		s.Params.RequestID = p.RequestID
		if rows[i], err = e.Enqueuer.Row(s.Params); err != nil {
			return nil, fmt.Errorf("%w: step %q: %w", ErrInvalid, s.Name, err)
		}
	}
	enqueue.Trace(ctx, rows)
	var fail *store.InsertRow
	if p.OnFailure != nil {
		f, err := e.Enqueuer.Row(*p.OnFailure)
		if err != nil {
			return nil, fmt.Errorf("%w: on_failure: %w", ErrInvalid, err)
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal([]byte(f.Payload), &obj) != nil {
			return nil, invalidf("on_failure: the payload must be a JSON object (it gets workflow_id added)")
		}
		fail = &f
	}
	wf, err := e.Store.InsertWorkflow(ctx, tx, p.Name, p.RequestID, fail)
	if err != nil {
		return nil, err
	}
	ids := map[string]int64{}
	for _, i := range order {
		s := p.Steps[i]
		parents := make([]int64, 0, len(s.DependsOn))
		for _, d := range s.DependsOn {
			parents = append(parents, ids[d])
		}
		id, err := e.Store.InsertStep(ctx, tx, wf.ID, store.Step{Row: rows[i], Name: s.Name, Parents: parents, ContinueOnFailure: s.ContinueOnFailure})
		if err != nil {
			return nil, err
		}
		ids[s.Name] = id
		e.Enqueuer.Metrics.Enqueued(rows[i].Kind, 1)
	}
	for i, s := range p.Steps {
		deps := s.DependsOn
		if deps == nil {
			deps = []string{}
		}
		wf.Steps = append(wf.Steps, spooltype.StepState{Name: s.Name, JobID: ids[s.Name], Kind: rows[i].Kind, DependsOn: deps,
			Status: map[bool]spooltype.Status{true: spooltype.StatusPending, false: spooltype.StatusBlocked}[len(deps) == 0]})
	}
	return wf, nil
}

// Advance moves a workflow on after one of its steps ended with status,
// inside the transaction that ended it: children whose parents are all
// done become pending; a step that died (and does not let dependants
// continue), or was cancelled, cancels its blocked descendants and fails
// the workflow; a workflow with nothing left to run completes.
func (e *Engine) Advance(ctx context.Context, tx store.DBTX, wfID, stepID int64, status spooltype.Status, continueOnFailure bool) error {
	// Steps finishing at once must not each miss the other's uncommitted
	// completion (the fan-in would never unblock): take turns per workflow.
	if err := e.Store.LockWorkflow(ctx, tx, wfID); err != nil {
		return fmt.Errorf("lock workflow: %w", err)
	}
	if (status == spooltype.StatusDead && !continueOnFailure) || status == spooltype.StatusCancelled {
		if err := e.fail(ctx, tx, wfID, stepID, status); err != nil {
			return err
		}
	}
	if err := e.Store.Unblock(ctx, tx, wfID); err != nil {
		return fmt.Errorf("unblock steps: %w", err)
	}
	return e.Store.FinishIfDone(ctx, tx, wfID)
}

// fail cancels the blocked descendants of a failed step, marks the
// workflow failed (cancelled, if a user cancelled the step), and enqueues
// its failure job with workflow_id added to the payload.
func (e *Engine) fail(ctx context.Context, tx store.DBTX, wfID, stepID int64, status spooltype.Status) error {
	if err := e.Store.CancelDescendants(ctx, tx, wfID, stepID); err != nil {
		return fmt.Errorf("cancel dependants: %w", err)
	}
	end := map[spooltype.Status]string{spooltype.StatusDead: "failed", spooltype.StatusCancelled: "cancelled"}[status]
	job, ended, err := e.Store.EndWorkflow(ctx, tx, wfID, end)
	if err != nil || !ended || job == nil || status != spooltype.StatusDead {
		return err
	}
	payload := map[string]any{}
	if err := json.Unmarshal([]byte(job.Payload), &payload); err != nil {
		return fmt.Errorf("workflow %d failure payload: %w", wfID, err)
	}
	payload["workflow_id"] = wfID
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	job.Payload = string(b)
	job.Key = enqueue.InternalKey("workflow", strconv.FormatInt(wfID, 10), "failed")
	_, _, err = e.Enqueuer.Insert(ctx, tx, *job)
	return err
}

// Revive undoes the failures of the workflows whose failed steps were
// retried.
func (e *Engine) Revive(ctx context.Context, tx store.DBTX, stepIDs []int64) error {
	return e.Store.Revive(ctx, tx, stepIDs)
}

// Cancel cancels a workflow's steps that have not started; running steps
// finish. ErrInvalidState if the workflow already ended.
func (e *Engine) Cancel(ctx context.Context, tx store.DBTX, id int64) error {
	status, err := e.Store.WorkflowStatus(ctx, tx, id)
	if err != nil {
		return err
	}
	if status != "running" {
		return spooltype.ErrInvalidState
	}
	ok, err := e.Store.CancelWorkflow(ctx, tx, id)
	if err == nil && !ok {
		return spooltype.ErrInvalidState // finished meanwhile
	}
	return err
}
