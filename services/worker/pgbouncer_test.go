package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

// Spool behind PgBouncer (Debian's pgbouncer, started by the test), as the
// READMEs recommend it: the real spool-api and spool-worker on the pooled
// URL, migrations applied directly (they take a session advisory lock).

// pgbCase is one way of running behind PgBouncer.
type pgbCase struct {
	name   string
	mode   string   // proctest.SessionPooling or TransactionPooling
	params []string // added to the pooled URL
	// directListen sets SPOOL_LISTEN_DATABASE_URL to the server itself.
	directListen bool
	// notify: new jobs wake the worker by NOTIFY; else it finds them by
	// polling every poll.
	notify bool
	poll   time.Duration
}

// simpleProtocol is what the docs tell transaction pooling to add:
// PgBouncer before 1.21 cannot keep prepared statements across
// transactions.
const simpleProtocol = "default_query_exec_mode=simple_protocol"

var pgbCases = []pgbCase{
	// A long poll interval in the NOTIFY cases: a job found by polling
	// would show as a pick-up of seconds, and wakeups would stay 0.
	{name: "session", mode: proctest.SessionPooling, notify: true, poll: 5 * time.Second},
	{name: "transaction", mode: proctest.TransactionPooling, params: []string{simpleProtocol}, directListen: true, notify: true, poll: 5 * time.Second},
	{name: "transaction_poll_only", mode: proctest.TransactionPooling, params: []string{simpleProtocol}, poll: time.Second},
}

// pgbEnv is an API and a worker behind one PgBouncer, on a fresh database.
type pgbEnv struct {
	c      pgbCase
	db     *pgtest.DB
	base   string // the API's base URL
	admin  string // the worker's admin address
	worker *proctest.Proc
	api    *proctest.Proc
}

func startBehindPgBouncer(tb testing.TB, c pgbCase) *pgbEnv {
	tb.Helper()
	db := pgtest.New(tb) // migrated directly, never through the pooler
	bouncer := proctest.StartPgBouncer(tb, pgtest.AdminURL(), c.mode)
	pooled := bouncer.URL(db.URL, c.params...)
	e := &pgbEnv{c: c, db: db, admin: proctest.FreeAddr(tb)}

	workerEnv := []string{"SPOOL_DATABASE_URL=" + pooled, "SPOOL_ADMIN_ADDR=" + e.admin, "SPOOL_WORKER_ID=w-" + c.name,
		"SPOOL_POLL_INTERVAL=" + c.poll.String(), "SPOOL_SCHEDULE_INTERVAL=200ms", "SPOOL_LOG_LEVEL=debug"}
	if c.directListen {
		workerEnv = append(workerEnv, "SPOOL_LISTEN_DATABASE_URL="+db.URL)
	}
	e.worker = proctest.Start(tb, proctest.Build(tb, "github.com/spoolq/spool/services/worker"), workerEnv)

	addr := proctest.FreeAddr(tb)
	e.base = "http://" + addr
	e.api = proctest.Start(tb, proctest.Build(tb, "github.com/spoolq/spool/services/api"), []string{
		"SPOOL_DATABASE_URL=" + pooled, "SPOOL_HTTP_ADDR=" + addr, "SPOOL_ADMIN_ADDR=" + proctest.FreeAddr(tb),
		"SPOOL_AUTH_DISABLED=true", "SPOOL_DRAIN_DELAY=100ms",
	})
	proctest.Eventually(tb, 20*time.Second, "the API to answer and the worker to publish noop", func() bool {
		var kinds struct {
			Kinds []struct{ Name string } `json:"kinds"`
		}
		if code := e.tryCall("GET", "/v1/kinds", "", &kinds); code != http.StatusOK {
			return false
		}
		return slices.ContainsFunc(kinds.Kinds, func(k struct{ Name string }) bool { return k.Name == "noop" })
	})
	return e
}

// tryCall sends a request to the API and decodes a JSON answer into out;
// it returns the status, 0 when the request could not be sent.
func (e *pgbEnv) tryCall(method, path, body string, out any) int {
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(b, out)
	}
	return resp.StatusCode
}

