package jobqueue

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/spoolq/spool/shared/jobqueue/internal/metrics"
	"github.com/spoolq/spool/shared/telemetry"
)

// Metrics are the queue's Prometheus series. A nil *Metrics records
// nothing.
type Metrics struct{ s *metrics.Set }

// NewMetrics creates a worker's series and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics { return &Metrics{s: metrics.New(reg)} }

// NewClientMetrics registers only what a process that enqueues but does
// not work exports (the API): spool_jobs_enqueued_total.
func NewClientMetrics(reg prometheus.Registerer) *Metrics { return &Metrics{s: metrics.NewClient(reg)} }

func (m *Metrics) set() *metrics.Set {
	if m == nil {
		return nil
	}
	return m.s
}

// QueueGauges publishes queue depth by status, the age of the oldest due
// job, and the jobs waiting for kinds no live worker serves. They are
// refreshed by a few queries per interval rather than on every scrape, so
// N replicas scraped every few seconds cost the database nothing extra;
// run them in one service (the API).
type QueueGauges struct {
	counts   *CountsCache
	interval time.Duration // Run's: a snapshot that old is fresh enough
	jobs     *prometheus.GaugeVec
	age      *prometheus.GaugeVec
	unserved *prometheus.GaugeVec
}

// NewQueueGauges registers spool_queue_jobs, spool_queue_oldest_due_age_seconds
// and spool_unserved_jobs, which read counts (shared with the process's
// other readers of the counts).
func NewQueueGauges(counts *CountsCache, reg prometheus.Registerer) *QueueGauges {
	g := &QueueGauges{
		counts: counts,
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spool_queue_jobs",
			Help: "Jobs in the table by queue and status, as of the last refresh.",
		}, []string{"queue", "status"}),
		age: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spool_queue_oldest_due_age_seconds",
			Help: "How long the oldest due, unclaimed job of each queue has waited, as of the last refresh.",
		}, []string{"queue"}),
		unserved: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spool_unserved_jobs",
			Help: "Pending and retrying jobs of kinds that no live worker runs, by kind, as of the last refresh.",
		}, []string{"type"}),
	}
	reg.MustRegister(g.jobs, g.age, g.unserved)
	return g
}

// Refresh runs the queries once and replaces the gauges' values. Queue
// names are the clients' to choose, so only queues that a live worker
// serves or an operator declared (paused or limited) get series of their
// own; the others are summed under queue="_other". Unserved kinds get at
// most telemetry.MaxSeries series, the rest summed under type="_other".
func (g *QueueGauges) Refresh(ctx context.Context) error {
	counts, err := g.counts.Fresh(ctx, g.interval)
	if err != nil {
		return err
	}
	queues, err := g.counts.client.queuesWith(ctx, counts.Stats)
	if err != nil {
		return err
	}
	workers, err := g.counts.client.Workers(ctx)
	if err != nil {
		return err
	}
	unserved := Unserved(counts.Waiting, workers)
	known := servedQueues(workers)
	g.jobs.Reset()
	g.age.Reset()
	for _, q := range queues {
		name := q.Name
		if !known[name] && !q.Paused && q.Limit == nil {
			name = telemetry.OtherLabel
		}
		for _, st := range AllStatuses {
			g.jobs.WithLabelValues(name, string(st)).Add(float64(q.Counts[st]))
		}
		age := g.age.WithLabelValues(name)
		if old := gaugeValue(age); q.OldestDueAge.Seconds() > old {
			age.Set(q.OldestDueAge.Seconds())
		}
	}
	g.unserved.Reset()
	kinds := make([]string, 0, len(unserved))
	for k := range unserved {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for i, k := range kinds {
		if i >= telemetry.MaxSeries {
			k = telemetry.OtherLabel
		}
		g.unserved.WithLabelValues(k).Add(float64(unserved[kinds[i]]))
	}
	return nil
}

// servedQueues is the set of queues some live worker claims from.
func servedQueues(workers []WorkerInfo) map[string]bool {
	out := map[string]bool{}
	for _, w := range workers {
		if w.Live {
			for q := range w.Queues {
				out[q] = true
			}
		}
	}
	return out
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return 0
	}
	return m.GetGauge().GetValue()
}

// Unserved is the part of waiting (jobs by kind, WaitingByKind) whose
// kinds no live worker among workers runs.
func Unserved(waiting map[string]int64, workers []WorkerInfo) map[string]int64 {
	served := map[string]bool{}
	for _, w := range workers {
		if w.Live {
			for _, k := range w.Kinds {
				served[k] = true
			}
		}
	}
	out := map[string]int64{}
	for k, n := range waiting {
		if !served[k] {
			out[k] = n
		}
	}
	return out
}

// Run refreshes the gauges every interval until ctx ends.
func (g *QueueGauges) Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	g.interval = interval
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
