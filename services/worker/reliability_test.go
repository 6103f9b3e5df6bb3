package main_test

import (
	"context"
	"fmt"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/diagnostic"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/proctest"
)

// Reliability under failure, through the real binary: crashes (kill -9),
// flaky handlers and jobs that never succeed.

func TestKill9WorkerMidJobsEveryJobCompletesElsewhere(t *testing.T) {
	b := setup(t)
	fast := []string{"SPOOL_LEASE_DURATION=2s", "SPOOL_RESCUE_INTERVAL=300ms"}
	crashing := b.startWorker(t, append(fast, "SPOOL_WORKER_ID=doomed", "SPOOL_QUEUES=default:20")...)
	var ids []int64
	for range 20 {
		ids = append(ids, b.enqueue(t, diagnostic.Sleep{Ms: 3000}, jobqueue.EnqueueParams{}).ID)
	}
	ctx := context.Background()
	proctest.Eventually(t, 10*time.Second, "20 jobs running", func() bool {
		var n int
		_ = b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_jobs WHERE status = 'running'`).Scan(&n)
		return n == 20
	})
	crashing.Signal(syscall.SIGKILL)
	if code, _ := crashing.Wait(5 * time.Second); code != -int(syscall.SIGKILL) {
		t.Fatalf("worker exit = %d, want killed by SIGKILL", code)
	}
	survivor := b.startWorker(t, append(fast, "SPOOL_WORKER_ID=survivor", "SPOOL_QUEUES=default:20")...)

	for _, id := range ids {
		j := b.waitStatus(t, id, jobqueue.StatusCompleted, 30*time.Second)
		if j.Attempts != 2 || len(j.Errors) != 1 {
			t.Fatalf("job %d: attempts %d, errors %+v; want 2 attempts and one recorded loss", id, j.Attempts, j.Errors)
		}
		if e := j.Errors[0]; e.WorkerID != "doomed" || e.Attempt != 1 || e.Error != "worker lost: lease expired" {
			t.Errorf("job %d loss record = %+v, want attempt 1 of worker doomed, lease expired", id, e)
		}
		if *j.WorkerID != "survivor" {
			t.Errorf("job %d completed by %q, want survivor", id, *j.WorkerID)
		}
	}
	stopClean(t, survivor, 10*time.Second)
}

// span is one attempt of a job as its worker logged it.
type span struct {
	start, end time.Time
	worker     string
}

func TestThreeWorkersFlakyJobsNoneRunsConcurrentlyTwice(t *testing.T) {
	b := setup(t)
	const n, flakyEvery = 10_000, 5 // 20% fail once
	var workers []*proctest.Proc
	for i := range 3 {
		workers = append(workers, b.startWorker(t, fmt.Sprintf("SPOOL_WORKER_ID=w%d", i), "SPOOL_BACKOFF_BASE=10ms",
			"SPOOL_BACKOFF_MAX=50ms", "SPOOL_POLL_INTERVAL=100ms"))
	}
	params := make([]jobqueue.EnqueueParams, n)
	for i := range params {
		params[i] = jobqueue.EnqueueParams{Kind: "noop", Payload: diagnostic.Noop{Seq: int64(i)}}
		if i%flakyEvery == 0 {
			params[i] = jobqueue.EnqueueParams{Kind: "fail", Payload: diagnostic.Fail{Message: "flaky", Times: 1}}
		}
	}
	wantAttempts := map[int64]int{}
	ctx := context.Background()
	for i := 0; i < n; i += 1000 {
		res, err := b.client.EnqueueMany(ctx, params[i:i+1000])
		if err != nil {
			t.Fatal(err)
		}
		for k, r := range res {
			wantAttempts[r.ID] = map[bool]int{true: 2, false: 1}[params[i+k].Kind == "fail"]
		}
	}
	proctest.Eventually(t, 120*time.Second, "all jobs completed", func() bool {
		var done int
		_ = b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_jobs WHERE status = 'completed'`).Scan(&done)
		return done == n
	})
	for _, w := range workers {
		stopClean(t, w, 10*time.Second)
	}

	rows, err := b.db.Pool.Query(ctx, `SELECT id, attempts FROM spool.spool_jobs`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]int{}
	for rows.Next() {
		var id int64
		var a int
		if err := rows.Scan(&id, &a); err != nil {
			t.Fatal(err)
		}
		got[id] = a
	}
	for id, want := range wantAttempts {
		if got[id] != want {
			t.Errorf("job %d attempts = %d, want %d", id, got[id], want)
		}
	}
	assertNoOverlap(t, workers, wantAttempts)
}

// assertNoOverlap checks from the workers' logs that no job had two attempts
// running at the same time, and that each job ran as often as it should.
func assertNoOverlap(t *testing.T, workers []*proctest.Proc, wantAttempts map[int64]int) {
	t.Helper()
	open := map[string]time.Time{} // worker/job -> start
	spans := map[int64][]span{}
	for _, w := range workers {
		for _, msg := range []string{"job started", "job completed", "job failed, will retry"} {
			for _, l := range w.JSONLines(msg) {
				at, _ := time.Parse(time.RFC3339Nano, l["time"].(string))
				id, worker := int64(l["job_id"].(float64)), l["worker_id"].(string)
				key := fmt.Sprintf("%s/%d/%v", worker, id, l["attempt"])
				if msg == "job started" {
					open[key] = at
				} else {
					spans[id] = append(spans[id], span{start: open[key], end: at, worker: worker})
				}
			}
		}
	}
	for id, want := range wantAttempts {
		s := spans[id]
		if len(s) != want {
			t.Errorf("job %d: %d attempts logged, want %d", id, len(s), want)
			continue
		}
		sort.Slice(s, func(i, j int) bool { return s[i].start.Before(s[j].start) })
		for i := 1; i < len(s); i++ {
			if s[i].start.Before(s[i-1].end) {
				t.Errorf("job %d: attempt on %s started %s before the attempt on %s ended", id, s[i].worker, s[i-1].end.Sub(s[i].start), s[i-1].worker)
			}
		}
	}
}

func TestAlwaysFailingJobDiesAfterMaxAttemptsWithBoundedGaps(t *testing.T) {
	b := setup(t)
	w := b.startWorker(t, "SPOOL_POLL_INTERVAL=50ms")
	backoff := jobqueue.Backoff{Base: 200 * time.Millisecond, Max: time.Second}
	job := b.enqueue(t, diagnostic.Fail{Message: "nope"}, jobqueue.EnqueueParams{MaxAttempts: 5, BackoffBase: backoff.Base, BackoffMax: backoff.Max})
	dead := b.waitStatus(t, job.ID, jobqueue.StatusDead, 20*time.Second)
	if dead.Attempts != 5 || len(dead.Errors) != 5 {
		t.Fatalf("attempts = %d, errors = %d; want exactly 5 and 5", dead.Attempts, len(dead.Errors))
	}
	// Between failure n and failure n+1 lie the backoff delay, in [d/2, d],
	// plus the claim (up to one poll interval) and the handler (instant).
	const slack = 250 * time.Millisecond
	for n := 1; n < 5; n++ {
		gap := dead.Errors[n].At.Sub(dead.Errors[n-1].At)
		lo, hi := backoff.Ceiling(n)/2, backoff.Ceiling(n)+slack
		t.Logf("gap after attempt %d: %s (bounds %s..%s)", n, gap.Round(time.Millisecond), lo, hi)
		if gap < lo || gap > hi {
			t.Errorf("gap after attempt %d = %s, want within [%s, %s]", n, gap, lo, hi)
		}
	}
	stopClean(t, w, 5*time.Second)
}