// call is tryCall that wants status want.
func (e *pgbEnv) call(tb testing.TB, method, path, body string, want int, out any) {
	tb.Helper()
	var raw json.RawMessage
	if code := e.tryCall(method, path, body, &raw); code != want {
		tb.Fatalf("%s %s: status %d, want %d; body %s", method, path, code, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			tb.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
}

func (e *pgbEnv) enqueue(tb testing.TB, body string) int64 {
	tb.Helper()
	var res struct {
		Job struct{ ID int64 } `json:"job"`
	}
	e.call(tb, "POST", "/v1/jobs", body, http.StatusCreated, &res)
	return res.Job.ID
}

// row is a job as the test reads it, directly from the database.
type row struct {
	status   string
	attempts int
	payload  string
	pickup   time.Duration // started_at - created_at, both on the server's clock
}

func (e *pgbEnv) row(tb testing.TB, id int64) row {
	tb.Helper()
	var r row
	var pickup *time.Duration
	err := e.db.Pool.QueryRow(context.Background(), `SELECT status, attempts, payload::text, started_at - created_at
		FROM spool.spool_jobs WHERE id = $1`, id).Scan(&r.status, &r.attempts, &r.payload, &pickup)
	if err != nil {
		tb.Fatalf("job %d: %v", id, err)
	}
	if pickup != nil {
		r.pickup = *pickup
	}
	return r
}

func (e *pgbEnv) waitStatus(tb testing.TB, id int64, want string) row {
	tb.Helper()
	var r row
	proctest.Eventually(tb, 30*time.Second, fmt.Sprintf("job %d to be %s", id, want), func() bool {
		r = e.row(tb, id)
		return r.status == want
	})
	return r
}

// pickup enqueues a noop job through the API while the worker is idle and
// returns how long it waited to start.
func (e *pgbEnv) pickup(tb testing.TB) time.Duration {
	tb.Helper()
	id := e.enqueue(tb, `{"type":"noop"}`)
	return e.waitStatus(tb, id, "completed").pickup
}

func TestBehindPgBouncer(t *testing.T) {
	for _, c := range pgbCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			testBehindPgBouncer(t, c)
		})
	}
}

