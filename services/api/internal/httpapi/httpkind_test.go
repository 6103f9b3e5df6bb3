package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/httpkind"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
)

// With the workers' allow list, the API refuses an http job whose
// destination the list does not allow with 422 at enqueue, on every path
// (one job, a batch, a workflow step), and writes nothing; names are
// resolved as the worker resolves them, so localhost is refused like
// 127.0.0.1.
func TestHTTPDestinationsRefusedAtEnqueue(t *testing.T) {
	t.Parallel()
	const allowed = "hooks.example, 10.0.0.0/8"
	db := pgtest.New(t)
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	kinds := jobqueue.NewKinds()
	if err := httpkind.Add(kinds, httpkind.Settings{AllowedHosts: allowed}); err != nil {
		t.Fatal(err)
	}
	if err := client.PublishKinds(context.Background(), "w", kinds); err != nil {
		t.Fatal(err)
	}
	cat := catalog.New(client, nil)
	check, err := httpkind.EnqueueCheck(httpkind.Settings{AllowedHosts: allowed}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cat.Check("http", check)
	h := newRouter(t, client, prometheus.NewRegistry(), &httpapi.Opts{Catalog: cat})
	post := func(path, body string) (int, map[string]any) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, request("POST", path, body))
		var out map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &out)
		return w.Code, out
	}
	for _, url := range []string{"http://localhost:8080/x", "http://127.0.0.1/x", "http://169.254.169.254/latest/meta-data",
		"http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/"} {
		code, body := post("/v1/jobs", `{"type":"http","payload":{"url":"`+url+`"}}`)
		if code != 422 || body["field"] != "payload.url" {
			t.Errorf("%s: %d %v; want 422 naming payload.url", url, code, body)
		}
	}
	if code, body := post("/v1/jobs/batch", `{"jobs":[{"type":"http","payload":{"url":"http://10.1.2.3/"}},{"type":"http","payload":{"url":"http://localhost/"}}]}`); code != 422 {
		t.Errorf("batch with a refused destination: %d %v", code, body)
	}
	if code, body := post("/v1/workflows", `{"name":"w","steps":[{"name":"a","type":"http","payload":{"url":"http://169.254.169.254/"}}]}`); code != 422 {
		t.Errorf("workflow with a refused destination: %d %v", code, body)
	}
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM spool.spool_jobs`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d jobs written by refused requests (%v)", n, err)
	}
	for _, url := range []string{"http://10.1.2.3:8080/hook", "https://hooks.example/in"} {
		if code, body := post("/v1/jobs", `{"type":"http","payload":{"url":"`+url+`"}}`); code != 201 {
			t.Errorf("%s: %d %v; want 201", url, code, body)
		}
	}
}

// With the workers' header key the API seals an http job's secret header
// values before writing it, on every path (one job, a batch, a workflow
// step, a schedule): the database and every answer hold only the sealed
// value. Without a key such a job is refused with 422 and nothing is
// written.
func TestHTTPSecretHeadersSealedAtEnqueue(t *testing.T) {
	t.Parallel()
	const key = "c3Bvb2wtaHR0cGtpbmQtdGVzdC1zZWFsLWtleS0zMmI="
	db := pgtest.New(t)
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	kinds := jobqueue.NewKinds()
	if err := httpkind.Add(kinds, httpkind.Settings{AllowedHosts: "hooks.example"}); err != nil {
		t.Fatal(err)
	}
	if err := client.PublishKinds(context.Background(), "w", kinds); err != nil {
		t.Fatal(err)
	}
	router := func(s httpkind.Settings) func(method, path, body string) (int, string) {
		cat := catalog.New(client, nil)
		check, err := httpkind.EnqueueCheck(s, nil)
		if err != nil {
			t.Fatal(err)
		}
		cat.Check("http", check)
		h := newRouter(t, client, prometheus.NewRegistry(), &httpapi.Opts{Catalog: cat})
		return func(method, path, body string) (int, string) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, request(method, path, body))
			return w.Code, w.Body.String()
		}
	}
	const job = `{"type":"http","payload":{"url":"https://hooks.example/in","headers":{"Authorization":"Bearer s3cret","X-Api-Key":"k3y","X-Trace":"t1"}}}`
	stored := func() string {
		var all string
		err := db.Pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(payload::text, ' '), '') FROM spool.spool_jobs`).Scan(&all)
		if err != nil {
			t.Fatal(err)
		}
		var schedules string
		_ = db.Pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(payload::text, ' '), '') FROM spool.spool_schedules`).Scan(&schedules)
		return all + schedules
	}

	noKey := router(httpkind.Settings{AllowedHosts: "hooks.example"})
	if code, body := noKey("POST", "/v1/jobs", job); code != 422 || !strings.Contains(body, `"field":"payload.headers"`) {
		t.Fatalf("without a key: %d %s; want 422 naming payload.headers", code, body)
	}
	if s := stored(); s != "" {
		t.Fatalf("a refused job was written: %s", s)
	}

	do := router(httpkind.Settings{AllowedHosts: "hooks.example", HeaderKey: key, SecretHeaders: "X-Api-Key"})
	answers := []string{}
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/jobs", job},
		{"POST", "/v1/jobs/batch", `{"jobs":[` + job + `,` + job + `]}`},
		{"POST", "/v1/workflows", `{"name":"w","steps":[{"name":"a",` + strings.TrimPrefix(job, "{") + `]}`},
		{"PUT", "/v1/schedules/hourly", `{"spec":"0 * * * *",` + strings.TrimPrefix(job, "{")},
	} {
		code, body := do(r.method, r.path, r.body)
		if code != 201 && code != 200 {
			t.Fatalf("%s %s: %d %s", r.method, r.path, code, body)
		}
		answers = append(answers, body)
	}
	for _, path := range []string{"/v1/jobs?include=payload", "/v1/jobs/1", "/v1/schedules", "/v1/schedules/hourly"} {
		_, body := do("GET", path, "")
		answers = append(answers, body)
	}
	s := stored()
	if n := strings.Count(s, httpkind.SealedPrefix); n != 10 {
		t.Errorf("%d sealed values stored, want 10 (Authorization and X-Api-Key of 4 jobs and a schedule): %s", n, s)
	}
	for _, text := range append(answers, s) {
		if strings.Contains(text, "s3cret") || strings.Contains(text, "k3y") {
			t.Fatalf("a secret in clear: %s", text)
		}
	}
	if !strings.Contains(s, `"X-Trace": "t1"`) {
		t.Errorf("a header that is not secret was changed: %s", s)
	}
}
