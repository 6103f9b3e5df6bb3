package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/orders"
)

// Workflow, order and product routes.

func (a *api) routeWorkflows(r *mux.Router) {
	r.HandleFunc("/v1/workflows", a.createWorkflow).Methods(http.MethodPost)
	r.HandleFunc("/v1/workflows/{id}", a.getWorkflow).Methods(http.MethodGet)
	r.HandleFunc("/v1/workflows/{id}/cancel", a.cancelWorkflow).Methods(http.MethodPost)
	r.HandleFunc("/v1/orders", a.placeOrder).Methods(http.MethodPost)
	r.HandleFunc("/v1/orders/stats", a.orderStats).Methods(http.MethodGet)
	r.HandleFunc("/v1/orders/{id}", a.getOrder).Methods(http.MethodGet)
	r.HandleFunc("/v1/products", a.products).Methods(http.MethodGet)
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
	if err := decodeBody(w, r, a.opts.MaxBatchBytes, &req); err != nil {
		writeError(w, r, err)
		return
	}
	p, err := a.workflowParams(req, requestID(r.Context()))
	if err != nil {
		writeError(w, r, err)
		return
	}
	wf, err := a.client.CreateWorkflow(r.Context(), p)
	if errors.Is(err, jobqueue.ErrInvalidWorkflow) {
		err = workflowError(err)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"workflow": wf})
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
		params, err := s.toParams(a.limits, now)
		if err != nil {
			return p, atIndex(err, i, field)
		}
		params.RequestID = rid
		p.Steps = append(p.Steps, jobqueue.WorkflowStep{Name: s.Name, Params: params, DependsOn: s.DependsOn, ContinueOnFailure: s.ContinueOnFailure})
	}
	// Names, the DAG and text the database cannot store are refused here,
	// before a transaction begins.
	if err := p.Validate(); err != nil {
		return p, workflowError(err)
	}
	return p, nil
}

// workflowError is the 422 for a refused workflow definition; its message
// may quote a step name or dependency of any length, so it is clipped.
func workflowError(err error) error {
	return &apiError{Status: http.StatusUnprocessableEntity, Message: clipTo(err.Error(), maxMessage)}
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
	writeJSON(w, http.StatusOK, map[string]any{"workflow": wf})
}

// placeOrder: POST /v1/orders writes the order, reserves its stock and
// enqueues its pipeline in one transaction, and answers at once.
func (a *api) placeOrder(w http.ResponseWriter, r *http.Request) {
	n, err := orderRequest(w, r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	o, err := a.orders.Place(r.Context(), n, requestID(r.Context()))
	if err != nil {
		writeError(w, r, orderError(err))
		return
	}
	writeJSON(w, http.StatusCreated, o)
}

// orderRequest reads and validates a POST /v1/orders body: everything but
// the stock, which only the transaction can check.
func orderRequest(w http.ResponseWriter, r *http.Request) (orders.NewOrder, error) {
	var n orders.NewOrder
	if err := decodeBody(w, r, envelopeBytes, &n); err != nil {
		return n, err
	}
	if err := n.Validate(); err != nil {
		return n, orderError(err)
	}
	return n, nil
}

func (a *api) getOrder(w http.ResponseWriter, r *http.Request) {
	id, err := jobID(r)
	var o *orders.Order
	if err == nil {
		o, err = a.orders.Get(r.Context(), id)
	}
	if err != nil {
		writeError(w, r, orderError(err))
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (a *api) orderStats(w http.ResponseWriter, r *http.Request) {
	st, err := a.orders.Stats(r.Context())
	if err != nil {
		writeError(w, r, unavailable(err))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *api) products(w http.ResponseWriter, r *http.Request) {
	ps, err := a.orders.Products(r.Context())
	if err != nil {
		writeError(w, r, unavailable(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"products": ps})
}

func orderError(err error) error {
	switch {
	case errors.Is(err, orders.ErrInvalid):
		return &apiError{Status: http.StatusUnprocessableEntity, Message: clipTo(err.Error(), maxMessage)}
	case errors.Is(err, orders.ErrOutOfStock):
		return &apiError{Status: http.StatusConflict, Message: clipTo(err.Error(), maxMessage)}
	case errors.Is(err, orders.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Message: "order not found"}
	}
	return unavailable(err)
}
