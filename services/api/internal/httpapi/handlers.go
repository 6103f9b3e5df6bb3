package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/spoolq/spool/shared/jobqueue"
)

// Listing page sizes.
const (
	defaultListLimit = 50
	maxListLimit     = 500
)

type enqueueResponse struct {
	Job       *jobqueue.Job `json:"job"`
	Duplicate bool          `json:"duplicate"`
}

// enqueue: POST /v1/jobs. 201 for a new job; 200 with the existing job when
// the idempotency key is already taken.
func (a *api) enqueue(w http.ResponseWriter, r *http.Request) {
	var req enqueueRequest
	if err := decodeBody(w, r, a.opts.MaxPayloadBytes+envelopeBytes, &req); err != nil {
		writeError(w, r, err)
		return
	}
	p, err := req.toParams(a.limits, time.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	p.RequestID = requestID(r.Context()) // traces the job to this request
	res, err := a.client.Enqueue(r.Context(), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if res.Duplicate {
		status = http.StatusOK
	}
	writeJSON(w, status, enqueueResponse{Job: res.Job, Duplicate: res.Duplicate})
}

type batchItem struct {
	ID        int64 `json:"id"`
	Duplicate bool  `json:"duplicate"`
}

// enqueueBatch: POST /v1/jobs/batch. Every job is validated before any is
// written, and all are written in one transaction: all or nothing.
func (a *api) enqueueBatch(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Jobs []json.RawMessage `json:"jobs"`
	}
	if err := decodeBody(w, r, a.opts.MaxBatchBytes, &body); err != nil {
		writeError(w, r, err)
		return
	}
	params, err := a.batchParams(body.Jobs)
	if err != nil {
		writeError(w, r, err)
		return
	}
	for i := range params {
		params[i].RequestID = requestID(r.Context())
	}
	results, err := a.client.EnqueueMany(r.Context(), params)
	if err != nil {
		writeError(w, r, err)
		return
	}
	items := make([]batchItem, len(results))
	for i, res := range results {
		items[i] = batchItem{ID: res.Job.ID, Duplicate: res.Duplicate}
	}
	writeJSON(w, http.StatusCreated, map[string]any{"jobs": items})
}

func (a *api) batchParams(raws []json.RawMessage) ([]jobqueue.EnqueueParams, error) {
	switch {
	case len(raws) == 0:
		return nil, invalid("jobs", "must hold at least one job")
	case len(raws) > a.limits.maxBatch:
		return nil, invalid("jobs", "holds %d jobs; at most %d are allowed per batch", len(raws), a.limits.maxBatch)
	}
	now := time.Now()
	params := make([]jobqueue.EnqueueParams, len(raws))
	for i, raw := range raws {
		prefix := fmt.Sprintf("jobs[%d]", i)
		var req enqueueRequest
		err := decodeElement(raw, &req)
		if err == nil {
			params[i], err = req.toParams(a.limits, now)
		}
		if err != nil {
			return nil, atIndex(err, i, prefix)
		}
	}
	return params, nil
}

// atIndex points a validation error at batch element i.
func atIndex(err error, i int, prefix string) error {
	var ae *apiError
	if !errors.As(err, &ae) {
		return err
	}
	out := *ae
	out.Index = &i
	out.Field = join(prefix, out.Field)
	out.Message = prefix + ": " + out.Message
	return &out
}

// jobID reads the {id} route variable. A malformed id names no job, so it
// is a 404 like an unknown one.
func jobID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil || id <= 0 {
		return 0, jobqueue.ErrNotFound
	}
	return id, nil
}

type jobResponse struct {
	Job *jobqueue.Job `json:"job"`
}

// get: GET /v1/jobs/{id}, with the job's error history.
func (a *api) get(w http.ResponseWriter, r *http.Request) {
	id, err := jobID(r)
	var job *jobqueue.Job
	if err == nil {
		job, err = a.client.Get(r.Context(), id)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, jobResponse{Job: job})
}

