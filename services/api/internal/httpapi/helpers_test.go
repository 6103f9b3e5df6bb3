package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/services/api/internal/openapi/openapitest"
	"github.com/spoolq/spool/shared/diagnostic"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
)

// fixture is a test's database, client and router.
type fixture struct {
	t      *testing.T
	db     *pgtest.DB
	client *jobqueue.Client
	reg    *prometheus.Registry
	h      http.Handler
}

// setup builds the real router on a fresh database whose kind catalog
// holds the diagnostic kinds and the test kinds below, as workers running
// them would have published; opts may be nil.
func setup(t *testing.T, opts *httpapi.Opts) *fixture {
	t.Helper()
	db := pgtest.New(t)
	reg := prometheus.NewRegistry()
	client, err := jobqueue.NewClient(db.Pool, &jobqueue.ClientOpts{Metrics: jobqueue.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, client)
	return &fixture{t: t, db: db, client: client, reg: reg, h: newRouter(t, client, reg, opts)}
}

// Kinds a team's workers might run, published for the API's tests: the
// API knows them only from the catalog.
type sendEmail struct {
	To      string `json:"to" jsonschema:"format=email"`
	Subject string `json:"subject" jsonschema:"minLength=1"`
	Body    string `json:"body,omitempty"`
}

type invoice struct {
	OrderID     int64 `json:"order_id" jsonschema:"minimum=1"`
	AmountCents int64 `json:"amount_cents" jsonschema:"minimum=0"`
}

type syncInventory struct {
	OrderID int64 `json:"order_id" jsonschema:"minimum=1"`
}

func (sendEmail) Kind() string     { return "send_email" }
func (invoice) Kind() string       { return "generate_invoice" }
func (syncInventory) Kind() string { return "sync_inventory" }

func (sendEmail) Policy() jobqueue.Policy {
	return jobqueue.Policy{MaxAttempts: 8, Timeout: 30 * time.Second, Backoff: jobqueue.Backoff{Base: 2 * time.Second, Max: 10 * time.Minute}}
}

func publish(t testing.TB, client *jobqueue.Client) {
	t.Helper()
	kinds := jobqueue.NewKinds()
	diagnostic.Add(kinds)
	none := func(context.Context, *jobqueue.Job, sendEmail) error { return nil }
	jobqueue.AddKind(kinds, none, nil)
	jobqueue.AddKind(kinds, func(context.Context, *jobqueue.Job, invoice) error { return nil }, nil)
	jobqueue.AddKind(kinds, func(context.Context, *jobqueue.Job, syncInventory) error { return nil }, nil)
	if err := client.PublishKinds(context.Background(), "test-worker", kinds); err != nil {
		t.Fatal(err)
	}
}

// newRouter is the API's handler, every request and answer of which is
// checked against the OpenAPI document (openapitest.Handler).
func newRouter(t testing.TB, client *jobqueue.Client, reg prometheus.Registerer, opts *httpapi.Opts) http.Handler {
	var o httpapi.Opts
	if opts != nil {
		o = *opts
	}
	o.Registry = reg
	h := httpapi.New(client, &o)
	if _, bench := t.(*testing.B); bench {
		return h // a benchmark times the API, not the validator
	}
	return openapitest.Handler(t, h)
}

// request builds a request; a non-empty body, and every request of an
// unsafe method, is sent as application/json (as the API requires of
// them) unless headers say otherwise ("Name: value" pairs).
func request(method, path, body string, headers ...string) *http.Request {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
	}
	if body != "" || unsafeMethod(method) {
		r.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		if v = strings.TrimSpace(v); v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	return r
}

// unsafeMethod reports whether method may change state, so that the API
// requires Content-Type: application/json of it.
func unsafeMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// do sends a request to the fixture's router.
func (f *fixture) do(method, path, body string, headers ...string) *httptest.ResponseRecorder {
	return serve(f.h, request(method, path, body, headers...))
}

// mustStatus fails unless rec has status want, and returns its JSON body:
// application/json, or for an error application/problem+json.
func mustStatus[T any](t *testing.T, rec *httptest.ResponseRecorder, want int) T {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status = %d, want %d; body: %s", rec.Code, want, rec.Body)
	}
	wantType := "application/json"
	if want >= 400 {
		wantType = "application/problem+json"
	}
	if ct := rec.Header().Get("Content-Type"); ct != wantType {
		t.Fatalf("Content-Type = %q, want %s", ct, wantType)
	}
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, rec.Body)
	}
	return v
}

type jobBody struct {
	Job       wireJob `json:"job"`
	Duplicate bool    `json:"duplicate"`
}

