package jobqueue

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QueueGauges publishes queue depth by status and the age of the oldest due
// job. They are refreshed by one query per interval rather than on every
// scrape, so N replicas scraped every few seconds cost the database nothing
// extra; run them in one service (the API).
type QueueGauges struct {
	client *Client
	jobs   *prometheus.GaugeVec
	age    *prometheus.GaugeVec
}

// NewQueueGauges registers spool_queue_jobs and spool_queue_oldest_due_age_seconds.
func NewQueueGauges(client *Client, reg prometheus.Registerer) *QueueGauges {
	g := &QueueGauges{
		client: client,
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spool_queue_jobs",
			Help: "Jobs in the table by queue and status, as of the last refresh.",
		}, []string{"queue", "status"}),
		age: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spool_queue_oldest_due_age_seconds",
			Help: "How long the oldest due, unclaimed job of each queue has waited, as of the last refresh.",
		}, []string{"queue"}),
	}
	reg.MustRegister(g.jobs, g.age)
	return g
}

// Refresh runs the stats query once and replaces the gauges' values.
func (g *QueueGauges) Refresh(ctx context.Context) error {
	stats, err := g.client.Stats(ctx)
	if err != nil {
		return err
	}
	g.jobs.Reset()
	g.age.Reset()
	for queue, qs := range stats {
		for _, st := range AllStatuses {
			g.jobs.WithLabelValues(queue, string(st)).Set(float64(qs.Counts[st]))
		}
		g.age.WithLabelValues(queue).Set(qs.OldestDueAgeSeconds)
	}
	return nil
}

// Run refreshes the gauges every interval until ctx ends.
func (g *QueueGauges) Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := g.Refresh(ctx); err != nil && ctx.Err() == nil {
			log.Warn("queue gauges not refreshed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
