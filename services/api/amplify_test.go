package main

// Hostile clients against the real binary (issue 17, items 2 and 3): a
// read-only token cannot make an answer, or the API's memory, grow with
// what other clients stored, and client-chosen queue names cannot grow
// /metrics.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

func TestStoredDataAndQueueNamesCannotAmplify(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	// 100 jobs of 1 MiB payloads of '<' (which HTML escaping made 6 bytes).
	if _, err := db.Pool.Exec(ctx, `INSERT INTO spool.spool_jobs (type, payload)
		SELECT 'noop', jsonb_build_object('body', repeat('<', 1 << 20)) FROM generate_series(1, 100)`); err != nil {
		t.Fatal(err)
	}
	bin := proctest.Build(t, "github.com/spoolq/spool/services/api")
	p := proctest.Start(t, bin, env([]string{"SPOOL_DATABASE_URL=" + db.URL,
		"SPOOL_API_TOKENS=" + rwToken + ":rw," + roToken + ":ro", "SPOOL_OPEN_KINDS=*", "SPOOL_STATS_INTERVAL=1s",
		"SPOOL_HTTP_ADDR=127.0.0.1:0", "SPOOL_ADMIN_ADDR=127.0.0.1:0"}))
	api, admin := listening(t, p, "api listening"), listening(t, p, "admin listening")

	get := func(url, token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	var brief int
	for range 3 {
		code, body := get("http://"+api+"/v1/jobs?limit=500", roToken)
		if brief = len(body); code != 200 || brief > 200<<10 {
			t.Fatalf("GET /v1/jobs?limit=500: %d, %d bytes; want 200 and no payloads", code, brief)
		}
	}
	code, body := get("http://"+api+"/v1/jobs?limit=500&include=payload", roToken)
	var page struct {
		Jobs      []json.RawMessage
		NextAfter *int64 `json:"next_after"`
	}
	if err := json.Unmarshal(body, &page); code != 200 || err != nil || len(body) > 17<<20 || page.NextAfter == nil {
		t.Fatalf("with payloads: %d, %d bytes, %d jobs, next %v, %v; want at most 16 MiB and a cursor", code, len(body), len(page.Jobs), page.NextAfter, err)
	}
	t.Logf("limit=500: brief page %d bytes; with payloads %d jobs, %d bytes", brief, len(page.Jobs), len(body))

	// 20,000 queues invented by 20 batch requests.
	for b := range 20 {
		var jobs []string
		for i := range 1000 {
			jobs = append(jobs, fmt.Sprintf(`{"type":"noop","queue":"q-%d-%d"}`, b, i))
		}
		req, _ := http.NewRequest("POST", "http://"+api+"/v1/jobs/batch", strings.NewReader(`{"jobs":[`+strings.Join(jobs, ",")+`]}`))
		req.Header.Set("Authorization", "Bearer "+rwToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("batch %d: %d", b, resp.StatusCode)
		}
	}
	var metrics []byte
	proctest.Eventually(t, 20*time.Second, "the gauges counting the invented queues", func() bool {
		_, metrics = get("http://"+admin+"/metrics", "")
		return strings.Contains(string(metrics), `spool_queue_jobs{queue="_other",status="pending"} 20100`)
	})
	series := strings.Count(string(metrics), "\nspool_queue_jobs{")
	if series > 7 || len(metrics) > 256<<10 {
		t.Fatalf("/metrics: %d bytes, %d spool_queue_jobs series; want one queue's (7)", len(metrics), series)
	}
	hwm, _ := memory(t, p.PID())
	t.Logf("20,000 invented queues: /metrics %d bytes, %d spool_queue_jobs series; API peak RSS %d MiB", len(metrics), series, hwm>>10)
	if hwm > 128<<10 {
		t.Fatalf("API peak RSS %d MiB, want below 128 MiB (the chart's limit is 256 MiB)", hwm>>10)
	}
}

// listening waits for a process's "... listening" line and returns its address.
func listening(t *testing.T, p *proctest.Proc, msg string) string {
	t.Helper()
	var addr string
	proctest.Eventually(t, 15*time.Second, msg, func() bool {
		if l := p.JSONLines(msg); len(l) > 0 {
			addr = fmt.Sprint(l[0]["addr"])
		}
		return addr != ""
	})
	return addr
}
