package main_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

// http jobs through the real binaries: the API seals an Authorization
// header at enqueue, the worker opens it to send, and the value appears
// nowhere else (the job as the API shows it, the database, either
// process's log); the worker's metrics count requests by destination host
// and status class.
func TestHTTPJobsThroughTheBinaries(t *testing.T) {
	const secret = "Bearer s3cret-token-of-the-partner"
	var mu sync.Mutex
	var seen []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Path == "/missing" {
			http.Error(w, "no such hook", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()

	db := pgtest.New(t)
	http_ := []string{"SPOOL_HTTP_ALLOWED_HOSTS=127.0.0.1/32", "SPOOL_HTTP_HEADER_KEY=c3Bvb2wtaHR0cGtpbmQtdGVzdC1zZWFsLWtleS0zMmI="}
	apiAddr, workerAdmin := proctest.FreeAddr(t), proctest.FreeAddr(t)
	api := proctest.Start(t, proctest.Build(t, "github.com/spoolq/spool/services/api"), append([]string{
		"SPOOL_DATABASE_URL=" + db.URL, "SPOOL_HTTP_ADDR=" + apiAddr, "SPOOL_ADMIN_ADDR=" + proctest.FreeAddr(t),
		"SPOOL_AUTH_DISABLED=true", "SPOOL_LOG_LEVEL=debug"}, http_...))
	worker := proctest.Start(t, proctest.Build(t, "github.com/spoolq/spool/services/worker"), append([]string{
		"SPOOL_DATABASE_URL=" + db.URL, "SPOOL_ADMIN_ADDR=" + workerAdmin, "SPOOL_WORKER_ID=w0",
		"SPOOL_POLL_INTERVAL=200ms", "SPOOL_LOG_LEVEL=debug"}, http_...))
	waitReady(t, "http://"+apiAddr+"/v1/stats")
	ctx := context.Background()
	proctest.Eventually(t, 20*time.Second, "the worker to publish the http kind", func() bool {
		var n int
		_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_kinds WHERE name = 'http'`).Scan(&n)
		return n == 1
	})

	enqueue := func(path string) int64 {
		body := `{"type":"http","max_attempts":1,"payload":{"url":"` + rcv.URL + path + `","headers":{"Authorization":"` + secret + `"}}}`
		resp, err := http.Post("http://"+apiAddr+"/v1/jobs", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Job struct{ ID int64 } }
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &out); resp.StatusCode != 201 || err != nil {
			t.Fatalf("enqueue: %d %s", resp.StatusCode, b)
		}
		return out.Job.ID
	}
	ok, missing := enqueue("/hook"), enqueue("/missing")
	var shown []byte
	for id, want := range map[int64]string{ok: "completed", missing: "dead"} {
		proctest.Eventually(t, 20*time.Second, "job to be "+want, func() bool {
			var status string
			_ = db.Pool.QueryRow(ctx, `SELECT status FROM spool.spool_jobs WHERE id = $1`, id).Scan(&status)
			return status == want
		})
		resp, err := http.Get("http://" + apiAddr + "/v1/jobs/" + strconv.FormatInt(id, 10))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		shown = append(shown, b...)
	}
	mu.Lock()
	if len(seen) != 2 || seen[0] != secret || seen[1] != secret {
		t.Errorf("receiver saw Authorization %q, want the clear value twice", seen)
	}
	mu.Unlock()
	var stored string
	_ = db.Pool.QueryRow(ctx, `SELECT string_agg(payload::text || coalesce(last_error, ''), ' ') FROM spool.spool_jobs`).Scan(&stored)
	if !strings.Contains(stored, `"sealed:v1:`) {
		t.Errorf("stored payloads hold no sealed value: %s", stored)
	}
	for where, text := range map[string]string{"the API's answers": string(shown), "the database": stored,
		"the API's log": api.Output(), "the worker's log": worker.Output()} {
		if strings.Contains(text, "s3cret") {
			t.Errorf("the secret is in %s", where)
		}
	}
	for series, want := range map[string]float64{
		`spool_http_job_requests_total{class="2xx",host="127.0.0.1"}`:     1,
		`spool_http_job_requests_total{class="4xx",host="127.0.0.1"}`:     1,
		`spool_http_job_request_duration_seconds_count{host="127.0.0.1"}`: 2,
	} {
		if got := scrape(t, workerAdmin, series); got != want {
			t.Errorf("%s = %g, want %g", series, got, want)
		}
	}
}
