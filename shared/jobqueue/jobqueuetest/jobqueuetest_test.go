package jobqueuetest_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/jobqueue/jobqueuetest"
	"github.com/spoolq/spool/shared/pgtest"
)

type invoice struct {
	OrderID int64 `json:"order_id"`
}

func (invoice) Kind() string { return "billing.invoice" }

func (i invoice) Validate() error {
	if i.OrderID <= 0 {
		return errors.New("order_id must be positive")
	}
	return nil
}

type receipt struct {
	OrderID int64 `json:"order_id"`
}

func (receipt) Kind() string { return "billing.receipt" }

func TestRequireEnqueuedInATransaction(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	jobqueuetest.RequireNotEnqueued[invoice](t, client, tx)
	if _, err := client.EnqueueTx(ctx, tx, jobqueue.EnqueueParams{Kind: "billing.invoice", Payload: invoice{OrderID: 42}}); err != nil {
		t.Fatal(err)
	}
	job, args := jobqueuetest.RequireEnqueued[invoice](t, client, tx)
	if args.OrderID != 42 || job.Status != jobqueue.StatusPending {
		t.Fatalf("enqueued %+v with %+v, want order 42, pending", job, args)
	}
	jobqueuetest.RequireNotEnqueued[invoice](t, client, db.Pool) // not committed: invisible outside
}

func TestWorkRunsTheHandler(t *testing.T) {
	t.Parallel()
	kinds := jobqueue.NewKinds()
	jobqueue.AddKind(kinds, func(ctx context.Context, _ *jobqueue.Job, i invoice) error {
		if err := jobqueue.SetResult(ctx, map[string]int64{"invoice": i.OrderID * 10}); err != nil {
			return err
		}
		return jobqueue.Then(ctx, jobqueue.EnqueueParams{Kind: "billing.receipt", Payload: receipt{OrderID: i.OrderID}})
	}, nil)
	res := jobqueuetest.Work(t, kinds, invoice{OrderID: 4})
	if res.Outcome != "completed" || string(res.Result) != `{"invoice":40}` || len(res.FollowUps) != 1 {
		t.Fatalf("attempt = %+v, want completed with a result and one follow-up", res)
	}
	if bad := jobqueuetest.Work(t, kinds, invoice{}); bad.Outcome != "dead" {
		t.Fatalf("invalid payload: %+v, want dead at once (its Validate refuses it)", bad)
	}
}

// The clock seam: a worker whose lease could not be renewed in time
// cancels its handler at the local expiry, before any rescuer may take
// the job; here the clock jumps past it instead of a partition cutting the
// renewals (the partition itself is the reliability tests' business).
func TestLocalLeaseExpiryCancelsTheHandler(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := jobqueuetest.NewClock(time.Now())
	kinds := jobqueue.NewKinds()
	started, cause := make(chan struct{}), make(chan error, 1)
	kinds.Handle("slow", func(ctx context.Context, _ *jobqueue.Job) error {
		close(started)
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	}, nil)
	reg := prometheus.NewRegistry()
	w, err := jobqueue.NewWorker(client, kinds, jobqueue.WorkerConfig{ID: "w", Queues: []jobqueue.QueueConfig{{Name: jobqueue.DefaultQueue, Concurrency: 1}},
		LeaseDuration: 10 * time.Second, PollInterval: 50 * time.Millisecond, RescueInterval: -1, Clock: clock,
		Metrics: jobqueue.NewMetrics(reg), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { stop(); <-done }()
	res, err := client.Enqueue(ctx, jobqueue.EnqueueParams{Kind: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	clock.Advance(9500 * time.Millisecond) // past lease − lease/10, the local expiry
	select {
	case err := <-cause:
		if !errors.Is(err, jobqueue.ErrJobLost) {
			t.Fatalf("handler cancelled with %v, want ErrJobLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler was not cancelled at its local lease expiry")
	}
	// Nothing was written for the cancelled attempt: the job stays running
	// with its lease, for the rescuer once it runs out.
	var status string
	if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT status FROM spool.spool_jobs WHERE id = $1`, res.Job.ID).Scan(&status)
	}); err != nil || status != "running" {
		t.Fatalf("job is %q (%v), want still running", status, err)
	}
}
