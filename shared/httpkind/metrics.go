package httpkind

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/shared/telemetry"
)

// metrics are the kind's series, by destination host (the first
// telemetry.MaxSeries hosts; the rest under host="_other") and status
// class. A nil *metrics records nothing.
type metrics struct {
	hosts    *telemetry.Bounded
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		hosts: telemetry.NewBounded(telemetry.MaxSeries),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spool_http_job_requests_total",
			Help: "Requests of http jobs by destination host and outcome: 2xx, 3xx, 4xx, 5xx, timeout, error (no response: connection, TLS), denied (destination or redirect refused).",
		}, []string{"host", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "spool_http_job_request_duration_seconds",
			Help:    "Time from sending an http job's request to the end of its response (or its failure), by destination host.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}, []string{"host"}),
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector of the same name already
// registered (several workers in one process share the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

func (m *metrics) observe(host, class string, d time.Duration) {
	if m == nil {
		return
	}
	host = m.hosts.Label(host)
	m.requests.WithLabelValues(host, class).Inc()
	m.duration.WithLabelValues(host).Observe(d.Seconds())
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "error"
	}
	return fmt.Sprintf("%dxx", code/100)
}

func errorClass(err error) string {
	var denied *DeniedError
	var redirect *RedirectError
	if errors.As(err, &denied) || errors.As(err, &redirect) {
		return "denied"
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "error"
}
