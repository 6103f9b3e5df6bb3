package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/schedule"
)

// Dead-letter, queue, limit and schedule routes.

func (a *api) routeFlow(r *mux.Router) {
	r.HandleFunc("/v1/dead/retry", a.retryDead).Methods(http.MethodPost)
	r.HandleFunc("/v1/dead", a.deleteDead).Methods(http.MethodDelete)
	r.HandleFunc("/v1/queues", a.queues).Methods(http.MethodGet)
	r.HandleFunc("/v1/queues/{name}/pause", a.pause(true)).Methods(http.MethodPost)
	r.HandleFunc("/v1/queues/{name}/resume", a.pause(false)).Methods(http.MethodPost)
	r.HandleFunc("/v1/limits", a.limitList).Methods(http.MethodGet)
	r.HandleFunc("/v1/limits/{scope}/{name}", a.limitPut).Methods(http.MethodPut)
	r.HandleFunc("/v1/limits/{scope}/{name}", a.limitDelete).Methods(http.MethodDelete)
	r.HandleFunc("/v1/schedules", a.scheduleList).Methods(http.MethodGet)
	r.HandleFunc("/v1/schedules/{name}", a.scheduleGet).Methods(http.MethodGet)
	r.HandleFunc("/v1/schedules/{name}", a.schedulePut).Methods(http.MethodPut)
	r.HandleFunc("/v1/schedules/{name}", a.scheduleDelete).Methods(http.MethodDelete)
	r.HandleFunc("/v1/kinds", a.kinds).Methods(http.MethodGet)
	r.HandleFunc("/v1/workers", a.workers).Methods(http.MethodGet)
	a.routeWorkflows(r)
}

type deadFilter struct {
	ID    int64  `json:"id"`
	Type  string `json:"type"`
	Queue string `json:"queue"`
}

func (f deadFilter) query() jobqueue.DeadFilter {
	return jobqueue.DeadFilter{ID: f.ID, Kind: f.Type, Queue: f.Queue}
}

func (f deadFilter) check() error {
	if f.ID < 0 {
		return invalid("id", "must be a positive job id")
	}
	if !typeFilter(f.Type) {
		return invalid("type", "must be at most 128 bytes of UTF-8 without U+0000")
	}
	if f.Queue != "" && jobqueue.CheckQueueName(f.Queue) != nil {
		return invalid("queue", "not a valid queue name")
	}
	return nil
}

// retryDead: POST /v1/dead/retry {id?, type?, queue?}; no body retries
// every dead job.
func (a *api) retryDead(w http.ResponseWriter, r *http.Request) {
	f, err := deadFilterBody(w, r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	n, err := a.client.RetryDead(r.Context(), f.query())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"retried": n})
}

// deleteDead: DELETE /v1/dead?id=&type=&queue=, or ?all=true to delete every
// dead job: a bare DELETE is refused, as it is too easy to send by mistake.
func (a *api) deleteDead(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := deadFilterQuery(q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if f == (deadFilter{}) && q.Get("all") != "true" {
		writeError(w, r, &apiError{Status: http.StatusBadRequest, Field: "all",
			Message: "give an id, type or queue filter, or all=true to delete every dead job"})
		return
	}
	n, err := a.client.DeleteDead(r.Context(), f.query())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"deleted": n})
}

// deadFilterBody reads POST /v1/dead/retry's filter; no body matches every
// dead job.
func deadFilterBody(w http.ResponseWriter, r *http.Request) (deadFilter, error) {
	var f deadFilter
	if r.ContentLength != 0 {
		if err := decodeBody(w, r, envelopeBytes, &f); err != nil {
			return f, err
		}
	}
	return f, f.check()
}

// deadFilterQuery reads DELETE /v1/dead's filter from its query.
func deadFilterQuery(q url.Values) (deadFilter, error) {
	f := deadFilter{Type: q.Get("type"), Queue: q.Get("queue")}
	if q.Has("id") {
		id, err := strconv.ParseInt(q.Get("id"), 10, 64)
		if err != nil || id <= 0 {
			return f, invalid("id", "must be a positive job id")
		}
		f.ID = id
	}
	return f, f.check()
}

