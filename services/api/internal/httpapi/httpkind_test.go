package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
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
	check, err := httpkind.EnqueueCheck(allowed)
	if err != nil {
		t.Fatal(err)
	}
	cat.Check("http", check)
	h := newRouter(client, prometheus.NewRegistry(), &httpapi.Opts{Catalog: cat})
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