// testBehindPgBouncer takes every write path through the API and the
// worker's claim, complete, fail and retry, and checks each job ran as
// often as it should (once, unless it failed) and ended as it should.
func testBehindPgBouncer(t *testing.T, c pgbCase) {
	e := startBehindPgBouncer(t, c)
	ctx := context.Background()
	runs := map[int64]int{}      // how often each job must have started
	status := map[int64]string{} // how it must end
	want := func(id int64, n int, s string) { runs[id], status[id] = n, s }

	// POST /v1/jobs: a payload, a failure retried, a dead job retried by
	// hand, a delayed job cancelled.
	noop := e.enqueue(t, `{"type":"noop","payload":{"seq":42}}`)
	want(noop, 1, "completed")
	flaky := e.enqueue(t, `{"type":"fail","payload":{"message":"first attempt","times":1},"max_attempts":3,"backoff_base":"100ms","backoff_max":"100ms"}`)
	want(flaky, 2, "completed")
	dead := e.enqueue(t, `{"type":"fail","payload":{"message":"always"},"max_attempts":1}`)
	e.waitStatus(t, dead, "dead")
	e.call(t, "POST", fmt.Sprintf("/v1/jobs/%d/retry", dead), "", http.StatusOK, nil)
	want(dead, 2, "dead") // once before the retry by hand, once after
	later := e.enqueue(t, `{"type":"noop","delay":"1h"}`)
	e.call(t, "POST", fmt.Sprintf("/v1/jobs/%d/cancel", later), "", http.StatusOK, nil)
	want(later, 0, "cancelled")

	// POST /v1/jobs/batch
	var batch struct {
		Jobs []struct{ ID int64 } `json:"jobs"`
	}
	e.call(t, "POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop","payload":{"seq":1}},{"type":"noop","payload":{"seq":2}},{"type":"noop","queue":"default","priority":5}]}`,
		http.StatusCreated, &batch)
	if len(batch.Jobs) != 3 {
		t.Fatalf("batch answered %d jobs, want 3", len(batch.Jobs))
	}
	for _, j := range batch.Jobs {
		want(j.ID, 1, "completed")
	}

	// POST /v1/workflows: b runs after a, released by a's completion.
	var wf struct {
		Workflow struct {
			ID     int64  `json:"id"`
			Status string `json:"status"`
		} `json:"workflow"`
	}
	e.call(t, "POST", "/v1/workflows", `{"name":"pgbouncer","steps":[{"name":"a","type":"noop","payload":{"seq":7}},{"name":"b","type":"noop","depends_on":["a"]}]}`,
		http.StatusCreated, &wf)
	proctest.Eventually(t, 30*time.Second, "the workflow to complete", func() bool {
		e.call(t, "GET", fmt.Sprintf("/v1/workflows/%d", wf.Workflow.ID), "", http.StatusOK, &wf)
		return wf.Workflow.Status == "completed"
	})
	steps := ids(t, e, `SELECT id FROM spool.spool_jobs WHERE workflow_id = $1`, wf.Workflow.ID)
	if len(steps) != 2 {
		t.Fatalf("workflow has %d jobs, want 2", len(steps))
	}
	for _, id := range steps {
		want(id, 1, "completed")
	}

	// PUT /v1/schedules: the worker's scheduler enqueues ticks through the
	// pooler too.
	e.call(t, "PUT", "/v1/schedules/pgb-tick", `{"spec":"@every 1s","type":"noop","payload":{"seq":99}}`, http.StatusOK, nil)
	var ticks []int64
	proctest.Eventually(t, 30*time.Second, "two scheduled ticks to be enqueued", func() bool {
		ticks = ids(t, e, `SELECT id FROM spool.spool_jobs WHERE request_id LIKE 'schedule:pgb-tick:%'`)
		return len(ticks) >= 2
	})
	e.call(t, "DELETE", "/v1/schedules/pgb-tick", "", http.StatusOK, nil)
	time.Sleep(500 * time.Millisecond) // a check under way may still enqueue one
	for _, id := range ids(t, e, `SELECT id FROM spool.spool_jobs WHERE request_id LIKE 'schedule:pgb-tick:%'`) {
		want(id, 1, "completed")
	}

	for id, s := range status {
		e.waitStatus(t, id, s)
	}
	if p := e.row(t, noop).payload; p != `{"seq": 42}` {
		t.Errorf("payload stored as %s, want {\"seq\": 42}", p)
	}
	var tickPayload string
	if err := e.db.Pool.QueryRow(ctx, `SELECT payload::text FROM spool.spool_jobs WHERE id = $1`, ticks[0]).Scan(&tickPayload); err != nil || tickPayload != `{"seq": 99}` {
		t.Errorf("scheduled payload = %s (%v), want {\"seq\": 99}", tickPayload, err)
	}

	// Pick-up of a new job by an idle worker.
	var pickups []time.Duration
	for range 5 {
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		pickups = append(pickups, e.pickup(t))
	}
	slices.Sort(pickups)
	wakeups := scrape(t, e.admin, "spool_worker_notify_wakeups_total")
	t.Logf("%s: pick-up of 5 jobs (enqueue to start): min %s, median %s, max %s; %v NOTIFY wakeups",
		c.name, pickups[0], pickups[2], pickups[4], wakeups)
	if c.notify {
		if wakeups < 5 {
			t.Errorf("%v NOTIFY wakeups, want at least one per pick-up (5)", wakeups)
		}
	} else {
		if wakeups != 0 {
			t.Errorf("%v NOTIFY wakeups through a transaction pooler, want 0", wakeups)
		}
		if pickups[4] > c.poll+2*time.Second {
			t.Errorf("slowest pick-up %s, want within the poll interval %s plus 2s", pickups[4], c.poll)
		}
		if !e.worker.WaitOutput("polling only", 5*time.Second) {
			t.Error("worker did not say it finds jobs by polling only")
		}
		for _, l := range strings.Split(e.worker.Output(), "\n") {
			if strings.Contains(l, "polling only") {
				t.Logf("worker: %s", l)
			}
		}
	}

	e.worker.Signal(syscall.SIGTERM)
	e.api.Signal(syscall.SIGTERM)
	for _, p := range []*proctest.Proc{e.worker, e.api} {
		if code, ok := p.Wait(10 * time.Second); !ok || code != 0 {
			t.Fatalf("exit %d (in time: %v), want 0", code, ok)
		}
	}
	started := map[int64]int{}
	for _, line := range e.worker.JSONLines("job started") {
		started[int64(line["job_id"].(float64))]++
	}
	for id, n := range runs {
		if started[id] != n {
			t.Errorf("job %d started %d times, want %d", id, started[id], n)
		}
	}
	for _, p := range []*proctest.Proc{e.worker, e.api} {
		for _, l := range strings.Split(p.Output(), "\n") {
			expected := strings.Contains(l, `"msg":"job dead"`) // the fail jobs
			if !expected && (strings.Contains(l, `"level":"ERROR"`) || strings.Contains(l, "SQLSTATE")) {
				t.Errorf("logged: %s", l)
			}
		}
	}
}

func ids(tb testing.TB, e *pgbEnv, query string, args ...any) []int64 {
	tb.Helper()
	rows, _ := e.db.Pool.Query(context.Background(), query, args...)
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// BenchmarkPickupBehindPgBouncer measures how long a job an idle worker
// gets waits to start (enqueue through the API to started_at, on the
// server's clock) in each way of running behind PgBouncer; p50-ms is the
// median of b.N pick-ups. Run it with
//
//	go test -run '^$' -bench PickupBehindPgBouncer -benchtime 20x -count 3 ./services/worker
func BenchmarkPickupBehindPgBouncer(b *testing.B) {
	for _, c := range pgbCases {
		b.Run(c.name, func(b *testing.B) {
			e := startBehindPgBouncer(b, c)
			var pickups []time.Duration
			b.ResetTimer()
			for range b.N {
				// Off the poll's rhythm (a second's spread), so polling
				// shows its average; ns/op is the enqueue-to-completed
				// round trip through the API.
				b.StopTimer()
				time.Sleep(time.Duration(50+rand.IntN(1000)) * time.Millisecond)
				b.StartTimer()
				pickups = append(pickups, e.pickup(b))
			}
			b.StopTimer()
			slices.Sort(pickups)
			b.ReportMetric(float64(pickups[len(pickups)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(pickups[len(pickups)-1].Microseconds())/1000, "max-ms")
		})
	}
}
