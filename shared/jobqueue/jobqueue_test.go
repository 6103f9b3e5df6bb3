package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spoolq/spool/shared/jobqueue/internal/maintenance"
	"github.com/spoolq/spool/shared/jobqueue/internal/store"
	"github.com/spoolq/spool/shared/pgtest"
)

type bundle struct {
	db     *pgtest.DB
	client *Client
}

func setup(t *testing.T) *bundle {
	t.Helper()
	t.Parallel()
	db := pgtest.New(t)
	return &bundle{db: db, client: mustClient(t, db.Pool, nil)}
}

// runWorker starts an in-process worker and stops it at cleanup.
func (b *bundle) runWorker(t testing.TB, reg *Kinds, cfg WorkerConfig) {
	t.Helper()
	b.startWorker(t, reg, cfg)
}

// startWorker is runWorker, returning the worker.
func (b *bundle) startWorker(t testing.TB, reg *Kinds, cfg WorkerConfig) *Worker {
	t.Helper()
	if cfg.ID == "" {
		cfg.ID = "test-worker"
	}
	if cfg.Queues == nil {
		cfg.Queues = []QueueConfig{{Name: DefaultQueue, Concurrency: 4}}
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w, err := NewWorker(b.client, reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (b *bundle) waitStatus(t *testing.T, id int64, want Status) *Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := b.client.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d is %s, want %s", id, j.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEnqueueTxIsVisibleOnlyAfterCommit(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	ran := make(chan int64, 4)
	reg := NewKinds()
	reg.Handle("tx_job", func(_ context.Context, j *Job) error { ran <- j.ID; return nil }, nil)
	b.runWorker(t, reg, WorkerConfig{PollInterval: time.Hour}) // only a notification can wake it

	tx, err := b.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.EnqueueTx(ctx, tx, EnqueueParams{Kind: "tx_job"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_jobs`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("after rollback: %d jobs (err %v), want 0", n, err)
	}

	var committed int64
	err = pgx.BeginFunc(ctx, b.db.Pool, func(tx pgx.Tx) error {
		res, err := b.client.EnqueueTx(ctx, tx, EnqueueParams{Kind: "tx_job"})
		committed = res.Job.ID
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-ran:
		if id != committed {
			t.Fatalf("worker ran job %d, want %d", id, committed)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("committed job not picked up (the insert notification did not wake the worker)")
	}
	b.waitStatus(t, committed, StatusCompleted)
}

func TestClaimOrdersByPriorityThenRunAtThenID(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	past := time.Now().Add(-time.Minute)
	var want []int64
	for _, p := range []EnqueueParams{
		{Kind: "t", Priority: 0},
		{Kind: "t", Priority: 5},
		{Kind: "t", Priority: 5, RunAt: past},
		{Kind: "t", Priority: -1},
		{Kind: "t", Priority: 0},
		{Kind: "t", Priority: 9, RunAt: time.Now().Add(time.Hour)}, // not due
	} {
		res, err := b.client.Enqueue(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res.Job.ID)
	}
	jobs, err := b.claimErr(ctx, []string{"t"}, 10, "w", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	order := []int64{want[2], want[1], want[0], want[4], want[3]}
	if len(jobs) != len(order) {
		t.Fatalf("claimed %d jobs, want %d (the future job must not be claimed)", len(jobs), len(order))
	}
	for i, j := range jobs {
		if j.ID != order[i] || j.Status != StatusRunning || j.Attempts != 1 || j.LeaseUntil == nil {
			t.Errorf("claim[%d] = id %d %s attempt %d, want id %d running attempt 1 with a lease", i, j.ID, j.Status, j.Attempts, order[i])
		}
	}
}

func TestClaimSkipsUnregisteredTypesAndOtherQueues(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	for _, p := range []EnqueueParams{{Kind: "other"}, {Kind: "t", Queue: "emails"}} {
		if _, err := b.client.Enqueue(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := b.claimErr(ctx, []string{"t"}, 10, "w", time.Minute)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("claimed %d jobs (err %v), want none", len(jobs), err)
	}
}

func TestBackoffStaysWithinDocumentedBounds(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: time.Second, Max: 10 * time.Second}
	for _, tc := range []struct {
		retry   int
		ceiling time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second}, {5, 10 * time.Second}, {40, 10 * time.Second}} {
		if got := b.Ceiling(tc.retry); got != tc.ceiling {
			t.Errorf("Ceiling(%d) = %s, want %s", tc.retry, got, tc.ceiling)
		}
		for range 200 {
			if d := b.Delay(tc.retry); d < tc.ceiling/2 || d > tc.ceiling {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", tc.retry, d, tc.ceiling/2, tc.ceiling)
			}
		}
	}
}

func TestTimeoutFailsJobEvenIfHandlerIgnoresContext(t *testing.T) {
	b := setup(t)
	release := make(chan struct{})
	defer close(release)
	reg := NewKinds()
	reg.Handle("stuck", func(context.Context, *Job) error { <-release; return nil }, &KindOpts{Policy: Policy{Timeout: 100 * time.Millisecond}})
	reg.Handle("quick", func(context.Context, *Job) error { return nil }, nil)
	b.runWorker(t, reg, WorkerConfig{Queues: []QueueConfig{{Name: DefaultQueue, Concurrency: 1}}})

	res, err := b.client.Enqueue(context.Background(), EnqueueParams{Kind: "stuck", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	dead := b.waitStatus(t, res.Job.ID, StatusDead)
	if len(dead.Errors) != 1 || !strings.Contains(dead.Errors[0].Error, "job timed out") {
		t.Fatalf("errors = %+v, want one timeout error", dead.Errors)
	}
	// The single slot must be free again although the handler never returned.
	quick, err := b.client.Enqueue(context.Background(), EnqueueParams{Kind: "quick"})
	if err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, quick.Job.ID, StatusCompleted)
}

func TestCancelStopsRunningJobThroughHeartbeat(t *testing.T) {
	b := setup(t)
	cause := make(chan error, 1)
	reg := NewKinds()
	reg.Handle("long", func(ctx context.Context, _ *Job) error {
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	}, nil)
	b.runWorker(t, reg, WorkerConfig{LeaseDuration: 300 * time.Millisecond})
	res, err := b.client.Enqueue(context.Background(), EnqueueParams{Kind: "long"})
	if err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, res.Job.ID, StatusRunning)
	if _, err := b.client.Cancel(context.Background(), res.Job.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-cause:
		if !errors.Is(err, ErrJobLost) {
			t.Fatalf("handler context cause = %v, want ErrJobLost", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("cancelled job's handler was not stopped")
	}
	if j := b.waitStatus(t, res.Job.ID, StatusCancelled); j.LastError != nil {
		t.Fatalf("cancelled job got an error written: %v", *j.LastError)
	}
}

func TestRescueReturnsJobsWithExpiredLeases(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	for _, attempts := range []int{3, 1} {
		if _, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "t", MaxAttempts: attempts}); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := b.claimErr(ctx, []string{"t"}, 10, "crashed", time.Millisecond)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claimed %d (err %v), want 2", len(claimed), err)
	}
	time.Sleep(20 * time.Millisecond)
	rescued, err := b.rescuer(nil).Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]Status{}
	for _, r := range rescued {
		got[r.ID] = r.Status
		if r.WorkerID != "crashed" {
			t.Errorf("rescued job %d lost worker = %q, want crashed", r.ID, r.WorkerID)
		}
	}
	want := map[int64]Status{claimed[0].ID: StatusRetrying, claimed[1].ID: StatusDead}
	for id, st := range want {
		if got[id] != st {
			t.Errorf("job %d rescued as %q, want %q", id, got[id], st)
		}
		j, _ := b.client.Get(ctx, id)
		if len(j.Errors) != 1 || j.Errors[0].Error != maintenance.LostWorkerError || j.Errors[0].WorkerID != "crashed" {
			t.Errorf("job %d history = %+v, want one worker-lost entry", id, j.Errors)
		}
	}
	again, err := b.rescuer(nil).Once(ctx)
	if err != nil || len(again) != 0 {
		t.Fatalf("second rescue returned %d jobs (err %v), want 0", len(again), err)
	}
}

func TestSnoozeDoesNotSpendAnAttempt(t *testing.T) {
	b := setup(t)
	const snooze = 300 * time.Millisecond
	var mu sync.Mutex
	var runs []time.Time
	reg := NewKinds()
	reg.Handle("snoozy", func(context.Context, *Job) error {
		mu.Lock()
		defer mu.Unlock()
		runs = append(runs, time.Now())
		if len(runs) < 3 {
			return Snooze(snooze)
		}
		return nil
	}, nil)
	b.runWorker(t, reg, WorkerConfig{})
	res, err := b.client.Enqueue(context.Background(), EnqueueParams{Kind: "snoozy", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	j := b.waitStatus(t, res.Job.ID, StatusCompleted)
	if j.Attempts != 1 || len(j.Errors) != 0 {
		t.Fatalf("attempts = %d, errors = %d; want 1 and 0 after two snoozes", j.Attempts, len(j.Errors))
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(runs); i++ {
		if gap := runs[i].Sub(runs[i-1]); gap < snooze-20*time.Millisecond {
			t.Errorf("run %d came %s after the snooze of %s: too early", i+1, gap, snooze)
		}
	}
}

func TestPermanentErrorGoesStraightToDead(t *testing.T) {
	b := setup(t)
	reg := NewKinds()
	reg.Handle("declined", func(context.Context, *Job) error { return Permanent(errors.New("card declined")) }, nil)
	b.runWorker(t, reg, WorkerConfig{})
	res, err := b.client.Enqueue(context.Background(), EnqueueParams{Kind: "declined", MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	if j := b.waitStatus(t, res.Job.ID, StatusDead); j.Attempts != 1 {
		t.Fatalf("attempts = %d, want 1", j.Attempts)
	}
}

func TestBatchEnqueueMapsResultsToInputOrder(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	first, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "t", IdempotencyKey: "k-old"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.client.EnqueueMany(ctx, []EnqueueParams{
		{Kind: "a"}, {Kind: "b", IdempotencyKey: "k-old"}, {Kind: "c", IdempotencyKey: "k-new"}, {Kind: "d"}, {Kind: "e", IdempotencyKey: "k-new"},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantDup := []bool{false, true, false, false, true}
	for i, r := range res {
		if r.Duplicate != wantDup[i] {
			t.Errorf("result %d duplicate = %v, want %v", i, r.Duplicate, wantDup[i])
		}
	}
	if res[1].ID != first.Job.ID || res[4].ID != res[2].ID {
		t.Errorf("duplicates point at %d and %d, want %d and %d", res[1].ID, res[4].ID, first.Job.ID, res[2].ID)
	}
	for i, typ := range map[int]string{0: "a", 2: "c", 3: "d"} {
		j, err := b.client.Get(ctx, res[i].ID)
		if err != nil || j.Kind != typ {
			t.Errorf("result %d is job of type %q (err %v), want %q", i, j.Kind, err, typ)
		}
	}
}

// The gauges have a series per queue that a live worker serves or an
// operator declared (here: paused); the queues clients merely name are
// summed under "_other", so inventing 300 queues adds no series.
func TestQueueGaugesReflectTable(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	queues := []string{"default", "default", "emails"}
	for i := range 300 {
		queues = append(queues, fmt.Sprintf("invented-%d", i))
	}
	for _, q := range queues {
		if _, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "t", Queue: q, RunAt: time.Now().Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.client.SetPaused(ctx, "emails", true); err != nil {
		t.Fatal(err)
	}
	reg := NewKinds()
	reg.Handle("not-t", func(context.Context, *Job) error { return nil }, nil)
	b.runWorker(t, reg, WorkerConfig{}) // serves default
	waitFor(t, "a live worker", func() bool {
		ws, err := b.client.Workers(ctx)
		return err == nil && len(ws) == 1 && ws[0].Live
	})
	registry := prometheus.NewRegistry()
	g := NewQueueGauges(NewCountsCache(b.client, 0), registry)
	if err := g.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		queue string
		want  float64
	}{{"default", 2}, {"emails", 1}, {"_other", 300}} {
		if got := testutil.ToFloat64(g.jobs.WithLabelValues(tc.queue, "pending")); got != tc.want {
			t.Errorf("spool_queue_jobs{queue=%q,status=pending} = %v, want %v", tc.queue, got, tc.want)
		}
		if age := testutil.ToFloat64(g.age.WithLabelValues(tc.queue)); age < 59 {
			t.Errorf("oldest due age of %s = %v, want about 60s", tc.queue, age)
		}
	}
	if n := testutil.CollectAndCount(g.jobs); n != 3*len(AllStatuses) {
		t.Errorf("spool_queue_jobs has %d series, want %d (3 queues)", n, 3*len(AllStatuses))
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 10 s", what)
		}
	}
}

func TestPruneDeletesOnlyJobsPastRetention(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	// Finished an hour ago: completed, cancelled, dead; and a fresh completed one.
	_, err := b.db.Pool.Exec(ctx, `INSERT INTO spool.spool_jobs (type, status, finished_at)
		SELECT 't', s, now() - interval '1 hour' FROM unnest(ARRAY['completed','cancelled','dead']) s
		UNION ALL SELECT 't', 'completed', now()
		UNION ALL SELECT 't', 'pending', NULL`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Pool.Exec(ctx, `INSERT INTO spool.spool_effects (key, created_at) VALUES ('old', now() - interval '2 hours'), ('new', now())`); err != nil {
		t.Fatal(err)
	}
	r := Retention{Completed: 30 * time.Minute, Cancelled: 30 * time.Minute, Dead: 2 * time.Hour, Effects: time.Hour}
	if n := b.pruner(r).Once(ctx); n != 3 {
		t.Errorf("pruned %d rows, want 3 (old completed, old cancelled, old effect)", n)
	}
	rows, err := b.db.Pool.Query(ctx, `SELECT status FROM spool.spool_jobs ORDER BY status`)
	if err != nil {
		t.Fatal(err)
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(left, ",") != "completed,dead,pending" {
		t.Errorf("jobs left = %v, want the fresh completed, the dead (kept longer) and the pending one", left)
	}
}

func TestPruneWorksInBatches(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	if _, err := b.db.Pool.Exec(ctx, `INSERT INTO spool.spool_jobs (type, status, finished_at)
		SELECT 't', 'completed', now() - interval '2 days' FROM generate_series(1, 2500)`); err != nil {
		t.Fatal(err)
	}
	n, err := b.client.store.Prune(ctx, b.db.Pool, StatusCompleted, 24*time.Hour)
	if err != nil || n != store.PruneBatch {
		t.Fatalf("one prune call deleted %d (err %v), want one batch of %d", n, err, store.PruneBatch)
	}
	if total := b.pruner(DefaultRetention).Once(ctx); total != 1500 {
		t.Fatalf("pruneOnce deleted %d, want the remaining 1500", total)
	}
}

func TestRetryAndDeleteDeadByFilter(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	_, err := b.db.Pool.Exec(ctx, `INSERT INTO spool.spool_jobs (type, queue, status, attempts, finished_at, errors)
		VALUES ('a', 'default', 'dead', 3, now(), '[{"attempt":3,"error":"x"}]'),
		       ('a', 'emails', 'dead', 3, now(), '[]'),
		       ('b', 'default', 'dead', 3, now(), '[]'),
		       ('a', 'default', 'completed', 1, now(), '[]')`)
	if err != nil {
		t.Fatal(err)
	}
	n, err := b.client.RetryDead(ctx, DeadFilter{Kind: "a", Queue: "default"})
	if err != nil || n != 1 {
		t.Fatalf("RetryDead = %d (err %v), want 1", n, err)
	}
	jobs, err := b.client.List(ctx, ListParams{Status: StatusPending, Limit: 10})
	if err != nil || len(jobs) != 1 || jobs[0].Attempts != 0 || len(jobs[0].Errors) != 1 {
		t.Fatalf("retried jobs = %+v (err %v), want one pending with attempts reset and history kept", jobs, err)
	}
	n, err = b.client.DeleteDead(ctx, DeadFilter{Kind: "a"})
	if err != nil || n != 1 {
		t.Fatalf("DeleteDead(type a) = %d (err %v), want 1 (the emails one)", n, err)
	}
	n, err = b.client.DeleteDead(ctx, DeadFilter{})
	if err != nil || n != 1 {
		t.Fatalf("DeleteDead(all) = %d (err %v), want 1", n, err)
	}
}

func TestOnceRunsEffectOnlyOnce(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	if _, err := b.db.Pool.Exec(ctx, `CREATE TABLE outbox (effect_key text, job_id bigint)`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ran := make(chan bool, 10)
	for range 10 {
		wg.Go(func() {
			did, err := b.client.Once(ctx, "email:1", 1, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO outbox (effect_key, job_id) VALUES ('email:1', 1)`)
				return err
			})
			if err != nil {
				t.Error(err)
			}
			ran <- did
		})
	}
	wg.Wait()
	close(ran)
	count := 0
	for did := range ran {
		if did {
			count++
		}
	}
	var emails int
	_ = b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&emails)
	if count != 1 || emails != 1 {
		t.Fatalf("effect ran %d times, %d emails recorded; want 1 and 1", count, emails)
	}
	// A failing effect leaves no ledger entry, so a retry can still do it.
	if _, err := b.client.Once(ctx, "email:2", 2, func(pgx.Tx) error { return errors.New("smtp down") }); err == nil {
		t.Fatal("Once returned no error for a failing effect")
	}
	did, err := b.client.Once(ctx, "email:2", 2, func(pgx.Tx) error { return nil })
	if err != nil || !did {
		t.Fatalf("retry after a failed effect ran = %v (err %v), want true", did, err)
	}
}

