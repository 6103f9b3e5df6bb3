package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/spoolq/spool/shared/jobqueue"
)

// Workflow routes.

func (a *api) routeWorkflows(r *mux.Router) {
	r.HandleFunc("/v1/workflows", a.createWorkflow).Methods(http.MethodPost)
	r.HandleFunc("/v1/workflows/{id}", a.getWorkflow).Methods(http.MethodGet)
	r.HandleFunc("/v1/workflows/{id}/cancel", a.cancelWorkflow).Methods(http.MethodPost)
}

// workflowStep is one step as clients send it: an enqueue request plus its
// name and dependencies.
type workflowStep struct {
	enqueueRequest
	Name              string   `json:"name"`
	DependsOn         []string `json:"depends_on"`
	ContinueOnFailure bool     `json:"continue_on_failure"`
}

type workflowRequest struct {
	Name  string         `json:"name"`
	Steps []workflowStep `json:"steps"`
}

// createWorkflow: POST /v1/workflows. Cycles, unknown step names and unknown
// types are refused with 422 and nothing is written.
func (a *api) createWorkflow(w http.ResponseWriter, r *http.Request) {
	var req workflowRequest
	err := noHeaderKey(r)
	if err == nil {
		err = decodeBody(w, r, a.opts.MaxBatchBytes, &req)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	p, err := a.workflowParams(req, requestID(r.Context()))
	if err == nil {
		err = a.checkSteps(r.Context(), req, &p)
	}
	var wf *jobqueue.Workflow
	if err == nil {
		wf, err = a.client.CreateWorkflow(r.Context(), p)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"workflow": a.workflowView(wf)})
}

func (a *api) workflowParams(req workflowRequest, rid string) (jobqueue.WorkflowParams, error) {
	p := jobqueue.WorkflowParams{Name: req.Name, RequestID: rid}
	if len(req.Steps) > a.opts.MaxBatch {
		return p, &apiError{Status: http.StatusRequestEntityTooLarge, Field: "steps",
			Message: fmt.Sprintf("%d steps; at most %d", len(req.Steps), a.opts.MaxBatch)}
	}
	now := time.Now()
	for i, s := range req.Steps {
		field := fmt.Sprintf("steps[%d]", i)
		if s.RunAt != nil || s.Delay != nil || s.IdempotencyKey != nil {
			return p, invalid(field, "run_at, delay and idempotency_key do not apply to workflow steps")
		}
		params, err := s.check(now)
		if err != nil {
			return p, atIndex(err, i, field)
		}
		params.RequestID = rid
		p.Steps = append(p.Steps, jobqueue.WorkflowStep{Name: s.Name, Params: params, DependsOn: s.DependsOn, ContinueOnFailure: s.ContinueOnFailure})
	}
	// Names, the DAG and text the database cannot store are refused here,
	// before a transaction begins.
	if err := jobqueue.ValidateWorkflow(p); err != nil {
		return p, toAPIError(err)
	}
	return p, nil
}

// checkSteps checks every step's kind and payload against the catalog,
// and puts in p the payloads to write.
func (a *api) checkSteps(ctx context.Context, req workflowRequest, p *jobqueue.WorkflowParams) error {
	for i, s := range req.Steps {
		payload, err := a.checkPayload(ctx, s.Type, s.Payload)
		if err != nil {
			return atIndex(err, i, fmt.Sprintf("steps[%d]", i))
		}
		if payload != nil {
			p.Steps[i].Params.Payload = payload
		}
	}
	return nil
}

func (a *api) getWorkflow(w http.ResponseWriter, r *http.Request) {
	a.workflowAction(w, r, a.client.GetWorkflow)
}

// cancelWorkflow: POST /v1/workflows/{id}/cancel cancels every step that has
// not started; running steps finish.
func (a *api) cancelWorkflow(w http.ResponseWriter, r *http.Request) {
	a.workflowAction(w, r, a.client.CancelWorkflow)
}

func (a *api) workflowAction(w http.ResponseWriter, r *http.Request, fn func(ctx context.Context, id int64) (*jobqueue.Workflow, error)) {
	id, err := jobID(r)
	var wf *jobqueue.Workflow
	if err == nil {
		wf, err = fn(r.Context(), id)
	}
	switch {
	case errors.Is(err, jobqueue.ErrNotFound):
		err = &apiError{Status: http.StatusNotFound, Message: "workflow not found"}
	case errors.Is(err, jobqueue.ErrInvalidState):
		err = &apiError{Status: http.StatusConflict, Message: "the workflow has already finished"}
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"workflow": a.workflowView(wf)})
}

// workflowView is viewWorkflow within the answer's budget, counting an
// answer it cut.
func (a *api) workflowView(wf *jobqueue.Workflow) *workflowView {
	v, cut := viewWorkflow(wf, a.opts.MaxResponseBytes)
	if cut {
		a.metrics.limited("response_bytes")
	}
	return v
}
