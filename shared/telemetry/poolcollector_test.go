package telemetry_test

import (
	"context"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/telemetry"
)

func TestPoolCollector(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	c := telemetry.NewPoolCollector(db.Pool)
	prometheus.NewRegistry().MustRegister(c) // descriptors are consistent

	// Naming conventions: counters end in _total, base units, help text.
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}

	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := gather(t, c)
	conn.Release()
	for name, want := range map[string]float64{
		"spool_db_pool_acquired_connections": 1,
		"spool_db_pool_max_connections":      float64(db.Pool.Config().MaxConns),
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	if got["spool_db_pool_acquires_total"] < 1 || got["spool_db_pool_new_connections_total"] < 1 {
		t.Errorf("acquires_total %v, new_connections_total %v; want at least 1 each",
			got["spool_db_pool_acquires_total"], got["spool_db_pool_new_connections_total"])
	}
	if got["spool_db_pool_total_connections"] < got["spool_db_pool_acquired_connections"]+got["spool_db_pool_idle_connections"] {
		t.Errorf("total %v < acquired %v + idle %v", got["spool_db_pool_total_connections"],
			got["spool_db_pool_acquired_connections"], got["spool_db_pool_idle_connections"])
	}
	after := gather(t, c)
	if after["spool_db_pool_acquired_connections"] != 0 || after["spool_db_pool_idle_connections"] < 1 {
		t.Errorf("after release: acquired %v, idle %v; want 0 and at least 1",
			after["spool_db_pool_acquired_connections"], after["spool_db_pool_idle_connections"])
	}
	if n := testutil.CollectAndCount(c); n != 13 {
		t.Errorf("%d series, want 13", n)
	}
}

// gather returns every value the collector reports, by metric name.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	c.Collect(ch)
	close(ch)
	out := map[string]float64{}
	for m := range ch {
		name := fqName.FindStringSubmatch(m.Desc().String())
		if name == nil {
			t.Fatalf("no fqName in %s", m.Desc())
		}
		out[name[1]] = testutil.ToFloat64(single{m})
	}
	return out
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// single is a collector of one metric, for testutil.ToFloat64.
type single struct{ m prometheus.Metric }

func (s single) Describe(ch chan<- *prometheus.Desc) { ch <- s.m.Desc() }
func (s single) Collect(ch chan<- prometheus.Metric) { ch <- s.m }
