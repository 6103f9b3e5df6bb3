package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/services/api/internal/httpapi"
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

// setup builds the real router on a fresh database; opts may be nil.
func setup(t *testing.T, opts *httpapi.Opts) *fixture {
	t.Helper()
	db := pgtest.New(t)
	reg := prometheus.NewRegistry()
	client := jobqueue.NewClient(db.Pool, jobqueue.NewMetrics(reg))
	return &fixture{t: t, db: db, client: client, reg: reg, h: newRouter(client, reg, opts)}
}

func newRouter(client *jobqueue.Client, reg prometheus.Registerer, opts *httpapi.Opts) http.Handler {
	var o httpapi.Opts
	if opts != nil {
		o = *opts
	}
	o.Registry = reg
	return httpapi.New(client, &o)
}

// request builds a request; a non-empty body is sent as application/json
// unless headers say otherwise ("Name: value" pairs).
func request(method, path, body string, headers ...string) *http.Request {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
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

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// do sends a request to the fixture's router.
func (f *fixture) do(method, path, body string, headers ...string) *httptest.ResponseRecorder {
	return serve(f.h, request(method, path, body, headers...))
}

// mustStatus fails unless rec has status want, and returns its JSON body.
func mustStatus[T any](t *testing.T, rec *httptest.ResponseRecorder, want int) T {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status = %d, want %d; body: %s", rec.Code, want, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, rec.Body)
	}
	return v
}

type jobBody struct {
	Job       jobqueue.Job `json:"job"`
	Duplicate bool         `json:"duplicate"`
}

type errBody struct {
	Error      string   `json:"error"`
	Field      string   `json:"field"`
	Index      *int     `json:"index"`
	Status     string   `json:"status"`
	KnownTypes []string `json:"known_types"`
	RequestID  string   `json:"request_id"`
}

// enqueue adds a noop job through the client, returning its id.
func (f *fixture) enqueue(p jobqueue.EnqueueParams) int64 {
	f.t.Helper()
	if p.Type == "" {
		p.Type = "noop"
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
	makeCompleted = `UPDATE spool_jobs SET status = 'completed', attempts = 1, started_at = now(), finished_at = now() WHERE id = $1`
	makeRunning   = `UPDATE spool_jobs SET status = 'running', attempts = 1, worker_id = 'w1', started_at = now(),
		lease_until = now() + interval '1 minute' WHERE id = $1`
	makeDead = `UPDATE spool_jobs SET status = 'dead', attempts = max_attempts, finished_at = now(), last_error = 'boom',
		errors = '[{"attempt": 1, "error": "boom", "at": "2025-01-01T00:00:00Z", "worker_id": "w1"}]' WHERE id = $1`
)

// snapshot is the job table's row count and content checksum.
func (f *fixture) snapshot() string {
	f.t.Helper()
	var n int64
	var sum string
	err := f.db.Pool.QueryRow(context.Background(),
		`SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '') FROM spool_jobs t`).Scan(&n, &sum)
	if err != nil {
		f.t.Fatalf("snapshot: %v", err)
	}
	return fmt.Sprintf("%d rows, md5 %s", n, sum)
}

func (f *fixture) count() int64 {
	f.t.Helper()
	var n int64
	if err := f.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM spool_jobs`).Scan(&n); err != nil {
		f.t.Fatalf("count: %v", err)
	}
	return n
}

func decodeJSON(res *http.Response, v any) error {
	defer res.Body.Close()
	return json.NewDecoder(res.Body).Decode(v)
}
