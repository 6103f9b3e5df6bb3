package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/spoolq/spool/shared/jobqueue"
)

// Listing page sizes. A page that includes the large fields holds as many
// jobs as fit the answer's budget (SPOOL_MAX_RESPONSE_BYTES) at their
// largest (payload, result, history), so no list response, and no list
// read, outgrows it.
const (
	defaultListLimit = 50
	maxListLimit     = 500
	// listScanLimit bounds the jobs a page filtered by type or queue
	// examines (jobqueue.ListPage): about 10 ms of PostgreSQL's time.
	listScanLimit = 20000
)

// fullListLimit is the most jobs a page with include= holds.
func (a *api) fullListLimit() int {
	perJob := a.opts.MaxPayloadBytes + jobqueue.MaxResultBytes + jobqueue.HistoryKept*(jobqueue.MaxErrorBytes+256)
	return max(1, int(a.opts.MaxResponseBytes/perJob))
}

type enqueueResponse struct {
	Job       *jobView `json:"job"`
	Duplicate bool     `json:"duplicate"`
}

// enqueue: POST /v1/jobs. 201 for a new job; 200 with the existing job when
// the idempotency key (the body's, or the Idempotency-Key header) is
// already taken.
func (a *api) enqueue(w http.ResponseWriter, r *http.Request) {
	var req enqueueRequest
	err := decodeBody(w, r, a.opts.MaxPayloadBytes+envelopeBytes, &req)
	if err == nil {
		err = headerKey(r, &req)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	p, err := a.params(r.Context(), req, time.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	res, err := a.gather.Enqueue(r.Context(), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if res.Duplicate {
		status = http.StatusOK
	}
	writeJSON(w, status, enqueueResponse{Job: viewJob(res.Job), Duplicate: res.Duplicate})
}

type batchItem struct {
	ID        int64 `json:"id"`
	Duplicate bool  `json:"duplicate"`
}

// enqueueBatch: POST /v1/jobs/batch. Every job is checked before any is
// written, and all are written in one transaction: all or nothing.
func (a *api) enqueueBatch(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Jobs []json.RawMessage `json:"jobs"`
	}
	err := noHeaderKey(r)
	if err == nil {
		err = decodeBody(w, r, a.opts.MaxBatchBytes, &body)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	reqs, err := a.batchRequests(body.Jobs)
	var params []jobqueue.EnqueueParams
	if err == nil {
		params, err = a.batchParams(r.Context(), reqs)
	}
	var results []jobqueue.Inserted
	if err == nil {
		results, err = a.client.EnqueueMany(r.Context(), params)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	items := make([]batchItem, len(results))
	for i, res := range results {
		items[i] = batchItem(res)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"jobs": items})
}

// batchRequests decodes a batch's elements strictly; it needs no database.
func (a *api) batchRequests(raws []json.RawMessage) ([]enqueueRequest, error) {
	switch {
	case len(raws) == 0:
		return nil, invalid("jobs", "must hold at least one job")
	case len(raws) > a.opts.MaxBatch:
		return nil, invalid("jobs", "holds %d jobs; at most %d are allowed per batch", len(raws), a.opts.MaxBatch)
	}
	reqs := make([]enqueueRequest, len(raws))
	now := time.Now()
	for i, raw := range raws {
		err := decodeElement(raw, &reqs[i])
		if err == nil {
			_, err = reqs[i].check(now)
		}
		if err != nil {
			return nil, atIndex(err, i, fmt.Sprintf("jobs[%d]", i))
		}
	}
	return reqs, nil
}

func (a *api) batchParams(ctx context.Context, reqs []enqueueRequest) ([]jobqueue.EnqueueParams, error) {
	now := time.Now()
	params := make([]jobqueue.EnqueueParams, len(reqs))
	for i, req := range reqs {
		var err error
		if params[i], err = a.params(ctx, req, now); err != nil {
			return nil, &jobqueue.BatchError{Index: i, Err: err}
		}
	}
	return params, nil
}

// atIndex points a validation error at batch element i.
func atIndex(err error, i int, prefix string) error {
	ae := toAPIError(err)
	if ae.Status >= 500 {
		return ae
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
	Job *jobView `json:"job"`
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
	writeJSON(w, http.StatusOK, jobResponse{Job: viewJob(job)})
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
	writeJSON(w, http.StatusOK, jobResponse{Job: viewJob(job)})
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
	Jobs      []*jobView `json:"jobs"`
	NextAfter *int64     `json:"next_after"`
}

// list: GET /v1/jobs, newest first. next_after is the cursor of the next
// page, null on the last one.
func (a *api) list(w http.ResponseWriter, r *http.Request) {
	p, err := listParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !p.Brief && p.Limit > a.fullListLimit() {
		p.Limit = a.fullListLimit()
		a.metrics.limited("response_bytes")
	}
	jobs, next, err := a.client.ListPage(r.Context(), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var resp listResponse
	if next > 0 {
		resp.NextAfter = &next
	}
	resp.Jobs = viewJobs(jobs, strings.Split(r.URL.Query().Get("include"), ","))
	writeJSON(w, http.StatusOK, resp)
}

func listParams(r *http.Request) (jobqueue.ListParams, error) {
	q := r.URL.Query()
	p := jobqueue.ListParams{Status: jobqueue.Status(q.Get("status")), Kind: q.Get("type"), Queue: q.Get("queue"), Limit: defaultListLimit, Brief: true, ScanLimit: listScanLimit}
	bad := func(field, msg string) error {
		return &apiError{Status: http.StatusBadRequest, Field: field, Message: field + ": " + msg}
	}
	if p.Status != "" && !p.Status.Valid() {
		return p, bad("status", fmt.Sprintf("unknown status %q; want one of %v", clip(string(p.Status)), jobqueue.AllStatuses))
	}
	if p.Queue != "" && jobqueue.CheckQueueName(p.Queue) != nil {
		return p, bad("queue", "not a valid queue name")
	}
	if !typeFilter(p.Kind) {
		return p, bad("type", "must be at most 128 bytes of UTF-8 without U+0000")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			return p, bad("limit", fmt.Sprintf("must be an integer between 1 and %d", maxListLimit))
		}
		p.Limit = n
	}
	for _, f := range strings.Split(q.Get("include"), ",") {
		if f != "" && f != "payload" && f != "errors" && f != "result" {
			return p, bad("include", "a comma-separated list of payload, errors and result")
		}
		p.Brief = p.Brief && f == ""
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
	counts, err := a.opts.Counts.Get(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make(map[string]statsView, len(counts.Stats))
	for q, qs := range counts.Stats {
		out[q] = statsView{Counts: allCounts(qs.Counts), OldestDueAge: qs.OldestDueAge.Seconds()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": out, "as_of": counts.At.UTC()})
}

// kinds: GET /v1/kinds, the kind catalog: every published kind with its
// payload schema, policy, the live workers that run it and the jobs that
// wait for it; then the open kinds that have jobs.
func (a *api) kinds(w http.ResponseWriter, r *http.Request) {
	infos, err := a.client.Kinds(r.Context())
	var counts *jobqueue.Counts
	if err == nil {
		counts, err = a.opts.Counts.Get(r.Context())
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	waiting := counts.Waiting
	out := make([]kindView, 0, len(infos))
	seen := map[string]bool{}
	for _, k := range infos {
		v := viewKind(k)
		v.Open, v.Waiting = a.catalog.Open(k.Name), waiting[k.Name]
		v.Unserved = v.Waiting > 0 && len(k.Workers) == 0
		out = append(out, v)
		seen[k.Name] = true
	}
	for name, n := range waiting {
		if !seen[name] {
			out = append(out, kindView{Name: name, Workers: []string{}, Open: a.catalog.Open(name), Waiting: n, Unserved: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"kinds": out})
}

// workers: GET /v1/workers, every worker that reported itself, live or not.
func (a *api) workers(w http.ResponseWriter, r *http.Request) {
	ws, err := a.client.Workers(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]workerView, len(ws))
	for i, wk := range ws {
		out[i] = viewWorker(wk)
	}
	writeJSON(w, http.StatusOK, map[string]any{"workers": out})
}