// queues: GET /v1/queues, each with its pause state, depth and limit.
func (a *api) queues(w http.ResponseWriter, r *http.Request) {
	qs, err := a.opts.Counts.Queues(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]queueView, len(qs))
	for i, q := range qs {
		out[i] = viewQueue(q)
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": out})
}

// pause answers POST /v1/queues/{name}/pause and /resume.
func (a *api) pause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := mux.Vars(r)["name"]
		if jobqueue.CheckQueueName(name) != nil {
			writeError(w, r, invalid("name", "not a valid queue name"))
			return
		}
		if err := a.client.SetPaused(r.Context(), name, paused); err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"queue": name, "paused": paused})
	}
}

func (a *api) limitList(w http.ResponseWriter, r *http.Request) {
	ls, err := a.client.Limits(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]limitView, len(ls))
	for i, l := range ls {
		out[i] = viewLimit(l)
	}
	writeJSON(w, http.StatusOK, map[string]any{"limits": out})
}

// limitTarget checks the {scope}/{name} of a limit route: a kind must be
// one clients may enqueue.
func (a *api) limitTarget(r *http.Request) (string, string, error) {
	v := mux.Vars(r)
	scope, name := v["scope"], v["name"]
	if err := limitName(scope, name); err != nil {
		return "", "", err
	}
	if scope == jobqueue.ScopeKind {
		if err := a.knownKind(r.Context(), name); err != nil {
			return "", "", err
		}
	}
	return scope, name, nil
}

// limitName checks a limit's scope and name without a database.
func limitName(scope, name string) error {
	switch {
	case scope == jobqueue.ScopeQueue && jobqueue.CheckQueueName(name) != nil:
		return invalid("name", "not a valid queue name")
	case scope == jobqueue.ScopeKind && jobqueue.CheckKindName(name) != nil:
		return &catalog.UnknownKindError{Kind: name}
	case scope == jobqueue.ScopeHost:
		if err := jobqueue.CheckHostName(name); err != nil {
			return invalid("name", "not a valid host: %s", err)
		}
	case scope != jobqueue.ScopeQueue && scope != jobqueue.ScopeKind:
		return &apiError{Status: http.StatusNotFound, Message: "limit scope must be queue, type or host"}
	}
	return nil
}

// limitPut: PUT /v1/limits/{queue|type|host}/{name} {max_running?, rate_per_second?, burst?}.
func (a *api) limitPut(w http.ResponseWriter, r *http.Request) {
	scope, name, err := a.limitTarget(r)
	var l jobqueue.Limit
	if err == nil {
		l, err = limitBody(w, r, scope, name)
	}
	if err == nil {
		l, err = a.client.SetLimit(r.Context(), l)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"limit": viewLimit(l)})
}

// limitBody reads and checks a PUT /v1/limits body; the burst defaults to
// 1, as the queue would set it.
func limitBody(w http.ResponseWriter, r *http.Request, scope, name string) (jobqueue.Limit, error) {
	var body struct {
		MaxRunning    *int     `json:"max_running"`
		RatePerSecond *float64 `json:"rate_per_second"`
		Burst         int      `json:"burst"`
	}
	if err := decodeBody(w, r, envelopeBytes, &body); err != nil {
		return jobqueue.Limit{}, err
	}
	l := jobqueue.Limit{Scope: scope, Name: name, MaxRunning: body.MaxRunning, RatePerSecond: body.RatePerSecond, Burst: body.Burst}
	if l.Burst == 0 {
		l.Burst = 1
	}
	if err := jobqueue.CheckLimit(l); err != nil {
		return l, toAPIError(err)
	}
	return l, nil
}

func (a *api) limitDelete(w http.ResponseWriter, r *http.Request) {
	scope, name, err := a.limitTarget(r)
	if err == nil {
		err = a.client.DeleteLimit(r.Context(), scope, name)
	}
	if errors.Is(err, jobqueue.ErrNotFound) {
		err = &apiError{Status: http.StatusNotFound, Message: "no such limit"}
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"deleted": true})
}

