package main_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/diagnostic"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

// These tests run the real spool-worker binary against a real database.

type bundle struct {
	db     *pgtest.DB
	client *jobqueue.Client
	bin    string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	t.Parallel()
	db := pgtest.New(t)
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{db: db, client: client, bin: proctest.Build(t, "github.com/spoolq/spool/services/worker")}
}

// startWorker runs one worker process; extra env entries override defaults.
func (b *bundle) startWorker(t *testing.T, extra ...string) *proctest.Proc {
	env := []string{
		"SPOOL_DATABASE_URL=" + b.db.URL,
		"SPOOL_ADMIN_ADDR=" + proctest.FreeAddr(t),
		"SPOOL_POLL_INTERVAL=200ms",
		"SPOOL_LOG_LEVEL=debug",
	}
	return proctest.Start(t, b.bin, append(env, extra...))
}

func (b *bundle) enqueue(t *testing.T, p jobqueue.Args, opts jobqueue.EnqueueParams) *jobqueue.Job {
	t.Helper()
	opts.Kind, opts.Payload = p.Kind(), p
	res, err := b.client.Enqueue(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return res.Job
}

func (b *bundle) job(t *testing.T, id int64) *jobqueue.Job {
	t.Helper()
	j, err := b.client.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (b *bundle) waitStatus(t *testing.T, id int64, want jobqueue.Status, d time.Duration) *jobqueue.Job {
	t.Helper()
	var j *jobqueue.Job
	proctest.Eventually(t, d, fmt.Sprintf("job %d to be %s", id, want), func() bool {
		j = b.job(t, id)
		return j.Status == want
	})
	return j
}

func stopClean(t *testing.T, p *proctest.Proc, within time.Duration) {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	code, ok := p.Wait(within)
	if !ok {
		t.Fatalf("worker did not exit within %s of SIGTERM", within)
	}
	if code != 0 {
		t.Fatalf("worker exit code = %d, want 0", code)
	}
}

func TestWorkerCompletesJobsAndDeadLettersFailures(t *testing.T) {
	b := setup(t)
	w := b.startWorker(t, "SPOOL_BACKOFF_BASE=400ms", "SPOOL_BACKOFF_MAX=400ms")
	ok := b.enqueue(t, diagnostic.Noop{}, jobqueue.EnqueueParams{})
	bad := b.enqueue(t, diagnostic.Fail{Message: "boom"}, jobqueue.EnqueueParams{MaxAttempts: 3})

	b.waitStatus(t, ok.ID, jobqueue.StatusCompleted, 10*time.Second)
	seen := map[jobqueue.Status]bool{}
	var dead *jobqueue.Job
	proctest.Eventually(t, 15*time.Second, "fail job to be dead", func() bool {
		dead = b.job(t, bad.ID)
		seen[dead.Status] = true
		return dead.Status == jobqueue.StatusDead
	})
	if !seen[jobqueue.StatusRetrying] {
		t.Errorf("statuses seen = %v, want retrying on the way to dead", seen)
	}
	if dead.Attempts != 3 || len(dead.Errors) != 3 {
		t.Fatalf("dead job attempts = %d, errors = %d; want 3 and 3", dead.Attempts, len(dead.Errors))
	}
	for i, e := range dead.Errors {
		if e.Attempt != i+1 || e.Error != "boom" || e.WorkerID == "" {
			t.Errorf("error %d = %+v, want attempt %d, message boom and a worker id", i, e, i+1)
		}
	}
	stopClean(t, w, 5*time.Second)
}

func TestFourWorkersRunEveryJobExactlyOnce(t *testing.T) {
	b := setup(t)
	const n = 2000
	var workers []*proctest.Proc
	for i := range 4 {
		workers = append(workers, b.startWorker(t, fmt.Sprintf("SPOOL_WORKER_ID=w%d", i)))
	}
	params := make([]jobqueue.EnqueueParams, n)
	for i := range params {
		params[i] = jobqueue.EnqueueParams{Kind: "noop", Payload: diagnostic.Noop{Seq: int64(i)}}
	}
	ids := map[int64]bool{}
	for i := 0; i < n; i += 250 {
		res, err := b.client.EnqueueMany(context.Background(), params[i:i+250])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			ids[r.ID] = true
		}
	}
	ctx := context.Background()
	proctest.Eventually(t, 60*time.Second, "all jobs completed", func() bool {
		var done int
		if err := b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_jobs WHERE status = 'completed'`).Scan(&done); err != nil {
			t.Fatal(err)
		}
		return done == n
	})
	for _, w := range workers {
		stopClean(t, w, 10*time.Second)
	}

	runs := map[int64]int{}
	perWorker := map[string]int{}
	for _, w := range workers {
		for _, line := range w.JSONLines("job started") {
			runs[int64(line["job_id"].(float64))]++
			perWorker[line["worker_id"].(string)]++
		}
	}
	for id := range ids {
		if runs[id] != 1 {
			t.Errorf("job %d ran %d times, want exactly 1", id, runs[id])
		}
	}
	if len(runs) != n {
		t.Errorf("handler ran for %d distinct jobs, want %d", len(runs), n)
	}
	var other int
	if err := b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_jobs WHERE status <> 'completed'`).Scan(&other); err != nil {
		t.Fatal(err)
	}
	if other != 0 {
		t.Errorf("%d jobs left behind not completed", other)
	}
	t.Logf("jobs per worker: %v", perWorker)
}

func TestSigtermLetsRunningJobFinish(t *testing.T) {
	b := setup(t)
	w := b.startWorker(t, "SPOOL_SHUTDOWN_TIMEOUT=10s")
	job := b.enqueue(t, diagnostic.Sleep{Ms: 3000}, jobqueue.EnqueueParams{})
	b.waitStatus(t, job.ID, jobqueue.StatusRunning, 10*time.Second)

	begin := time.Now()
	stopClean(t, w, 10*time.Second)
	if elapsed := time.Since(begin); elapsed > 5*time.Second {
		t.Errorf("exit took %s, want about 3s (the job's remaining time)", elapsed)
	}
	if got := b.job(t, job.ID); got.Status != jobqueue.StatusCompleted {
		t.Fatalf("job status after shutdown = %s, want completed", got.Status)
	}
}

func TestSigtermHandsBackJobLongerThanShutdownTimeout(t *testing.T) {
	b := setup(t)
	w := b.startWorker(t, "SPOOL_SHUTDOWN_TIMEOUT=2s")
	job := b.enqueue(t, diagnostic.Sleep{Ms: 60_000}, jobqueue.EnqueueParams{})
	b.waitStatus(t, job.ID, jobqueue.StatusRunning, 10*time.Second)

	begin := time.Now()
	stopClean(t, w, 3*time.Second) // the timeout plus one second
	t.Logf("exited %s after SIGTERM", time.Since(begin).Round(time.Millisecond))
	got := b.job(t, job.ID)
	if got.Status != jobqueue.StatusPending || got.Attempts != 0 || got.WorkerID != nil || got.LeaseUntil != nil {
		t.Fatalf("job after shutdown: status %s attempts %d worker %v lease %v; want pending, 0, none, none",
			got.Status, got.Attempts, got.WorkerID, got.LeaseUntil)
	}
	if !strings.Contains(w.Output(), "job handed back on shutdown") {
		t.Error("worker did not log the hand-back")
	}
}

func TestWorkerRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmpty(t)
	bin := proctest.Build(t, "github.com/spoolq/spool/services/worker")
	p := proctest.Start(t, bin, []string{"SPOOL_DATABASE_URL=" + db.URL, "SPOOL_ADMIN_ADDR=" + proctest.FreeAddr(t)})
	code, ok := p.Wait(10 * time.Second)
	if !ok || code != 1 {
		t.Fatalf("exit = %d (in time: %v), want 1", code, ok)
	}
	if !strings.Contains(p.Output(), "spool-api migrate") {
		t.Fatalf("output does not say how to fix it:\n%s", p.Output())
	}
}

func TestWorkerRejectsInvalidConfiguration(t *testing.T) {
	t.Parallel()
	bin := proctest.Build(t, "github.com/spoolq/spool/services/worker")
	for _, tc := range []struct{ env, want string }{
		{"SPOOL_CONCURRENCY=abc", "SPOOL_CONCURRENCY"},
		{"SPOOL_QUEUES=default:0", "SPOOL_QUEUES"},
		{"SPOOL_SHUTDOWN_TIMEOUT=-1s", "SPOOL_SHUTDOWN_TIMEOUT"},
		{"SPOOL_SIM_EMAIL_FAILURE_RATE=2", "SPOOL_SIM_EMAIL_FAILURE_RATE"},
		{"SPOOL_DB_SCHEMA=Bad-Name", "SPOOL_DB_SCHEMA"},
	} {
		p := proctest.Start(t, bin, []string{"SPOOL_DATABASE_URL=postgres://127.0.0.1:1/x", tc.env})
		code, _ := p.Wait(5 * time.Second)
		if code != 2 || !strings.Contains(p.Output(), tc.want) {
			t.Errorf("%s: exit %d, output %q; want exit 2 naming %s", tc.env, code, p.Output(), tc.want)
		}
	}
}

func TestMain(m *testing.M) { proctest.Main(m) }