func TestEnqueueManyFastCopiesAndWakesWorkers(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	ran := make(chan int64, 100)
	reg := NewKinds()
	reg.Handle("bulk", func(_ context.Context, j *Job) error { ran <- j.ID; return nil }, nil)
	b.runWorker(t, reg, WorkerConfig{PollInterval: time.Hour})
	params := make([]EnqueueParams, 50)
	for i := range params {
		params[i] = EnqueueParams{Kind: "bulk", Payload: map[string]int{"i": i}, Priority: i % 3}
	}
	params[7].RunAt = time.Now().Add(time.Hour)
	n, err := b.client.EnqueueManyFast(ctx, params)
	if err != nil || n != 50 {
		t.Fatalf("copied %d (err %v), want 50", n, err)
	}
	for range 49 {
		select {
		case <-ran:
		case <-time.After(5 * time.Second):
			t.Fatal("copied jobs did not wake the worker")
		}
	}
	if _, err := b.client.EnqueueManyFast(ctx, []EnqueueParams{{Kind: "bulk", IdempotencyKey: "k"}}); err == nil {
		t.Fatal("a keyed job was accepted by COPY")
	}
}

// A worker whose slots are all busy, with more jobs waiting, must sleep until
// a slot frees up: it once woke every 100 µs, burning a few percent of a core.
func TestBusyWorkerDoesNotSpin(t *testing.T) {
	b := setup(t)
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(2)
	reg := NewKinds()
	reg.Handle("slow", func(context.Context, *Job) error { started.Done(); <-release; return nil }, nil)
	w := b.startWorker(t, reg, WorkerConfig{Queues: []QueueConfig{{Name: DefaultQueue, Concurrency: 2}}})
	defer close(release)
	// Idle first, so that the next poll time is set and then passes while
	// the slots are busy.
	time.Sleep(200 * time.Millisecond)
	for range 4 {
		if _, err := b.client.Enqueue(context.Background(), EnqueueParams{Kind: "slow"}); err != nil {
			t.Fatal(err)
		}
	}
	started.Wait()
	p := w.producers[DefaultQueue]
	before := p.Wakeups.Load()
	time.Sleep(time.Second)
	// The poll interval is 100 ms here: about ten wake-ups a second.
	if n := p.Wakeups.Load() - before; n > 40 {
		t.Fatalf("busy producer woke %d times in a second", n)
	}
}

