package schedule

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what the ticker does; a nil *Metrics counts nothing.
type Metrics struct {
	ticks *prometheus.CounterVec
	left  prometheus.Gauge
}

// NewMetrics registers spool_schedule_ticks_total and
// spool_schedule_ticks_left on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ticks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spool_schedule_ticks_total",
			Help: "Schedule ticks this worker claimed: enqueued a job, or skipped (missed by more than a minute, and the schedule does not catch up).",
		}, []string{"outcome"}),
		left: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spool_schedule_ticks_left",
			Help: "Due schedule ticks this worker's last check left for the next one when its time budget ran out (0: it kept up).",
		}),
	}
	m.ticks.WithLabelValues("enqueued")
	m.ticks.WithLabelValues("skipped")
	reg.MustRegister(m.ticks, m.left)
	return m
}

func (m *Metrics) observe(results []TickResult, left int) {
	if m == nil {
		return
	}
	var enqueued, skipped int
	for _, r := range results {
		if r.Skipped {
			skipped++
		} else {
			enqueued++
		}
	}
	m.ticks.WithLabelValues("enqueued").Add(float64(enqueued))
	m.ticks.WithLabelValues("skipped").Add(float64(skipped))
	m.left.Set(float64(left))
}
