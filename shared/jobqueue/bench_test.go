package jobqueue

import (
	"context"
	"log/slog"
	"sort"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/pgtest"
)

// BenchmarkPickupLatency measures enqueue-to-handler-start time for single
// jobs with an idle worker: LISTEN/NOTIFY wakes it, so the poll interval
// (set to an hour here) plays no part. Reports p50 and p99 besides ns/op.
func BenchmarkPickupLatency(b *testing.B) {
	db := pgtest.New(b)
	client := mustClient(b, db.Pool, nil)
	started := make(chan time.Time, 1)
	reg := NewKinds()
	reg.Handle("ping", func(context.Context, *Job) error { started <- time.Now(); return nil }, nil)
	w, err := NewWorker(client, reg, WorkerConfig{ID: "bench", Queues: []QueueConfig{{Name: DefaultQueue, Concurrency: 10}},
		PollInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(200 * time.Millisecond) // let the listener connect

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := client.Enqueue(ctx, EnqueueParams{Kind: "ping"}); err != nil {
			b.Fatal(err)
		}
		select {
		case t1 := <-started:
			lat = append(lat, t1.Sub(t0))
		case <-time.After(5 * time.Second):
			b.Fatal("job not picked up within 5s")
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}