func (a *api) scheduleList(w http.ResponseWriter, r *http.Request) {
	list, err := a.schedules.ListBounded(r.Context(), a.opts.MaxResponseBytes)
	if err != nil {
		writeError(w, r, unavailable(err))
		return
	}
	if list == nil {
		list = []*schedule.Schedule{}
	}
	if slices.ContainsFunc(list, func(s *schedule.Schedule) bool { return s.PayloadOmitted }) {
		a.metrics.limited("response_bytes")
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedules": list})
}

func (a *api) scheduleGet(w http.ResponseWriter, r *http.Request) {
	name, err := scheduleName(r)
	var s *schedule.Schedule
	if err == nil {
		s, err = a.schedules.Get(r.Context(), name)
	}
	if err != nil {
		writeError(w, r, scheduleError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedule": s})
}

// schedulePut: PUT /v1/schedules/{name} creates or replaces a schedule.
func (a *api) schedulePut(w http.ResponseWriter, r *http.Request) {
	s, err := a.scheduleRequest(w, r)
	var saved *schedule.Schedule
	if err == nil {
		saved, err = a.schedules.Put(r.Context(), s)
	}
	if err != nil {
		writeError(w, r, scheduleError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedule": saved})
}

// scheduleRequest reads a PUT /v1/schedules/{name} body; the store checks
// it (its payload against its kind, as every tick enqueues it).
func (a *api) scheduleRequest(w http.ResponseWriter, r *http.Request) (*schedule.Schedule, error) {
	var s schedule.Schedule
	if err := decodeBody(w, r, a.opts.MaxPayloadBytes+envelopeBytes, &s); err != nil {
		return nil, err
	}
	name := mux.Vars(r)["name"]
	if s.Name != "" && s.Name != name {
		return nil, invalid("name", "differs from the name in the path")
	}
	s.Name, s.Source, s.LastTick, s.NextRun = name, "api", nil, nil
	if int64(len(s.Payload)) > a.opts.MaxPayloadBytes {
		return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Field: "payload",
			Message: fmt.Sprintf("payload is %d bytes; the limit is %d", len(s.Payload), a.opts.MaxPayloadBytes)}
	}
	return &s, nil
}

// scheduleName reads the {name} route variable; a name no schedule can
// have names none, so it is a 404 like an unknown one.
func scheduleName(r *http.Request) (string, error) {
	name := mux.Vars(r)["name"]
	if !schedule.ValidName(name) {
		return "", jobqueue.ErrNotFound
	}
	return name, nil
}

func (a *api) scheduleDelete(w http.ResponseWriter, r *http.Request) {
	name, err := scheduleName(r)
	if err == nil {
		err = a.schedules.Delete(r.Context(), name)
	}
	if err != nil {
		writeError(w, r, scheduleError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"deleted": true})
}

func scheduleError(err error) error {
	var unknown *catalog.UnknownKindError
	switch {
	case errors.Is(err, jobqueue.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Message: "no such schedule"}
	case errors.As(err, &unknown):
		return err
	case errors.Is(err, schedule.ErrTooMany):
		return &apiError{Status: http.StatusConflict, Field: "name",
			Message: clipTo(strings.TrimPrefix(err.Error(), "too many schedules: ")+" or replace an existing one (the limit is SPOOL_MAX_SCHEDULES)", maxMessage)}
	case errors.Is(err, schedule.ErrInvalid):
		return &apiError{Status: http.StatusUnprocessableEntity, Message: clipTo(strings.TrimPrefix(err.Error(), "invalid schedule: "), maxMessage)}
	}
	return unavailable(err)
}

// unavailable maps an error from a store without the queue's error
// translation: connection failures become ErrUnavailable.
func unavailable(err error) error {
	if err != nil && !errors.Is(err, jobqueue.ErrUnavailable) && jobqueue.IsConnError(err) {
		return errors.Join(jobqueue.ErrUnavailable, err)
	}
	return err
}