// cancel: POST /v1/jobs/{id}/cancel.
func (a *api) cancel(w http.ResponseWriter, r *http.Request) {
	a.transition(w, r, "cancel", "only pending, retrying, running or blocked jobs can be cancelled", a.client.Cancel)
}

// retry: POST /v1/jobs/{id}/retry.
func (a *api) retry(w http.ResponseWriter, r *http.Request) {
	a.transition(w, r, "retry", "only dead or cancelled jobs can be retried", a.client.Retry)
}

func (a *api) transition(w http.ResponseWriter, r *http.Request, verb, rule string,
	fn func(context.Context, int64) (*jobqueue.Job, error)) {
	id, err := jobID(r)
	var job *jobqueue.Job
	if err == nil {
		job, err = fn(r.Context(), id)
	}
	if errors.Is(err, jobqueue.ErrInvalidState) {
		err = a.conflict(r.Context(), id, verb, rule)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, jobResponse{Job: job})
}

// conflict explains a refused state change with the job's current status.
func (a *api) conflict(ctx context.Context, id int64, verb, rule string) error {
	e := &apiError{Status: http.StatusConflict, Message: rule}
	if job, err := a.client.Get(ctx, id); err == nil {
		e.JobStatus = job.Status
		e.Message = fmt.Sprintf("cannot %s a %s job: %s", verb, job.Status, rule)
	}
	return e
}

type listResponse struct {
	Jobs      []*jobqueue.Job `json:"jobs"`
	NextAfter *int64          `json:"next_after"`
}

// list: GET /v1/jobs, newest first. next_after is the cursor of the next
// page, null on the last one.
func (a *api) list(w http.ResponseWriter, r *http.Request) {
	p, err := listParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	limit := p.Limit
	p.Limit++ // one more than asked tells whether another page exists
	jobs, err := a.client.List(r.Context(), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	resp := listResponse{Jobs: jobs}
	if len(jobs) > limit {
		resp.Jobs = jobs[:limit]
		resp.NextAfter = &jobs[limit-1].ID
	}
	if resp.Jobs == nil {
		resp.Jobs = []*jobqueue.Job{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func listParams(r *http.Request) (jobqueue.ListParams, error) {
	q := r.URL.Query()
	p := jobqueue.ListParams{Status: jobqueue.Status(q.Get("status")), Type: q.Get("type"), Queue: q.Get("queue"), Limit: defaultListLimit}
	bad := func(field, msg string) error {
		return &apiError{Status: http.StatusBadRequest, Field: field, Message: field + ": " + msg}
	}
	if p.Status != "" && !p.Status.Valid() {
		return p, bad("status", fmt.Sprintf("unknown status %q; want one of %v", clip(string(p.Status)), jobqueue.AllStatuses))
	}
	if p.Queue != "" && !queueName.MatchString(p.Queue) {
		return p, bad("queue", "not a valid queue name")
	}
	if !typeFilter(p.Type) {
		return p, bad("type", "must be at most 128 bytes of UTF-8 without U+0000")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			return p, bad("limit", fmt.Sprintf("must be an integer between 1 and %d", maxListLimit))
		}
		p.Limit = n
	}
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return p, bad("after", "must be a job id (a positive integer)")
		}
		p.After = n
	}
	return p, nil
}

// stats: GET /v1/stats. Every status appears in every queue, zeros
// included, so clients need not special-case absent keys.
func (a *api) stats(w http.ResponseWriter, r *http.Request) {
	st, err := a.client.Stats(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	for _, qs := range st {
		for _, s := range jobqueue.AllStatuses {
			if _, ok := qs.Counts[s]; !ok {
				qs.Counts[s] = 0
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": st})
}

// jobTypes: GET /v1/job-types, the types this API accepts.
func (a *api) jobTypes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"types": a.limits.allowedTypes()})
}
