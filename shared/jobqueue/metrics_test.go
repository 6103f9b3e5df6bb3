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
	handlers := NewKinds()
	handlers.Handle("t", func(context.Context, *Job) error { return nil }, nil)
	w, err := NewWorker(b.client, handlers, WorkerConfig{ID: "rescuer", Queues: []QueueConfig{{Name: DefaultQueue, Concurrency: 1}},
		Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	w.rescuer.Grace = 0
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
		if _, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "t", MaxAttempts: attempts}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := b.claimErr(ctx, []string{"t"}, 10, "crashed", time.Millisecond); err != nil || len(got) != 2 {
		t.Fatalf("claimed %d (err %v), want 2", len(got), err)
	}
	time.Sleep(20 * time.Millisecond)
	w.rescuer.Run(ctx)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(head+`spool_jobs_rescued_total{status="dead",type="t"} 1
spool_jobs_rescued_total{status="retrying",type="t"} 1
`), "spool_jobs_rescued_total"); err != nil {
		t.Error(err)
	}
	if got := metricValue(t, reg, "spool_jobs_processed_total", "type", "t", "outcome", "dead"); got != 1 {
		t.Errorf(`spool_jobs_processed_total{type="t",outcome="dead"} = %v after rescuing a job out of attempts, want 1`, got)
	}

	// Nothing left to rescue: the counters stay.
	w.rescuer.Run(ctx)
	if n, err := testutil.GatherAndCount(reg, "spool_jobs_rescued_total"); err != nil || n != 2 {
		t.Errorf("%d rescued series (err %v), want 2", n, err)
	}
	if got := metricValue(t, reg, "spool_jobs_rescued_total", "type", "t", "status", string(StatusRetrying)); got != 1 {
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
	handlers := NewKinds()
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
		return metricValue(t, reg, "spool_worker_notify_wakeups_total")
	}
	if got := wakeups(); got != 0 {
		t.Fatalf("%v wake-ups before any insert, want 0", got)
	}
	enqueue := func() {
		t.Helper()
		res, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "one"})
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
	_, err := NewWorker(mustClient(t, nil, nil), NewKinds(), WorkerConfig{ID: "w", Metrics: NewMetrics(reg),
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

// metricValue is the value of the series of name with the given label
// pairs in g (0 when absent).
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}
