package main_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/diagnostic"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/proctest"
)

// The log lines a partition leaves, as the workers write them.
const (
	lineStarted   = "job started"
	lineCompleted = "job completed"
	lineExpired   = "lease not renewed in time: handler cancelled before the lease could run out"
	lineDiscarded = "job was taken away while running (cancelled, rescued, or its lease not renewed in time); outcome discarded"
	lineRescued   = "rescued job of lost worker"
)

// TestPartitionedWorkerStopsItsJobsBeforeTheyAreRescued cuts worker A off
// PostgreSQL with a frozen proxy (its pool and its LISTEN connection both
// go through it; connections stay open, nothing gets through) for 15 s with
// a 3 s lease, while A runs six 10 s jobs, and worker B, connected directly,
// rescues them. Three rounds, each freezing at a random point of A's renewal
// cycle. In every round: A cancels each handler within one lease of the
// freeze (its local expiry: the last successful renewal's send + lease −
// lease/10); B re-runs a job only after A's attempt of it ended, so no two
// executions of a job overlap; every job is completed once, by B, with A's
// lost attempt in its history; and after the thaw A writes nothing for its
// stale attempts (its leases count as expired, none as taken).
func TestPartitionedWorkerStopsItsJobsBeforeTheyAreRescued(t *testing.T) {
	b := setup(t)
	const (
		lease     = 3 * time.Second
		n         = 6
		rounds    = 3
		freezeFor = 15 * time.Second
		jobMs     = 10_000
	)
	direct, err := url.Parse(b.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := proctest.StartProxy(t, direct.Host)
	viaProxy := *direct
	viaProxy.Host = proxy.Addr()
	common := []string{"SPOOL_LEASE_DURATION=" + lease.String(), "SPOOL_RESCUE_INTERVAL=300ms",
		"SPOOL_BACKOFF_BASE=100ms", "SPOOL_BACKOFF_MAX=100ms", fmt.Sprintf("SPOOL_QUEUES=default:%d", n)}
	aAdmin := proctest.FreeAddr(t)
	a := b.startWorker(t, append(common, "SPOOL_WORKER_ID=a", "SPOOL_ADMIN_ADDR="+aAdmin,
		"SPOOL_DATABASE_URL="+viaProxy.String(), "SPOOL_LISTEN_DATABASE_URL="+viaProxy.String())...)
	if !a.WaitOutput("worker started", 20*time.Second) {
		t.Fatal("worker A did not start")
	}
	ctx := context.Background()

	var worst time.Duration // the longest freeze-to-cancel of all rounds
	overlaps := 0
	for round := 1; round <= rounds; round++ {
		var ids []int64
		for range n {
			ids = append(ids, b.enqueue(t, diagnostic.Sleep{Ms: jobMs}, jobqueue.EnqueueParams{}).ID)
		}
		proctest.Eventually(t, 20*time.Second, fmt.Sprintf("round %d: A to run all %d jobs", round, n), func() bool {
			var k int
			_ = b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_jobs WHERE id = ANY($1) AND status = 'running'
				AND worker_id = 'a'`, ids).Scan(&k)
			return k == n
		})
		bID := fmt.Sprint("b", round)
		bw := b.startWorker(t, append(common, "SPOOL_WORKER_ID="+bID)...)
		if !bw.WaitOutput("worker started", 20*time.Second) {
			t.Fatalf("round %d: worker B did not start", round)
		}
		time.Sleep(rand.N(lease / 3)) // anywhere in A's renewal cycle

		proxy.Freeze()
		frozeAt := time.Now()
		// Not fatal: without local expiry the test goes on to count overlaps.
		for deadline := frozeAt.Add(3 * lease); len(byJob(a, lineExpired, "a", ids)) < n && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Until(frozeAt.Add(freezeFor)))
		emptyPolls := `spool_worker_polls_total{result="empty"}`
		before := scrape(t, aAdmin, emptyPolls)
		proxy.Thaw()
		for _, id := range ids {
			b.waitStatus(t, id, jobqueue.StatusCompleted, 30*time.Second)
		}
		// A, reconnected, claims again: a stale write of its would have been
		// sent by now.
		proctest.Eventually(t, 20*time.Second, fmt.Sprintf("round %d: A to claim again after the thaw", round), func() bool {
			return scrape(t, aAdmin, emptyPolls) >= before+3
		})
		stopClean(t, bw, 15*time.Second)

		endedAt := time.Now() // an attempt that has not ended yet ends here, for counting overlaps
		expired := byJob(a, lineExpired, "a", ids)
		aStart, aEnd := byJob(a, lineStarted, "a", ids), byJob(a, lineDiscarded, "a", ids)
		bStart, bEnd := byJob(bw, lineStarted, bID, ids), byJob(bw, lineCompleted, bID, ids)
		rescued := byJob(bw, lineRescued, bID, ids)
		var cancels, margins []time.Duration
		for _, id := range ids {
			j := b.job(t, id)
			if j.Attempts != 2 || j.WorkerID == nil || *j.WorkerID != bID || len(j.Errors) != 1 ||
				j.Errors[0].WorkerID != "a" || j.Errors[0].Attempt != 1 || j.Errors[0].Error != "worker lost: lease expired" {
				t.Errorf("round %d: job %d: attempts %d, worker %v, errors %+v; want completed by %s on attempt 2 after attempt 1 on a was lost",
					round, id, j.Attempts, deref(j.WorkerID), j.Errors, bID)
			}
			// A's stale attempt writes nothing: it neither tries to (an
			// outcome other than "discarded") nor is refused.
			end := first(aEnd[id], endedAt)
			for _, msg := range []string{lineCompleted, "job failed, will retry", "job dead", "job snoozed",
				"job handed back on shutdown", "outcome not written: job no longer held by this worker"} {
				if got := byJob(a, msg, "a", []int64{id})[id]; len(got) > 0 {
					t.Errorf("round %d: job %d: A logged %q for its stale attempt; want nothing written", round, id, msg)
					end = first(append(got, end), end)
				}
			}
			if len(aStart[id]) != 1 || len(aEnd[id]) != 1 || len(bStart[id]) != 1 || len(bEnd[id]) != 1 {
				t.Errorf("round %d: job %d: A logged %d starts, %d discarded outcomes; B %d starts, %d completions; want one of each",
					round, id, len(aStart[id]), len(aEnd[id]), len(bStart[id]), len(bEnd[id]))
			}
			if len(expired[id]) != 1 {
				t.Errorf("round %d: job %d: A logged %d local expiries within %s of the freeze, want 1", round, id, len(expired[id]), 3*lease)
			} else {
				cancel := expired[id][0].Sub(frozeAt)
				cancels = append(cancels, cancel.Round(time.Millisecond))
				worst = max(worst, cancel)
				if cancel > lease {
					t.Errorf("round %d: job %d: A cancelled its handler %s after the freeze; want within the lease (%s)", round, id, cancel, lease)
				}
			}
			// A's execution ends when its handler has returned (the outcome
			// is discarded then); B's begins when it starts its handler.
			bBegan := first(bStart[id], endedAt)
			margin := bBegan.Sub(end)
			margins = append(margins, margin.Round(time.Millisecond))
			if margin <= 0 {
				overlaps++
				t.Errorf("round %d: job %d: B started it %s before A's attempt ended (A ran %s..%s, B from %s)", round, id, -margin,
					first(aStart[id], time.Time{}).Format(time.StampMilli), end.Format(time.StampMilli), bBegan.Format(time.StampMilli))
			}
			if r := rescued[id]; len(r) != 1 || !r[0].After(end) {
				t.Errorf("round %d: job %d: B's rescues at %v; want one, after A's attempt ended at %s", round, id, r, end)
			}
		}
		slices.Sort(cancels)
		slices.Sort(margins)
		t.Logf("round %d: freeze-to-cancel %v; A's end to B's start %v", round, cancels, margins)
		if got := scrape(t, aAdmin, `spool_worker_leases_lost_total{reason="expired"}`); got != float64(n*round) {
			t.Errorf("round %d: A's leases lost as expired = %v, want %d", round, got, n*round)
		}
		if got := scrape(t, aAdmin, `spool_worker_leases_lost_total{reason="taken"}`); got != 0 {
			t.Errorf("round %d: A's leases lost as taken = %v, want 0 (each was cancelled before it could be)", round, got)
		}
	}
	t.Logf("%d rounds: longest freeze-to-cancel %s (lease %s); %d overlapping executions", rounds, worst, lease, overlaps)
	stopClean(t, a, 15*time.Second)
}

// byJob is the times of p's lines msg of worker, by job, for ids.
func byJob(p *proctest.Proc, msg, worker string, ids []int64) map[int64][]time.Time {
	out := map[int64][]time.Time{}
	for _, l := range p.JSONLines(msg) {
		id, _ := l["job_id"].(float64)
		if l["worker_id"] != worker || !slices.Contains(ids, int64(id)) {
			continue
		}
		at, _ := time.Parse(time.RFC3339Nano, l["time"].(string))
		out[int64(id)] = append(out[int64(id)], at)
	}
	return out
}

// first is the earliest of ts, or def if there is none.
func first(ts []time.Time, def time.Time) time.Time {
	if len(ts) == 0 {
		return def
	}
	return slices.MinFunc(ts, time.Time.Compare)
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