// wireJob is a job as the API writes it.
type wireJob struct {
	ID             int64           `json:"id"`
	Type           string          `json:"type"`
	Queue          string          `json:"queue"`
	Status         jobqueue.Status `json:"status"`
	Priority       int             `json:"priority"`
	Attempts       int             `json:"attempts"`
	MaxAttempts    int             `json:"max_attempts"`
	RunAt          time.Time       `json:"run_at"`
	Timeout        *string         `json:"timeout"`
	BackoffBase    *string         `json:"backoff_base"`
	BackoffMax     *string         `json:"backoff_max"`
	IdempotencyKey *string         `json:"idempotency_key"`
	WorkerID       *string         `json:"worker_id"`
	LastError      *string         `json:"last_error"`
	Errors         []struct {
		Attempt  int    `json:"attempt"`
		Error    string `json:"error"`
		WorkerID string `json:"worker_id"`
	} `json:"errors"`
	Payload    json.RawMessage `json:"payload"`
	Result     json.RawMessage `json:"result"`
	WorkflowID *int64          `json:"workflow_id"`
	Step       *string         `json:"step"`
	RequestID  *string         `json:"request_id"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at"`
}

// wireLimit is a limit as the API writes it.
type wireLimit struct {
	Scope         string   `json:"scope"`
	Name          string   `json:"name"`
	MaxRunning    *int     `json:"max_running"`
	RatePerSecond *float64 `json:"rate_per_second"`
	Burst         int      `json:"burst"`
}

// wireQueue is a queue as the API writes it.
type wireQueue struct {
	Name   string                    `json:"name"`
	Paused bool                      `json:"paused"`
	Counts map[jobqueue.Status]int64 `json:"counts"`
	Limit  *wireLimit                `json:"limit"`
}

// wireWorkflow is a workflow as the API writes it.
type wireWorkflow struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Steps  []struct {
		Name      string          `json:"name"`
		JobID     int64           `json:"job_id"`
		Type      string          `json:"type"`
		Status    jobqueue.Status `json:"status"`
		Attempts  int             `json:"attempts"`
		DependsOn []string        `json:"depends_on"`
		LastError *string         `json:"last_error"`
	} `json:"steps"`
}

// errBody is a problem details object (RFC 9457) as the API writes it.
type errBody struct {
	Type       string   `json:"type"`
	Title      string   `json:"title"`
	Status     int      `json:"status"`
	Detail     string   `json:"detail"`
	Error      string   `json:"error"`
	Field      string   `json:"field"`
	Index      *int     `json:"index"`
	JobStatus  string   `json:"job_status"`
	KnownTypes []string `json:"known_types"`
	RequestID  string   `json:"request_id"`
}

// enqueue adds a noop job through the client, returning its id.
func (f *fixture) enqueue(p jobqueue.EnqueueParams) int64 {
	f.t.Helper()
	if p.Kind == "" {
		p.Kind = "noop"
	}
	res, err := f.client.Enqueue(context.Background(), p)
	if err != nil {
		f.t.Fatalf("enqueue: %v", err)
	}
	return res.Job.ID
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.db.Pool.Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatalf("exec %q: %v", sql, err)
	}
}

// Direct state changes, standing in for a worker.
const (
	makeCompleted = `UPDATE spool.spool_jobs SET status = 'completed', attempts = 1, started_at = now(), finished_at = now() WHERE id = $1`
	makeRunning   = `UPDATE spool.spool_jobs SET status = 'running', attempts = 1, worker_id = 'w1', lease_token = 1, started_at = now(),
		lease_until = now() + interval '1 minute' WHERE id = $1`
	makeDead = `UPDATE spool.spool_jobs SET status = 'dead', attempts = max_attempts, finished_at = now(), last_error = 'boom',
		errors = '[{"attempt": 1, "error": "boom", "at": "2025-01-01T00:00:00Z", "worker_id": "w1"}]' WHERE id = $1`
)

// snapshot is the job table's row count and content checksum.
func (f *fixture) snapshot() string {
	f.t.Helper()
	var n int64
	var sum string
	err := f.db.Pool.QueryRow(context.Background(),
		`SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '') FROM spool.spool_jobs t`).Scan(&n, &sum)
	if err != nil {
		f.t.Fatalf("snapshot: %v", err)
	}
	return fmt.Sprintf("%d rows, md5 %s", n, sum)
}

func (f *fixture) count() int64 {
	f.t.Helper()
	var n int64
	if err := f.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM spool.spool_jobs`).Scan(&n); err != nil {
		f.t.Fatalf("count: %v", err)
	}
	return n
}

func decodeJSON(res *http.Response, v any) error {
	defer res.Body.Close()
	return json.NewDecoder(res.Body).Decode(v)
}

func mustClient(t testing.TB, pool *pgxpool.Pool) *jobqueue.Client {
	t.Helper()
	c, err := jobqueue.NewClient(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
