// Package metrics holds the queue's Prometheus series. A nil *Set records
// nothing, so code paths that run without metrics need no checks.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/shared/spooltype"
	"github.com/spoolq/spool/shared/telemetry"
)

// Outcomes of a job attempt, as counted in spool_jobs_processed_total.
const (
	OutcomeCompleted  = "completed"
	OutcomeRetried    = "retried"
	OutcomeDead       = "dead"
	OutcomeCancelled  = "cancelled"
	OutcomeSnoozed    = "snoozed"
	OutcomeHandedBack = "handed_back"
)

// Set is the queue's Prometheus series.
type Set struct {
	polls       *prometheus.CounterVec
	claimed     prometheus.Histogram
	processed   *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	lag         *prometheus.HistogramVec
	enqueuedCtr *prometheus.CounterVec
	// enqueuedTypes bounds enqueuedCtr's series: with open kinds, clients
	// name the types.
	enqueuedTypes *telemetry.Bounded
	running       prometheus.Gauge
	slots         prometheus.Gauge
	wakeups       prometheus.Counter
	rescued       *prometheus.CounterVec
	throttled     *prometheus.CounterVec
	leasesLost    *prometheus.CounterVec
}

// New creates a worker's series and registers them on reg.
func New(reg prometheus.Registerer) *Set {
	m := &Set{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spool_worker_polls_total",
			Help: "Claim queries run by this worker, by result: jobs (claimed at least one), empty, error.",
		}, []string{"result"}),
		claimed: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "spool_worker_claimed_jobs",
			Help:    "Jobs claimed per successful claim query.",
			Buckets: []float64{0, 1, 2, 5, 10, 20, 50, 100, 200},
		}),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spool_jobs_processed_total",
			Help: "Job attempts finished by this worker, by type and outcome.",
		}, []string{"type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "spool_job_duration_seconds",
			Help:    "Time handlers ran, by job type.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12),
		}, []string{"type"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "spool_job_lag_seconds",
			Help:    "Time from a job's run_at to its start, by queue.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12),
		}, []string{"queue"}),
		enqueuedTypes: telemetry.NewBounded(telemetry.MaxSeries),
		enqueuedCtr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spool_jobs_enqueued_total",
			Help: "Jobs written to the queue by this process, by type.",
		}, []string{"type"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spool_worker_running_jobs",
			Help: "Jobs this worker is running now.",
		}),
		slots: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spool_worker_job_slots",
			Help: "Jobs this worker may run at once: the sum of its queues' concurrency.",
		}),
		wakeups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spool_worker_notify_wakeups_total",
			Help: "LISTEN/NOTIFY notifications that woke this worker.",
		}),
		rescued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spool_jobs_rescued_total",
			Help: "Running jobs of lost workers returned to the queue by this process's rescuer, by type and resulting status.",
		}, []string{"type", "status"}),
	}
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spool_worker_throttled_claims_total",
		Help: "Claims that a cluster-wide concurrency or rate limit held back entirely, by limit scope and name.",
	}, []string{"scope", "name"})
	m.leasesLost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spool_worker_leases_lost_total",
		Help: "Running jobs whose handler this worker cancelled because it no longer held the lease, by reason: taken (cancelled by a user, or rescued), expired (renewals failed until the lease would have run out).",
	}, []string{"reason"})
	reg.MustRegister(m.polls, m.claimed, m.processed, m.duration, m.lag, m.enqueuedCtr, m.running, m.slots, m.wakeups, m.rescued, m.throttled, m.leasesLost)
	for _, r := range []string{LeaseTaken, LeaseExpired} {
		m.leasesLost.WithLabelValues(r)
	}
	for _, r := range []string{"jobs", "empty", "error"} {
		m.polls.WithLabelValues(r)
	}
	return m
}

// NewClient registers only what a process that enqueues but does not
// work exports (the API): spool_jobs_enqueued_total.
func NewClient(reg prometheus.Registerer) *Set {
	m := &Set{enqueuedTypes: telemetry.NewBounded(telemetry.MaxSeries), enqueuedCtr: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spool_jobs_enqueued_total",
		Help: "Jobs written to the queue by this process, by type.",
	}, []string{"type"})}
	reg.MustRegister(m.enqueuedCtr)
	return m
}

// SetSlots records the worker's capacity, so a worker with free slots that
// stops claiming can be told from a busy one.
func (m *Set) SetSlots(n int) {
	if m != nil && m.slots != nil {
		m.slots.Set(float64(n))
	}
}

// Preset creates every type's outcome series at zero, so rates and
// increases see them from the first scrape rather than the first event.
func (m *Set) Preset(types []string) {
	if m == nil || m.processed == nil {
		return
	}
	for _, t := range types {
		for _, o := range []string{OutcomeCompleted, OutcomeRetried, OutcomeDead, OutcomeCancelled, OutcomeSnoozed, OutcomeHandedBack} {
			m.processed.WithLabelValues(t, o)
		}
		for _, st := range []spooltype.Status{spooltype.StatusRetrying, spooltype.StatusDead} {
			m.rescued.WithLabelValues(t, string(st))
		}
	}
}

func (m *Set) Enqueued(typ string, n int) {
	if m != nil {
		m.enqueuedCtr.WithLabelValues(m.enqueuedTypes.Label(typ)).Add(float64(n))
	}
}

func (m *Set) Poll(claimed int, err error) {
	if m == nil {
		return
	}
	switch {
	case err != nil:
		m.polls.WithLabelValues("error").Inc()
	case claimed == 0:
		m.polls.WithLabelValues("empty").Inc()
	default:
		m.polls.WithLabelValues("jobs").Inc()
	}
	if err == nil {
		m.claimed.Observe(float64(claimed))
	}
}

func (m *Set) Started(j *spooltype.Job) {
	if m != nil {
		m.running.Inc()
		if j.StartedAt != nil {
			m.lag.WithLabelValues(j.Queue).Observe(max(0, j.StartedAt.Sub(j.RunAt).Seconds()))
		}
	}
}

func (m *Set) Finished(typ, outcome string, seconds float64) {
	if m != nil {
		m.running.Dec()
		m.processed.WithLabelValues(typ, outcome).Inc()
		m.duration.WithLabelValues(typ).Observe(seconds)
	}
}

func (m *Set) Wakeup() {
	if m != nil {
		m.wakeups.Inc()
	}
}

func (m *Set) Rescue(typ string, status spooltype.Status) {
	if m != nil {
		m.rescued.WithLabelValues(typ, string(status)).Inc()
		if status == spooltype.StatusDead { // out of attempts: dead as surely as a failed attempt
			m.processed.WithLabelValues(typ, OutcomeDead).Inc()
		}
	}
}

func (m *Set) Throttle(limits []*spooltype.Limit) {
	if m != nil {
		for _, l := range limits {
			m.throttled.WithLabelValues(l.Scope, l.Name).Inc()
		}
	}
}

// Reasons a worker loses a lease.
const (
	LeaseTaken   = "taken"   // the job was cancelled or rescued meanwhile
	LeaseExpired = "expired" // renewals failed until the lease would have run out
)

// LeaseLost counts a handler cancelled for a lost lease.
func (m *Set) LeaseLost(reason string) {
	if m != nil && m.leasesLost != nil {
		m.leasesLost.WithLabelValues(reason).Inc()
	}
}
