package jobqueue

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// typedFive declares its policy on its type.
type typedFive struct {
	N int `json:"n"`
}

func (typedFive) Kind() string   { return "typed_five" }
func (typedFive) Policy() Policy { return Policy{MaxAttempts: 5, Timeout: 7 * time.Second} }

// otherKinds is a policy source for kinds declared elsewhere (as the
// catalog is).
type otherKinds map[string]Policy

func (o otherKinds) Policy(kind string) (Policy, bool) { p, ok := o[kind]; return p, ok }

// A kind's policy, declared once beside the kind, reaches the row
// whichever way a job of it is enqueued: one, many, COPY, a workflow step,
// a workflow's failure job, a follow-up (Then), a typed payload, or a
// kind declared elsewhere; a job's own settings still win.
func TestKindPolicyReachesEveryPath(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	kinds := NewKinds()
	noop := func(context.Context, *Job) error { return nil }
	kinds.Handle("three", noop, &KindOpts{Policy: Policy{MaxAttempts: 3, Timeout: 2 * time.Second, Backoff: Backoff{Base: 5 * time.Second}}})
	kinds.Handle("four", noop, &KindOpts{Policy: Policy{MaxAttempts: 4}})
	kinds.Handle("parent", func(ctx context.Context, _ *Job) error {
		return Then(ctx, EnqueueParams{Kind: "four", Queue: "chained"})
	}, nil)
	kinds.Handle("broken", func(context.Context, *Job) error { return Permanent(errors.New("no")) }, nil)
	b.client = mustClient(t, b.db.Pool, &ClientOpts{Kinds: kinds})
	b.client.SetPolicies(otherKinds{"elsewhere": {MaxAttempts: 6}})

	enqueue := func(p EnqueueParams) int64 {
		t.Helper()
		res, err := b.client.Enqueue(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return res.Job.ID
	}
	one, own := enqueue(EnqueueParams{Kind: "three"}), enqueue(EnqueueParams{Kind: "three", MaxAttempts: 7})
	plain, typed := enqueue(EnqueueParams{Kind: "other"}), enqueue(EnqueueParams{Kind: "typed_five", Payload: typedFive{N: 1}})
	elsewhere := enqueue(EnqueueParams{Kind: "elsewhere"})
	many, err := b.client.EnqueueMany(ctx, []EnqueueParams{{Kind: "four"}, {Kind: "other"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.EnqueueManyFast(ctx, []EnqueueParams{{Kind: "four", Queue: "copied"}}); err != nil {
		t.Fatal(err)
	}
	wf, err := b.client.CreateWorkflow(ctx, WorkflowParams{Name: "w", Steps: []WorkflowStep{{Name: "s", Params: EnqueueParams{Kind: "three"}}}})
	if err != nil {
		t.Fatal(err)
	}
	failing, err := b.client.CreateWorkflow(ctx, WorkflowParams{Name: "f", Steps: []WorkflowStep{{Name: "s", Params: EnqueueParams{Kind: "broken"}}},
		OnFailure: &EnqueueParams{Kind: "four", Queue: "compensation"}})
	if err != nil {
		t.Fatal(err)
	}
	copied, err := b.client.List(ctx, ListParams{Queue: "copied", Limit: 1})
	if err != nil || len(copied) != 1 {
		t.Fatalf("copied job: %v %v", copied, err)
	}

	b.runWorker(t, kinds, WorkerConfig{Queues: []QueueConfig{{Name: DefaultQueue, Concurrency: 2}}})
	parent := enqueue(EnqueueParams{Kind: "parent"})
	b.waitStatus(t, parent, StatusCompleted)
	b.waitStatus(t, failing.Steps[0].JobID, StatusDead)
	var chained, compensation []*Job
	proctestEventually(t, 10*time.Second, "the follow-up and the failure job", func() bool {
		chained, _ = b.client.List(ctx, ListParams{Queue: "chained", Limit: 1})
		compensation, _ = b.client.List(ctx, ListParams{Queue: "compensation", Limit: 1})
		return len(chained) == 1 && len(compensation) == 1
	})
	want := map[int64]int{one: 3, own: 7, plain: DefaultMaxAttempts, typed: 5, elsewhere: 6,
		many[0].ID: 4, many[1].ID: DefaultMaxAttempts, copied[0].ID: 4, wf.Steps[0].JobID: 3,
		chained[0].ID: 4, compensation[0].ID: 4}
	for id, n := range want {
		j, err := b.client.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.MaxAttempts != n {
			t.Errorf("job %d (%s): max_attempts %d, want %d", id, j.Kind, j.MaxAttempts, n)
		}
	}
	if j, _ := b.client.Get(ctx, one); j.Timeout != 2*time.Second || j.BackoffBase != 5*time.Second {
		t.Errorf("job of kind three: timeout %s, backoff base %s; want the kind's 2s and 5s", j.Timeout, j.BackoffBase)
	}
	if j, _ := b.client.Get(ctx, typed); j.Timeout != 7*time.Second {
		t.Errorf("typed job: timeout %s, want its type's 7s", j.Timeout)
	}
}

func proctestEventually(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
	}
}

// A job's own timeout is its handler's deadline; running past it is a
// failed attempt that retries like any other.
func TestJobTimeoutIsTheHandlersDeadlineAndRetries(t *testing.T) {
	b := setup(t)
	const timeout = 300 * time.Millisecond
	left := make(chan time.Duration, 2)
	reg := NewKinds()
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
	}, &KindOpts{Policy: Policy{Timeout: time.Hour}}) // the job's own timeout must win
	b.runWorker(t, reg, WorkerConfig{Backoff: Backoff{Base: 10 * time.Millisecond, Max: 20 * time.Millisecond}})

	res, err := b.client.Enqueue(context.Background(), EnqueueParams{Kind: "slow-once", Timeout: timeout, MaxAttempts: 3})
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
	if _, err := listener.Exec(ctx, `LISTEN "spool:jobs"`); err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{}, 1)
	reg := NewKinds()
	reg.Handle("quiet", func(context.Context, *Job) error { ran <- struct{}{}; return nil }, nil)
	b.runWorker(t, reg, WorkerConfig{PollInterval: 300 * time.Millisecond})

	// session_replication_role = replica skips triggers, so the insert
	// sends no notification: only the poll can find the job.
	var id int64
	err = pgx.BeginFunc(ctx, b.db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		res, err := b.client.EnqueueTx(ctx, tx, EnqueueParams{Kind: "quiet"})
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
	for {
		n, err := listener.Conn().WaitForNotification(waitCtx)
		if err != nil {
			break
		}
		// The worker's listener checks that notifications reach it.
		if !strings.HasPrefix(n.Payload, "spool:listen-check:") {
			t.Fatalf("got notification %+v; the test needs an insert that sends none", n)
		}
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
	reg := NewKinds()
	reg.Handle("step", func(context.Context, *Job) error { return nil }, nil)
	b.runWorker(t, reg, WorkerConfig{PollInterval: time.Hour})
	step := func(name string, deps ...string) WorkflowStep {
		return WorkflowStep{Name: name, Params: EnqueueParams{Kind: "step"}, DependsOn: deps}
	}
	wf, err := b.client.CreateWorkflow(context.Background(), WorkflowParams{Name: "chain",
		Steps: []WorkflowStep{step("a"), step("b", "a"), step("c", "b")}})
	if err != nil {
		t.Fatal(err)
	}
	b.waitWorkflow(t, wf.ID, "completed")
}