// Claim rounds in flight together reserve their slots: a worker never runs
// more jobs of a queue at once than the queue's concurrency.
func TestClaimRoundsNeverExceedConcurrency(t *testing.T) {
	b := setup(t)
	var mu sync.Mutex
	running, most := 0, 0
	reg := NewKinds()
	reg.Handle("short", func(context.Context, *Job) error {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	}, nil)
	ps := make([]EnqueueParams, 2000)
	for i := range ps {
		ps[i] = EnqueueParams{Kind: "short"}
	}
	if _, err := b.client.EnqueueManyFast(context.Background(), ps); err != nil {
		t.Fatal(err)
	}
	b.startWorker(t, reg, WorkerConfig{Queues: []QueueConfig{{Name: DefaultQueue, Concurrency: 7}}, MaxClaim: 3})
	deadline := time.Now().Add(30 * time.Second)
	for {
		var left int
		if err := b.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM spool.spool_jobs WHERE status <> 'completed'`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs not completed", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if most > 7 || most < 4 {
		t.Fatalf("at most %d jobs ran at once, want between 4 and 7 (concurrency 7)", most)
	}
}

// An idle worker woken for one job claims once: a second round launched
// before the first had reserved its slots would claim again for nothing.
func TestOneNotificationOneClaim(t *testing.T) {
	b := setup(t)
	metrics := prometheus.NewRegistry()
	m := NewMetrics(metrics)
	reg := NewKinds()
	reg.Handle("one", func(context.Context, *Job) error { return nil }, nil)
	b.runWorker(t, reg, WorkerConfig{PollInterval: time.Hour, Metrics: m})
	time.Sleep(200 * time.Millisecond) // the start-up claim has come back empty
	polls := func() float64 {
		return metricValue(t, metrics, "spool_worker_polls_total", "result", "jobs") + metricValue(t, metrics, "spool_worker_polls_total", "result", "empty")
	}
	before := polls()
	for range 5 {
		res, err := b.client.Enqueue(context.Background(), EnqueueParams{Kind: "one"})
		if err != nil {
			t.Fatal(err)
		}
		b.waitStatus(t, res.Job.ID, StatusCompleted)
	}
	if n := polls() - before; n != 5 {
		t.Fatalf("%v claims for 5 jobs enqueued one at a time, want 5", n)
	}
}

func mustClient(t testing.TB, pool *pgxpool.Pool, opts *ClientOpts) *Client {
	t.Helper()
	c, err := NewClient(pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// claim takes up to n due jobs of kinds for workerID, as a worker would,
// with leases of lease; the attempts' token is returned with them.
func (b *bundle) claim(t *testing.T, kinds []string, n int, workerID string, lease time.Duration) ([]*Job, int64) {
	t.Helper()
	const token = 42
	jobs, err := b.client.store.Claim(context.Background(), b.db.Pool, store.ClaimParams{Queue: DefaultQueue, Kinds: kinds,
		Limit: n, WorkerID: workerID, Lease: lease, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return jobs, token
}

// rescuer is the rescuer a worker with default settings runs, without the
// grace period, so expired leases are rescued at once.
func (b *bundle) rescuer(m *Metrics) *maintenance.Rescuer {
	return &maintenance.Rescuer{Store: b.client.store, DB: b.db.Pool, Workflows: b.client.workflows, Backoff: DefaultBackoff,
		Metrics: m.set(), Log: slog.New(slog.DiscardHandler)}
}

func (b *bundle) pruner(r Retention) *maintenance.Pruner {
	return &maintenance.Pruner{Store: b.client.store, DB: b.db.Pool, Log: slog.New(slog.DiscardHandler),
		Retention: maintenance.Retention{Completed: r.Completed, Cancelled: r.Cancelled, Dead: r.Dead, Effects: r.Effects}}
}

func (b *bundle) claimErr(ctx context.Context, kinds []string, n int, workerID string, lease time.Duration) ([]*Job, error) {
	return b.client.store.Claim(ctx, b.db.Pool, store.ClaimParams{Queue: DefaultQueue, Kinds: kinds,
		Limit: n, WorkerID: workerID, Lease: lease, Token: 42})
}

// A worker's kinds are in the catalog, with the worker live, before it
// claims its first job: the API must accept a kind as soon as some worker
// can run it (it once published concurrently with the first claims).
func TestKindsPublishedBeforeTheFirstClaim(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	res, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "early"})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan []KindInfo, 1)
	reg := NewKinds()
	reg.Handle("early", func(ctx context.Context, _ *Job) error {
		kinds, err := b.client.Kinds(ctx)
		seen <- kinds
		return err
	}, nil)
	b.runWorker(t, reg, WorkerConfig{})
	b.waitStatus(t, res.Job.ID, StatusCompleted)
	kinds := <-seen
	if len(kinds) != 1 || kinds[0].Name != "early" || len(kinds[0].Workers) != 1 {
		t.Fatalf("catalog while the first job ran: %+v, want kind early with its live worker", kinds)
	}
}
