package jobqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// diamond is one step fanning out to three that fan back into one.
func diamond(failType string) WorkflowParams {
	step := func(name, typ string, deps ...string) WorkflowStep {
		return WorkflowStep{Name: name, Params: EnqueueParams{Kind: typ}, DependsOn: deps}
	}
	return WorkflowParams{Name: "diamond", Steps: []WorkflowStep{
		step("last", "rec", "b", "c", "d"), // declared first: order must not matter
		step("a", "rec"),
		step("b", "rec", "a"),
		step("c", failType, "a"),
		step("d", "rec", "a"),
	}}
}

// recorder is a handler that notes the order steps ran in.
type recorder struct {
	mu    sync.Mutex
	order []string
}

func (r *recorder) handle(ctx context.Context, j *Job) error {
	r.mu.Lock()
	r.order = append(r.order, *j.Step)
	r.mu.Unlock()
	return SetResult(ctx, map[string]string{"by": *j.Step})
}

func (r *recorder) pos(step string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, s := range r.order {
		if s == step {
			return i
		}
	}
	return -1
}

func (b *bundle) waitWorkflow(t *testing.T, id int64, want string) *Workflow {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		wf, err := b.client.GetWorkflow(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if wf.Status == want {
			return wf
		}
		if time.Now().After(deadline) {
			t.Fatalf("workflow %d is %s, want %s: %+v", id, wf.Status, want, wf.Steps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWorkflowFanOutFanIn(t *testing.T) {
	b := setup(t)
	rec := &recorder{}
	reg := NewKinds()
	reg.Handle("rec", rec.handle, nil)
	b.runWorker(t, reg, WorkerConfig{})
	wf, err := b.client.CreateWorkflow(context.Background(), diamond("rec"))
	if err != nil {
		t.Fatal(err)
	}
	done := b.waitWorkflow(t, wf.ID, "completed")
	for _, mid := range []string{"b", "c", "d"} {
		if !(rec.pos("a") < rec.pos(mid) && rec.pos(mid) < rec.pos("last")) {
			t.Errorf("order %v: want a before %s before last", rec.order, mid)
		}
	}
	byName := map[string]StepState{}
	for _, s := range done.Steps {
		byName[s.Name] = s
	}
	for _, s := range done.Steps {
		if s.Status != StatusCompleted || s.Attempts != 1 || s.JobID == 0 {
			t.Errorf("step %s (job %d): %s after %d attempts, want completed after 1", s.Name, s.JobID, s.Status, s.Attempts)
		}
		if s.StartedAt == nil || s.FinishedAt == nil || s.FinishedAt.Before(*s.StartedAt) {
			t.Errorf("step %s timings: started %v, finished %v", s.Name, s.StartedAt, s.FinishedAt)
			continue
		}
		for _, d := range s.DependsOn { // a step starts only after its parents finished
			if p := byName[d]; p.FinishedAt == nil || s.StartedAt.Before(*p.FinishedAt) {
				t.Errorf("step %s started at %v, before its parent %s finished at %v", s.Name, s.StartedAt, d, p.FinishedAt)
			}
		}
		var r map[string]string
		if json.Unmarshal(s.Result, &r) != nil || r["by"] != s.Name {
			t.Errorf("step %s result = %s, want its own", s.Name, s.Result)
		}
	}
	if len(rec.order) != 5 {
		t.Errorf("ran %d steps, want 5", len(rec.order))
	}
}

func TestWorkflowStepReadsParentResults(t *testing.T) {
	b := setup(t)
	got := make(chan map[string][]byte, 1)
	reg := NewKinds()
	reg.Handle("produce", func(ctx context.Context, j *Job) error { return SetResult(ctx, map[string]int{"n": len(*j.Step)}) }, nil)
	reg.Handle("consume", func(ctx context.Context, j *Job) error {
		r, err := b.client.ParentResults(ctx, j)
		got <- r
		return err
	}, nil)
	b.runWorker(t, reg, WorkerConfig{})
	_, err := b.client.CreateWorkflow(context.Background(), WorkflowParams{Name: "results", Steps: []WorkflowStep{
		{Name: "one", Params: EnqueueParams{Kind: "produce"}},
		{Name: "three", Params: EnqueueParams{Kind: "produce"}},
		{Name: "sum", Params: EnqueueParams{Kind: "consume"}, DependsOn: []string{"one", "three"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		var one, three map[string]int
		_ = json.Unmarshal(r["one"], &one)
		_ = json.Unmarshal(r["three"], &three)
		if one["n"] != 3 || three["n"] != 5 {
			t.Fatalf("parent results = %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("consumer never ran")
	}
}

// Retrying the dead step, alone or through the dead-letter filter, revives
// the workflow.
func TestDeadStepCancelsDependantsAndRetryRevives(t *testing.T) {
	for _, how := range []string{"retry", "retry-dead"} {
		t.Run(how, func(t *testing.T) { testDeadStepRevives(t, how) })
	}
}

func testDeadStepRevives(t *testing.T, how string) {
	b := setup(t)
	rec := &recorder{}
	var fail sync.Map
	fail.Store("flaky", true)
	reg := NewKinds()
	reg.Handle("rec", rec.handle, nil)
	reg.Handle("flaky", func(ctx context.Context, j *Job) error {
		if v, _ := fail.Load("flaky"); v.(bool) {
			return Permanent(errors.New("declined"))
		}
		return rec.handle(ctx, j)
	}, nil)
	b.runWorker(t, reg, WorkerConfig{})
	// Issue 17: a client holding the old failure-job keys of the next
	// workflows (workflow:<id>:failed) must not stop the compensation;
	// Spool's own keys are refused (spool:…), from the library too.
	for id := 1; id <= 3; id++ {
		if _, err := b.client.Enqueue(context.Background(), EnqueueParams{Kind: "client.job", IdempotencyKey: fmt.Sprintf("workflow:%d:failed", id)}); err != nil {
			t.Fatal(err)
		}
		_, err := b.client.Enqueue(context.Background(), EnqueueParams{Kind: "client.job", IdempotencyKey: fmt.Sprintf("%sworkflow:%d:failed", ReservedKeyPrefix, id)})
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("Enqueue with Spool's own key: %v, want ErrInvalid", err)
		}
	}
	p := diamond("flaky")
	p.OnFailure = &EnqueueParams{Kind: "compensate", Payload: map[string]string{"why": "test"}}
	wf, err := b.client.CreateWorkflow(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if wf.ID > 3 {
		t.Fatalf("workflow id %d: the keys taken above no longer cover it", wf.ID)
	}
	failed := b.waitWorkflow(t, wf.ID, "failed")
	var cID int64
	for _, s := range failed.Steps {
		switch s.Name {
		case "c":
			cID = s.JobID
		case "last":
			if s.Status != StatusCancelled {
				t.Errorf("last is %s after c died, want cancelled", s.Status)
			}
		}
	}
	comp, err := b.client.List(context.Background(), ListParams{Kind: "compensate", Limit: 5})
	if err != nil || len(comp) != 1 || !jsonHas(comp[0].Payload, "workflow_id") {
		t.Fatalf("compensation jobs = %+v (err %v), want one carrying the workflow id", comp, err)
	}

	fail.Store("flaky", false)
	if how == "retry" {
		_, err = b.client.Retry(context.Background(), cID)
	} else {
		var n int64
		n, err = b.client.RetryDead(context.Background(), DeadFilter{Kind: "flaky"})
		if err == nil && n != 1 {
			t.Fatalf("RetryDead retried %d jobs, want 1", n)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	b.waitWorkflow(t, wf.ID, "completed")
	if rec.pos("last") < 0 {
		t.Fatal("revived workflow did not run its last step")
	}
}

func jsonHas(raw json.RawMessage, key string) bool {
	var m map[string]any
	return json.Unmarshal(raw, &m) == nil && m[key] != nil
}

func TestContinueOnFailureLetsDependantsRun(t *testing.T) {
	b := setup(t)
	rec := &recorder{}
	reg := NewKinds()
	reg.Handle("rec", rec.handle, nil)
	reg.Handle("broken", func(context.Context, *Job) error { return Permanent(errors.New("nope")) }, nil)
	b.runWorker(t, reg, WorkerConfig{})
	wf, err := b.client.CreateWorkflow(context.Background(), WorkflowParams{Name: "lenient", Steps: []WorkflowStep{
		{Name: "optional", Params: EnqueueParams{Kind: "broken"}, ContinueOnFailure: true},
		{Name: "after", Params: EnqueueParams{Kind: "rec"}, DependsOn: []string{"optional"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	b.waitWorkflow(t, wf.ID, "completed")
	if rec.pos("after") < 0 {
		t.Fatal("dependant of a continue-on-failure step did not run")
	}
}

func TestCancelWorkflowCancelsWhatHasNotRun(t *testing.T) {
	b := setup(t)
	release := make(chan struct{})
	reg := NewKinds()
	reg.Handle("slow", func(ctx context.Context, j *Job) error { <-release; return nil }, nil)
	b.runWorker(t, reg, WorkerConfig{})
	wf, err := b.client.CreateWorkflow(context.Background(), WorkflowParams{Name: "c", Steps: []WorkflowStep{
		{Name: "first", Params: EnqueueParams{Kind: "slow"}},
		{Name: "second", Params: EnqueueParams{Kind: "slow"}, DependsOn: []string{"first"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, wf.Steps[0].JobID, StatusRunning)
	got, err := b.client.CancelWorkflow(context.Background(), wf.ID)
	if err != nil || got.Status != "cancelled" {
		t.Fatalf("cancel = %+v, %v", got, err)
	}
	close(release)
	b.waitStatus(t, wf.Steps[0].JobID, StatusCompleted) // running steps finish
	if j := b.waitStatus(t, wf.Steps[1].JobID, StatusCancelled); j.StartedAt != nil {
		t.Fatal("cancelled step ran")
	}
	if _, err := b.client.CancelWorkflow(context.Background(), wf.ID); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("second cancel = %v, want ErrInvalidState", err)
	}
}

func TestWorkflowDefinitionsAreChecked(t *testing.T) {
	b := setup(t)
	s := func(name string, deps ...string) WorkflowStep {
		return WorkflowStep{Name: name, Params: EnqueueParams{Kind: "t"}, DependsOn: deps}
	}
	for name, p := range map[string]WorkflowParams{
		"cycle":      {Name: "x", Steps: []WorkflowStep{s("a", "c"), s("b", "a"), s("c", "b")}},
		"self":       {Name: "x", Steps: []WorkflowStep{s("a", "a")}},
		"unknown":    {Name: "x", Steps: []WorkflowStep{s("a", "ghost")}},
		"duplicate":  {Name: "x", Steps: []WorkflowStep{s("a"), s("a")}},
		"empty":      {Name: "x"},
		"no name":    {Steps: []WorkflowStep{s("a")}},
		"twice dep":  {Name: "x", Steps: []WorkflowStep{s("a"), s("b", "a", "a")}},
		"keyed step": {Name: "x", Steps: []WorkflowStep{{Name: "a", Params: EnqueueParams{Kind: "t", IdempotencyKey: "k"}}}},
	} {
		if _, err := b.client.CreateWorkflow(context.Background(), p); !errors.Is(err, ErrInvalidWorkflow) {
			t.Errorf("%s: err = %v, want ErrInvalidWorkflow", name, err)
		}
	}
	var n int
	_ = b.db.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM spool.spool_jobs) + (SELECT count(*) FROM spool.spool_workflows)`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d rows written by refused workflows, want 0", n)
	}
}

func TestThenChainsFollowUpsWithCompletion(t *testing.T) {
	b := setup(t)
	ran := make(chan string, 4)
	reg := NewKinds()
	reg.Handle("first", func(ctx context.Context, j *Job) error {
		ran <- "first"
		return Then(ctx, EnqueueParams{Kind: "second", Payload: map[string]int64{"after": j.ID}})
	}, nil)
	reg.Handle("failing", func(ctx context.Context, j *Job) error {
		_ = Then(ctx, EnqueueParams{Kind: "second"})
		return Permanent(errors.New("no"))
	}, nil)
	reg.Handle("second", func(ctx context.Context, j *Job) error { ran <- "second"; return nil }, nil)
	b.runWorker(t, reg, WorkerConfig{})
	for _, typ := range []string{"failing", "first"} {
		if _, err := b.client.Enqueue(context.Background(), EnqueueParams{Kind: typ}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"first", "second"} {
		select {
		case got := <-ran:
			if got != want {
				t.Fatalf("ran %s, want %s", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not run", want)
		}
	}
	seconds, _ := b.client.List(context.Background(), ListParams{Kind: "second", Limit: 10})
	if len(seconds) != 1 {
		t.Fatalf("%d follow-ups enqueued, want 1 (none from the failed job)", len(seconds))
	}
}
