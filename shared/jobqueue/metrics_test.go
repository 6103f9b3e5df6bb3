package jobqueue

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRescueCountsRescuedJobs: the rescuer counts each job it returns in
// spool_jobs_rescued_total{type,status}, and one it makes dead also in
// spool_jobs_processed_total{outcome="dead"}.
func TestRescueCountsRescuedJobs(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	handlers := NewRegistry()
	handlers.Handle("t", func(context.Context, *Job) error { return nil }, nil)
	w, err := NewWorker(b.db.Pool, handlers, WorkerConfig{ID: "rescuer", Queues: []QueueConfig{{Name: DefaultQueue, Concurrency: 1}},
		Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	// Before any rescue: both series exist at zero.
	const head = `# HELP spool_jobs_rescued_total Running jobs of lost workers returned to the queue by this process's rescuer, by type and resulting status.
# TYPE spool_jobs_rescued_total counter
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(head+`spool_jobs_rescued_total{status="dead",type="t"} 0
spool_jobs_rescued_total{status="retrying",type="t"} 0
`), "spool_jobs_rescued_total"); err != nil {
		t.Fatal(err)
	}

	for _, attempts := range []int{3, 1} { // one retries, one is out of attempts
		if _, err := b.client.Enqueue(ctx, EnqueueParams{Type: "t", MaxAttempts: attempts}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := claim(ctx, b.db.Pool, DefaultQueue, []string{"t"}, 10, "crashed", time.Millisecond); err != nil || len(got) != 2 {
		t.Fatalf("claimed %d (err %v), want 2", len(got), err)
	}
	time.Sleep(20 * time.Millisecond)
	w.rescueOnce(ctx)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(head+`spool_jobs_rescued_total{status="dead",type="t"} 1
spool_jobs_rescued_total{status="retrying",type="t"} 1
`), "spool_jobs_rescued_total"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(w.cfg.Metrics.processed.WithLabelValues("t", OutcomeDead)); got != 1 {
		t.Errorf(`spool_jobs_processed_total{type="t",outcome="dead"} = %v after rescuing a job out of attempts, want 1`, got)
	}

	// Nothing left to rescue: the counters stay.
	w.rescueOnce(ctx)
	if n := testutil.CollectAndCount(w.cfg.Metrics.rescued); n != 2 {
		t.Errorf("%d rescued series, want 2", n)
	}
	if got := testutil.ToFloat64(w.cfg.Metrics.rescued.WithLabelValues("t", string(StatusRetrying))); got != 1 {
		t.Errorf("retrying rescues = %v after a second, empty rescue; want 1", got)
	}
}

// TestNotifyWakeupsCounted: each insert notification for a queue the
// worker serves counts once in spool_worker_notify_wakeups_total.
func TestNotifyWakeupsCounted(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	handlers := NewRegistry()
	handlers.Handle("one", func(context.Context, *Job) error { return nil }, nil)
	// An hour's poll interval: only notifications (and the listener's start)
	// wake the worker.
	b.runWorker(t, handlers, WorkerConfig{PollInterval: time.Hour, Metrics: m})
	wakeups := func() float64 {
		t.Helper()
		n, err := testutil.GatherAndCount(reg, "spool_worker_notify_wakeups_total")
		if err != nil || n != 1 {
			t.Fatalf("spool_worker_notify_wakeups_total: %d series (err %v), want 1", n, err)
		}
		return testutil.ToFloat64(m.wakeups)
	}
	if got := wakeups(); got != 0 {
		t.Fatalf("%v wake-ups before any insert, want 0", got)
	}
	enqueue := func() {
		t.Helper()
		res, err := b.client.Enqueue(ctx, EnqueueParams{Type: "one"})
		if err != nil {
			t.Fatal(err)
		}
		b.waitStatus(t, res.Job.ID, StatusCompleted)
	}
	// The listener may not be listening yet: the first jobs can be claimed
	// by the claim it runs when it starts, uncounted. Insert until one
	// notification arrives.
	deadline := time.Now().Add(10 * time.Second)
	for wakeups() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no notification counted in 10s of inserts")
		}
		enqueue()
	}
	before := wakeups()
	for range 3 {
		enqueue()
	}
	if got := wakeups() - before; got != 3 {
		t.Fatalf("%v wake-ups counted for 3 inserts, want 3", got)
	}
}

// The worker's capacity is exported, so an alert can tell a stuck worker
// with free slots from a busy one.
func TestJobSlotsGaugeIsTheQueuesConcurrency(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	_, err := NewWorker(nil, NewRegistry(), WorkerConfig{ID: "w", Metrics: NewMetrics(reg),
		Queues: []QueueConfig{{Name: DefaultQueue, Concurrency: 3}, {Name: "emails", Concurrency: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`# HELP spool_worker_job_slots Jobs this worker may run at once: the sum of its queues' concurrency.
# TYPE spool_worker_job_slots gauge
spool_worker_job_slots 7
`), "spool_worker_job_slots"); err != nil {
		t.Fatal(err)
	}
}
