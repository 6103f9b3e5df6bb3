package jobqueue

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/shared/jobqueue/internal/completer"
	"github.com/spoolq/spool/shared/jobqueue/internal/executor"
	"github.com/spoolq/spool/shared/jobqueue/internal/maintenance"
	"github.com/spoolq/spool/shared/jobqueue/internal/store"
	"github.com/spoolq/spool/shared/proctest"
)

// TestStaleAttemptOfTheSameWorkerCannotEndItsNewAttempt is issue 16's
// second defect: attempt 1 of a job loses its lease and is rescued, the
// same worker claims the job again (attempt 2), and only then does attempt
// 1's outcome arrive. The rescue clears worker_id, so nothing but the lease
// token tells the two attempts apart; attempt 1's write, of every kind, is
// refused, counts as nothing done, and attempt 2's own result stands.
func TestStaleAttemptOfTheSameWorkerCannotEndItsNewAttempt(t *testing.T) {
	cases := map[string]executor.Result{
		"plain completion (batched)": {Outcome: executor.Completed},
		"completion with a result":   {Outcome: executor.Completed, Value: []byte(`{"attempt":1}`)},
		"retried failure":            {Outcome: executor.Retried, Delay: time.Millisecond, Message: "stale failure"},
		"dead":                       {Outcome: executor.Dead, Message: "stale death"},
		"snooze":                     {Outcome: executor.Snoozed, Delay: time.Millisecond},
		"hand back":                  {Outcome: executor.HandedBack},
	}
	for name, stale := range cases {
		t.Run(name, func(t *testing.T) {
			b := setup(t)
			ctx := context.Background()
			res, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "t"})
			if err != nil {
				t.Fatal(err)
			}
			id := res.Job.ID
			claim := func(token int64, lease time.Duration) *store.Job {
				t.Helper()
				jobs, err := b.client.store.Claim(ctx, b.db.Pool, store.ClaimParams{Queue: DefaultQueue, Kinds: []string{"t"},
					Limit: 1, WorkerID: "w", Lease: lease, Token: token})
				if err != nil || len(jobs) != 1 || jobs[0].ID != id {
					t.Fatalf("claim with token %d: %d jobs (err %v), want job %d", token, len(jobs), err, id)
				}
				return jobs[0]
			}

			// Attempt 1's lease runs out and the rescuer takes the job.
			first := claim(1, time.Millisecond)
			time.Sleep(20 * time.Millisecond)
			if rescued, err := b.rescuer(nil).Once(ctx); err != nil || len(rescued) != 1 {
				t.Fatalf("rescued %d jobs (err %v), want 1", len(rescued), err)
			}
			j, _ := b.client.Get(ctx, id)
			if j.Status != StatusRetrying || j.WorkerID != nil || len(j.Errors) != 1 || j.Errors[0].WorkerID != "w" {
				t.Fatalf("after the rescue: status %s, worker %v, errors %+v; want retrying, no worker, the loss of w's attempt",
					j.Status, j.WorkerID, j.Errors)
			}
			// The same worker claims it again, as soon as it is due.
			if _, err := b.db.Pool.Exec(ctx, `UPDATE spool.spool_jobs SET run_at = now() WHERE id = $1`, id); err != nil {
				t.Fatal(err)
			}
			second := claim(2, time.Minute)
			if second.Attempts != 2 {
				t.Fatalf("second claim is attempt %d, want 2", second.Attempts)
			}

			// Attempt 1's outcome arrives now, with attempt 1's token.
			reg := prometheus.NewRegistry()
			var logs proctest.Buffer
			c := &completer.Completer{Store: b.client.store, DB: b.db.Pool, Enqueuer: b.client.enq, Workflows: b.client.workflows,
				Metrics: NewMetrics(reg).set(), Lease: time.Minute,
				Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			c.Start(ctx)
			c.Write(ctx, first, 1, stale)
			c.Close()
			j, _ = b.client.Get(ctx, id)
			if j.Status != StatusRunning || j.Attempts != 2 || j.WorkerID == nil || *j.WorkerID != "w" || len(j.Errors) != 1 ||
				j.Result != nil || j.LastError == nil || *j.LastError != maintenance.LostWorkerError {
				t.Fatalf("after attempt 1's %s: status %s, attempts %d, errors %+v, result %s, last error %v; want attempt 2 still running, untouched",
					name, j.Status, j.Attempts, j.Errors, j.Result, deref(j.LastError))
			}
			if got := metricValue(t, reg, "spool_jobs_processed_total", "type", "t", "outcome", stale.Outcome.String()); got != 0 {
				t.Errorf("attempt 1's refused %s counted as %s %v times, want 0", name, stale.Outcome, got)
			}
			for _, msg := range []string{`"job completed"`, `"job failed, will retry"`, `"job dead"`, `"job snoozed"`, `"job handed back on shutdown"`} {
				if strings.Contains(logs.String(), msg) {
					t.Errorf("attempt 1's refused %s was logged as %s:\n%s", name, msg, logs.String())
				}
			}

			// Attempt 2's own outcome is written.
			c.Start(ctx)
			c.Write(ctx, second, 2, executor.Result{Outcome: executor.Completed, Value: []byte(`{"attempt":2}`)})
			c.Close()
			j, _ = b.client.Get(ctx, id)
			if j.Status != StatusCompleted || string(j.Result) != `{"attempt": 2}` {
				t.Fatalf("after attempt 2's completion: status %s, result %s; want completed with attempt 2's result", j.Status, j.Result)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
