// Package jobqueuetest helps test code that uses Spool, in the spirit of
// River's rivertest: assert that a job was enqueued (in a transaction or
// not) and get its payload back typed, run a kind's handler on a payload
// without a worker or a database, and move time by hand.
package jobqueuetest

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/jobqueue"
)

// RequireEnqueued fails t unless db (a pool or a transaction, which sees
// its own uncommitted jobs) holds a pending, retrying or blocked job of
// T's kind, and returns the newest with its payload decoded into T.
func RequireEnqueued[T jobqueue.Args](t testing.TB, client *jobqueue.Client, db jobqueue.DBTX) (*jobqueue.Job, T) {
	t.Helper()
	var args T
	job := newest[T](t, client, db)
	if job == nil {
		t.Fatalf("jobqueuetest: no %s job enqueued", args.Kind())
	}
	if err := json.Unmarshal(job.Payload, &args); err != nil {
		t.Fatalf("jobqueuetest: %s job %d: payload %s does not decode into %T: %v", job.Kind, job.ID, job.Payload, args, err)
	}
	return job, args
}

// RequireNotEnqueued fails t if db holds a waiting job of T's kind.
func RequireNotEnqueued[T jobqueue.Args](t testing.TB, client *jobqueue.Client, db jobqueue.DBTX) {
	t.Helper()
	if job := newest[T](t, client, db); job != nil {
		t.Fatalf("jobqueuetest: %s job %d is enqueued (%s), want none", job.Kind, job.ID, job.Status)
	}
}

func newest[T jobqueue.Args](t testing.TB, client *jobqueue.Client, db jobqueue.DBTX) *jobqueue.Job {
	t.Helper()
	var zero T
	for _, st := range []jobqueue.Status{jobqueue.StatusPending, jobqueue.StatusRetrying, jobqueue.StatusBlocked} {
		jobs, err := client.ListTx(context.Background(), db, jobqueue.ListParams{Kind: zero.Kind(), Status: st, Limit: 1})
		if err != nil {
			t.Fatalf("jobqueuetest: list %s jobs: %v", zero.Kind(), err)
		}
		if len(jobs) > 0 {
			return jobs[0]
		}
	}
	return nil
}

// Work runs the handler of T's kind in kinds on args, as a worker would run
// one attempt (its deadline, panic recovery, SetResult, Then and Logger
// work), without a database, and returns what the attempt led to.
func Work[T jobqueue.Args](t testing.TB, kinds *jobqueue.Kinds, args T) jobqueue.AttemptResult {
	t.Helper()
	payload, err := json.Marshal(args)
	if err != nil {
		t.Fatalf("jobqueuetest: encode %T: %v", args, err)
	}
	job := &jobqueue.Job{ID: 1, Kind: args.Kind(), Queue: jobqueue.DefaultQueue, Status: jobqueue.StatusRunning, Attempts: 1,
		Payload: payload, CreatedAt: time.Now(), RunAt: time.Now()}
	res, err := jobqueue.RunAttempt(context.Background(), kinds, job, 0)
	if err != nil {
		t.Fatalf("jobqueuetest: %v", err)
	}
	return res
}

// Clock is a jobqueue.Clock that stands still until moved, for tests of
// timing (a worker's local lease expiry, RunAt bounds) without sleeping.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// StartWorker runs a worker of kinds on client until t ends (stopped and
// waited for at cleanup). cfg's empty ID, Queues and Logger default to a
// test worker on the default queue with 4 slots, logging nothing.
func StartWorker(t testing.TB, client *jobqueue.Client, kinds *jobqueue.Kinds, cfg jobqueue.WorkerConfig) *jobqueue.Worker {
	t.Helper()
	if cfg.ID == "" {
		cfg.ID = "test-worker"
	}
	if cfg.Queues == nil {
		cfg.Queues = []jobqueue.QueueConfig{{Name: jobqueue.DefaultQueue, Concurrency: 4}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w, err := jobqueue.NewWorker(client, kinds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// WaitJob polls job id until done says so and returns it; it fails t
// after within, naming the job's status, attempts and last error.
func WaitJob(t testing.TB, client *jobqueue.Client, id int64, within time.Duration, done func(*jobqueue.Job) bool) *jobqueue.Job {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		j, err := client.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if done(j) {
			return j
		}
		if time.Now().After(deadline) {
			last := ""
			if j.LastError != nil {
				last = *j.LastError
			}
			t.Fatalf("job %d is %s after %s and %d attempts (last error %q)", id, j.Status, within, j.Attempts, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
