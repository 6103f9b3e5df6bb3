package jobqueue

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/proctest"
)

// TestEveryJobLineCarriesTheJobsFields runs a worker logging JSON at debug
// level through jobs that complete, fail, die and are rescued, with handlers
// that log through Logger(ctx), and requires job_id, type, queue, attempt
// and worker_id on every line that names a job: the worker's, the
// rescuer's and the handlers' own.
func TestEveryJobLineCarriesTheJobsFields(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	reg := NewKinds()
	reg.Handle("logs", func(ctx context.Context, job *Job) error {
		Logger(ctx).Info("handler line", "note", "from the handler")
		return nil
	}, nil)
	reg.Handle("fails", func(ctx context.Context, job *Job) error {
		Logger(ctx).Warn("handler about to fail")
		return errors.New("boom")
	}, &KindOpts{Policy: Policy{Backoff: Backoff{Base: time.Millisecond, Max: time.Millisecond}}})

	// A job whose worker "crashed": claimed with a lease that has run out
	// before the test's worker starts, so its rescuer returns it.
	lost, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "logs", MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := b.claim(t, []string{"logs"}, 1, "crashed", time.Millisecond); len(got) != 1 {
		t.Fatalf("claimed %d jobs, want the lost one", len(got))
	}
	time.Sleep(10 * time.Millisecond)

	var buf proctest.Buffer
	w, err := NewWorker(b.client, reg, WorkerConfig{
		ID: "log-worker", Queues: []QueueConfig{{Name: DefaultQueue, Concurrency: 4}},
		PollInterval: 50 * time.Millisecond, RescueInterval: 50 * time.Millisecond, LeaseDuration: time.Second,
		Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = w.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	ok, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "logs"})
	if err != nil {
		t.Fatal(err)
	}
	dead, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "fails", MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, ok.Job.ID, StatusCompleted)
	b.waitStatus(t, dead.Job.ID, StatusDead)
	b.waitStatus(t, lost.Job.ID, StatusCompleted)
	stop()
	<-done // every line is written

	type line map[string]any
	var lines []line
	for _, s := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("not a JSON line: %q: %v", s, err)
		}
		lines = append(lines, l)
	}
	seen := map[string]int{}
	for _, l := range lines {
		if _, ok := l["job_id"]; !ok {
			continue
		}
		for _, k := range []string{"type", "queue", "attempt", "worker_id"} {
			if _, ok := l[k]; !ok {
				t.Errorf("line %q names a job but lacks %s: %v", l["msg"], k, l)
			}
		}
		if l["worker_id"] != "log-worker" || l["queue"] != DefaultQueue {
			t.Errorf("line %q: worker_id %v, queue %v; want log-worker, %s", l["msg"], l["worker_id"], l["queue"], DefaultQueue)
		}
		msg, _ := l["msg"].(string)
		seen[msg]++
		id := int64(l["job_id"].(float64))
		attempt := l["attempt"]
		switch msg {
		case "handler line":
			want := 1.0
			if id == lost.Job.ID {
				want = 2 // the crashed worker's attempt was the first
			}
			if l["type"] != "logs" || attempt != want || l["note"] != "from the handler" {
				t.Errorf("handler line of job %d: %v; want type logs, attempt %v", id, l, want)
			}
		case "handler about to fail", "job dead", "job failed, will retry":
			if id != dead.Job.ID || l["type"] != "fails" {
				t.Errorf("line %q for job %d of type %v, want job %d of type fails", msg, id, l["type"], dead.Job.ID)
			}
		case "rescued job of lost worker":
			if id != lost.Job.ID || l["type"] != "logs" || attempt != 1.0 || l["lost_worker_id"] != "crashed" {
				t.Errorf("rescue line: %v; want job %d, type logs, attempt 1, lost_worker_id crashed", l, lost.Job.ID)
			}
		}
	}
	for msg, n := range map[string]int{"handler line": 2, "handler about to fail": 2, "job started": 4,
		"job completed": 2, "job failed, will retry": 1, "job dead": 1, "rescued job of lost worker": 1} {
		if seen[msg] != n {
			t.Errorf("%d lines %q with job_id, want %d; lines with job_id: %v", seen[msg], msg, n, seen)
		}
	}
}

func TestLoggerOutsideAJobIsTheDefault(t *testing.T) {
	if Logger(context.Background()) != slog.Default() {
		t.Fatal("Logger of a context that is not a job's is not slog.Default()")
	}
}
