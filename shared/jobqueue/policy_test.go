package jobqueue

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A job type's attempt limit reaches the row whichever way the job is
// enqueued: one, many, COPY, a workflow step, or a follow-up (Then).
func TestTypeMaxAttemptsFillsUnsetLimits(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	limits := func(typ string) int { return map[string]int{"three": 3, "four": 4}[typ] }
	b.client.SetTypeMaxAttempts(limits)

	one, err := b.client.Enqueue(ctx, EnqueueParams{Type: "three"})
	if err != nil {
		t.Fatal(err)
	}
	own, err := b.client.Enqueue(ctx, EnqueueParams{Type: "three", MaxAttempts: 7})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := b.client.Enqueue(ctx, EnqueueParams{Type: "other"})
	if err != nil {
		t.Fatal(err)
	}
	many, err := b.client.EnqueueMany(ctx, []EnqueueParams{{Type: "four"}, {Type: "other"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.EnqueueManyFast(ctx, []EnqueueParams{{Type: "four", Queue: "copied"}}); err != nil {
		t.Fatal(err)
	}
	wf, err := b.client.CreateWorkflow(ctx, WorkflowParams{Name: "w", Steps: []WorkflowStep{{Name: "s", Params: EnqueueParams{Type: "three"}}}})
	if err != nil {
		t.Fatal(err)
	}
	copied, err := b.client.List(ctx, ListParams{Queue: "copied", Limit: 1})
	if err != nil || len(copied) != 1 {
		t.Fatalf("copied job: %v %v", copied, err)
	}
	want := map[int64]int{one.Job.ID: 3, own.Job.ID: 7, plain.Job.ID: DefaultMaxAttempts,
		many[0].Job.ID: 4, many[1].Job.ID: DefaultMaxAttempts, copied[0].ID: 4, wf.Steps[0].JobID: 3}
	for id, n := range want {
		j, err := b.client.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.MaxAttempts != n {
			t.Errorf("job %d (%s): max_attempts %d, want %d", id, j.Type, j.MaxAttempts, n)
		}
	}

	reg := NewRegistry()
	reg.Handle("parent", func(ctx context.Context, _ *Job) error {
		return Then(ctx, EnqueueParams{Type: "four", Queue: "chained"})
	}, nil)
	b.runWorker(t, reg, WorkerConfig{TypeMaxAttempts: limits})
	parent, err := b.client.Enqueue(ctx, EnqueueParams{Type: "parent"})
	if err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, parent.Job.ID, StatusCompleted)
	chained, err := b.client.List(ctx, ListParams{Queue: "chained", Limit: 1})
	if err != nil || len(chained) != 1 || chained[0].MaxAttempts != 4 {
		t.Fatalf("follow-up: %+v %v, want one job with max_attempts 4", chained, err)
	}
}

// A job's own timeout is its handler's deadline; running past it is a
// failed attempt that retries like any other.
func TestJobTimeoutIsTheHandlersDeadlineAndRetries(t *testing.T) {
	b := setup(t)
	const timeout = 300 * time.Millisecond
	left := make(chan time.Duration, 2)
	reg := NewRegistry()
	reg.Handle("slow-once", func(ctx context.Context, j *Job) error {
		d, ok := ctx.Deadline()
		if !ok {
			left <- -1
			return errors.New("no deadline")
		}
		left <- time.Until(d)
		if j.Attempts == 1 {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}, &HandlerOpts{Timeout: time.Hour}) // the job's own timeout must win
	b.runWorker(t, reg, WorkerConfig{Backoff: Backoff{Base: 10 * time.Millisecond, Max: 20 * time.Millisecond}})

	res, err := b.client.Enqueue(context.Background(), EnqueueParams{Type: "slow-once", Timeout: timeout, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	j := b.waitStatus(t, res.Job.ID, StatusCompleted)
	for i := range 2 { // at most the job's timeout left, not the type's hour
		if d := <-left; d == -1 || d > timeout {
			t.Fatalf("attempt %d: %s left before the deadline at start, want at most %s", i+1, d, timeout)
		}
	}
	if j.Attempts != 2 || len(j.Errors) != 1 || !strings.Contains(j.Errors[0].Error, "timed out") {
		t.Fatalf("attempts %d, errors %+v; want 2 attempts after one timeout", j.Attempts, j.Errors)
	}
}

// A notification that never arrives (lost, or the listener reconnecting)
// delays a job by at most a poll interval.
func TestLostNotificationIsPickedUpByPoll(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	listener, err := b.db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, `LISTEN spool_jobs`); err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{}, 1)
	reg := NewRegistry()
	reg.Handle("quiet", func(context.Context, *Job) error { ran <- struct{}{}; return nil }, nil)
	b.runWorker(t, reg, WorkerConfig{PollInterval: 300 * time.Millisecond})

	// session_replication_role = replica skips triggers, so the insert
	// sends no notification: only the poll can find the job.
	var id int64
	err = pgx.BeginFunc(ctx, b.db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		res, err := b.client.EnqueueTx(ctx, tx, EnqueueParams{Type: "quiet"})
		if err == nil {
			id = res.Job.ID
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if n, err := listener.Conn().WaitForNotification(waitCtx); err == nil {
		t.Fatalf("got notification %+v; the test needs an insert that sends none", n)
	}
	select {
	case <-ran:
	case <-time.After(3 * time.Second):
		t.Fatalf("job %d not run 3 s after a silent insert with a 300 ms poll", id)
	}
	b.waitStatus(t, id, StatusCompleted)
}

// A step that becomes runnable wakes an idle worker at once: with polling
// effectively off, a three-step chain still finishes.
func TestUnblockedStepWakesIdleWorker(t *testing.T) {
	b := setup(t)
	reg := NewRegistry()
	reg.Handle("step", func(context.Context, *Job) error { return nil }, nil)
	b.runWorker(t, reg, WorkerConfig{PollInterval: time.Hour})
	step := func(name string, deps ...string) WorkflowStep {
		return WorkflowStep{Name: name, Params: EnqueueParams{Type: "step"}, DependsOn: deps}
	}
	wf, err := b.client.CreateWorkflow(context.Background(), WorkflowParams{Name: "chain",
		Steps: []WorkflowStep{step("a"), step("b", "a"), step("c", "b")}})
	if err != nil {
		t.Fatal(err)
	}
	b.waitWorkflow(t, wf.ID, "completed")
}
