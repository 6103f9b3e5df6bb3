package handlers

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/orders"
	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

// TestHandlerLinesCarryTheJobsFields runs an order's pipeline through these
// handlers in an in-process worker logging JSON at debug level: the
// handlers' own lines ("payment captured", "email sent", …) carry job_id,
// type, queue, attempt and worker_id like the worker's, with the values of
// the job that wrote them.
func TestHandlerLinesCarryTheJobsFields(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	reg := jobqueue.NewRegistry()
	Register(reg, Options{Pool: db.Pool, Latency: time.Millisecond})
	var buf proctest.Buffer
	w, err := jobqueue.NewWorker(db.Pool, reg, jobqueue.WorkerConfig{
		ID: "handlers-test", Queues: []jobqueue.QueueConfig{{Name: jobqueue.DefaultQueue, Concurrency: 4}},
		PollInterval: 50 * time.Millisecond,
		Logger:       slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = w.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	client := jobqueue.NewClient(db.Pool, nil)
	store := orders.NewStore(db.Pool, client)
	o, err := store.Place(ctx, orders.NewOrder{CustomerEmail: "ada@example.com", CardNumber: "4242424242424242",
		Items: []orders.Item{{SKU: "mug", Quantity: 1}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := store.Get(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == "fulfilled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %d is %s after 20s, want fulfilled", o.ID, got.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-done

	jobs, err := client.List(ctx, jobqueue.ListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	typeOf := map[int64]string{}
	for _, j := range jobs {
		typeOf[j.ID] = j.Type
	}
	wantHandlerLine := map[string]string{"payment captured": "charge_payment", "email sent": "send_email"}
	seen := map[string]bool{}
	for _, s := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("not a JSON line: %q: %v", s, err)
		}
		id, ok := l["job_id"].(float64)
		if !ok {
			continue
		}
		msg, _ := l["msg"].(string)
		for _, k := range []string{"type", "queue", "attempt", "worker_id"} {
			if _, ok := l[k]; !ok {
				t.Errorf("line %q names a job but lacks %s: %s", msg, k, s)
			}
		}
		if typ := typeOf[int64(id)]; l["type"] != typ || l["worker_id"] != "handlers-test" || l["queue"] != jobqueue.DefaultQueue || l["attempt"] != 1.0 {
			t.Errorf("line %q: want type %s, worker_id handlers-test, queue %s, attempt 1: %s", msg, typ, jobqueue.DefaultQueue, s)
		}
		if typ, ok := wantHandlerLine[msg]; ok {
			seen[msg] = true
			if l["type"] != typ {
				t.Errorf("handler line %q of type %v, want %s", msg, l["type"], typ)
			}
		}
	}
	for msg := range wantHandlerLine {
		if !seen[msg] {
			t.Errorf("no %q line with job_id in the log:\n%s", msg, buf.String())
		}
	}
}
