package telemetry

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// PoolStater is what the pool collector reads; *pgxpool.Pool is one.
type PoolStater interface {
	Stat() *pgxpool.Stat
}

// poolCollector turns pgxpool's statistics into spool_db_pool_* series at
// scrape time. Reading them costs a mutex, not a query.
type poolCollector struct {
	pool PoolStater

	acquired, idle, constructing, total, max *prometheus.Desc

	acquires, acquireSeconds, emptyAcquires, emptyWaitSeconds, canceled *prometheus.Desc
	newConns, lifetimeDestroys, idleDestroys                            *prometheus.Desc
}

// NewPoolCollector returns a collector of the database pool's statistics
// (spool_db_pool_*). Register it once per pool:
//
//	reg.MustRegister(telemetry.NewPoolCollector(pool))
//
// Saturation shows as acquired_connections near max_connections together
// with a rising empty_acquires_total (acquires that had to wait).
func NewPoolCollector(pool PoolStater) prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("spool_db_pool_"+name, help, nil, nil)
	}
	return &poolCollector{
		pool:         pool,
		acquired:     d("acquired_connections", "Connections of the database pool in use now."),
		idle:         d("idle_connections", "Idle connections in the database pool now."),
		constructing: d("constructing_connections", "Connections of the database pool being opened now."),
		total:        d("total_connections", "Connections in the database pool now: acquired, idle and being opened."),
		max:          d("max_connections", "Most connections the database pool may open (SPOOL_DB_MAX_CONNS)."),
		acquires:     d("acquires_total", "Successful connection acquires from the database pool."),
		acquireSeconds: d("acquire_duration_seconds_total",
			"Total time successful acquires from the database pool took, waiting included."),
		emptyAcquires: d("empty_acquires_total",
			"Successful acquires that had to wait for a connection because none was idle."),
		emptyWaitSeconds: d("empty_acquire_wait_seconds_total",
			"Total time acquires spent waiting because the database pool had no idle connection."),
		canceled:         d("canceled_acquires_total", "Acquires from the database pool cancelled by their context (e.g. a request deadline)."),
		newConns:         d("new_connections_total", "Connections the database pool has opened."),
		lifetimeDestroys: d("max_lifetime_destroys_total", "Connections closed because they reached their maximum lifetime."),
		idleDestroys:     d("max_idle_destroys_total", "Connections closed because they were idle too long."),
	}
}

func (c *poolCollector) descs() []*prometheus.Desc {
	return []*prometheus.Desc{c.acquired, c.idle, c.constructing, c.total, c.max,
		c.acquires, c.acquireSeconds, c.emptyAcquires, c.emptyWaitSeconds, c.canceled,
		c.newConns, c.lifetimeDestroys, c.idleDestroys}
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.acquired, float64(s.AcquiredConns()))
	gauge(c.idle, float64(s.IdleConns()))
	gauge(c.constructing, float64(s.ConstructingConns()))
	gauge(c.total, float64(s.TotalConns()))
	gauge(c.max, float64(s.MaxConns()))
	counter(c.acquires, float64(s.AcquireCount()))
	counter(c.acquireSeconds, s.AcquireDuration().Seconds())
	counter(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	counter(c.emptyWaitSeconds, s.EmptyAcquireWaitTime().Seconds())
	counter(c.canceled, float64(s.CanceledAcquireCount()))
	counter(c.newConns, float64(s.NewConnsCount()))
	counter(c.lifetimeDestroys, float64(s.MaxLifetimeDestroyCount()))
	counter(c.idleDestroys, float64(s.MaxIdleDestroyCount()))
}
