package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
)

// BenchmarkDeepBacklog: the read routes at a deep backlog (SPOOL_BENCH_BACKLOG
// pending jobs, default a million, in four queues and three kinds), each
// beside its baseline in the same run: a filtered list without the scan
// bound, and the counts without the shared snapshot (counted on every
// request, as before).
//
//	make bench-backlog
func BenchmarkDeepBacklog(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("SPOOL_BENCH_BACKLOG"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	db := pgtest.New(b)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO spool.spool_jobs (type, queue, payload)
		SELECT (ARRAY['noop', 'emails.send', 'images.resize'])[1 + i % 3],
			(ARRAY['default', 'emails', 'images', 'reports'])[1 + i % 4], '{"seq": 1}'
		FROM generate_series(1, $1) AS i`, n); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `VACUUM ANALYZE spool.spool_jobs`); err != nil {
		b.Fatal(err)
	}
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		b.Fatal(err)
	}
	publish(b, client)
	shared := newRouter(b, client, prometheus.NewRegistry(), &httpapi.Opts{Counts: jobqueue.NewCountsCache(client, 2*time.Second)})
	fresh := newRouter(b, client, prometheus.NewRegistry(), nil)
	for _, path := range []string{"/v1/jobs?type=nope", "/v1/jobs?queue=nope", "/v1/jobs?type=images.resize&status=pending", "/v1/jobs?status=dead", "/v1/stats", "/v1/queues", "/v1/kinds"} {
		b.Run("api"+path, func(b *testing.B) {
			for b.Loop() {
				if w := do(shared, path); w.Code != 200 {
					b.Fatalf("%s: %d %s", path, w.Code, w.Body)
				}
			}
		})
	}
	for _, path := range []string{"/v1/stats", "/v1/kinds"} {
		b.Run("baseline-counted-per-request"+path, func(b *testing.B) {
			for b.Loop() {
				if w := do(fresh, path); w.Code != 200 {
					b.Fatalf("%s: %d", path, w.Code)
				}
			}
		})
	}
	for name, p := range map[string]jobqueue.ListParams{"type=nope": {Kind: "nope"}, "queue=nope": {Queue: "nope"}} {
		b.Run("baseline-unbounded-list/"+name, func(b *testing.B) {
			p.Limit, p.Brief = 50, true
			for b.Loop() {
				if _, _, err := client.ListPage(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func do(h interface {
	ServeHTTP(w http.ResponseWriter, r *http.Request)
}, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, request("GET", path, ""))
	return w
}
