package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics are the API's request series. A nil *httpMetrics records
// nothing. Labels come from bounded sets only: route templates, a fixed
// list of methods, status codes.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	limits   *prometheus.CounterVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	if reg == nil {
		return nil
	}
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spool_http_requests_total",
			Help: "HTTP requests answered by the API, by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "spool_http_request_duration_seconds",
			Help:    "Time to answer API requests, by route template and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spool_http_limited_total",
			Help: "Requests a resource limit ended or changed: body_time (408), buffered_bytes (429), write_time (answer not taken by the client in time), response_bytes (an answer's large fields cut to SPOOL_MAX_RESPONSE_BYTES: a shorter page, step results or schedule payloads left out).",
		}, []string{"limit"}),
	}
	for _, limit := range []string{"body_time", "buffered_bytes", "write_time", "response_bytes"} {
		m.limits.WithLabelValues(limit) // exported from the start, at 0
	}
	reg.MustRegister(m.requests, m.duration, m.limits)
	return m
}

// limited counts a request that met limit.
func (m *httpMetrics) limited(limit string) {
	if m != nil {
		m.limits.WithLabelValues(limit).Inc()
	}
}

func (m *httpMetrics) observe(route, method string, status int, elapsed time.Duration) {
	if m == nil {
		return
	}
	method = boundedMethod(method)
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(elapsed.Seconds())
}

// boundedMethod keeps invented methods from minting label values.
func boundedMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}
