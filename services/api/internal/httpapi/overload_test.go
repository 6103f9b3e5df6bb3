package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/services/api/internal/openapi/openapitest"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/postgres"
)

// blockInserts holds a lock that makes every insert into spool.spool_jobs wait,
// until the returned func releases it.
func blockInserts(t *testing.T, db *pgtest.DB) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE spool.spool_jobs IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback(ctx) }) }
	t.Cleanup(release)
	return release
}

// smallPool is a pool of n connections to db, as the API would open.
func smallPool(t *testing.T, db *pgtest.DB, n int32) *jobqueue.Client {
	t.Helper()
	pool, err := postgres.Connect(context.Background(), db.URL, &postgres.PoolOpts{MaxConns: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c := mustClient(t, pool)
	publish(t, c)
	return c
}

type answer struct {
	code       int
	retryAfter string
	elapsed    time.Duration
	err        error
}

// burst sends n enqueues at once and returns their answers as they come.
func burst(srv *httptest.Server, n int) <-chan answer {
	out := make(chan answer, n)
	for range n {
		go func() {
			start := time.Now()
			res, err := srv.Client().Post(srv.URL+"/v1/jobs", "application/json", strings.NewReader(`{"type":"noop"}`))
			a := answer{err: err, elapsed: time.Since(start)}
			if err == nil {
				a.code, a.retryAfter = res.StatusCode, res.Header.Get("Retry-After")
				res.Body.Close()
			}
			out <- a
		}()
	}
	return out
}

// TestOverloadAnswers429AtOnce: with inserts stalled, a burst beyond the
// in-flight limit is refused with 429 and Retry-After after the short wait
// for a slot (SPOOL_INFLIGHT_WAIT, 250 ms) instead of queueing longer; the
// admitted requests finish once the database moves again, and the slots
// are free afterwards.
func TestOverloadAnswers429AtOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	client := smallPool(t, db, 2) // the default limit is then 16 in flight
	srv := httptest.NewServer(openapitest.Handler(t, httpapi.New(client, &httpapi.Opts{RequestTimeout: 20 * time.Second})))
	t.Cleanup(srv.Close)
	srv.Client().Timeout = 30 * time.Second
	release := blockInserts(t, db)

	const n, limit = 40, 16
	answers := burst(srv, n)
	for i := range n - limit {
		a := <-answers
		switch {
		case a.err != nil:
			t.Fatalf("answer %d: %v", i, a.err)
		case a.code != http.StatusTooManyRequests || a.retryAfter != "1":
			t.Fatalf("answer %d while the database is stalled: %d, Retry-After %q; want 429 with Retry-After 1", i, a.code, a.retryAfter)
		case a.elapsed > 3*time.Second:
			t.Errorf("answer %d: 429 took %s, want it at once", i, a.elapsed)
		}
	}
	select {
	case a := <-answers:
		t.Fatalf("a %d answer before the database moved: %d admitted requests, want %d", a.code, limit-1, limit)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	for i := range limit {
		if a := <-answers; a.err != nil || a.code != http.StatusCreated {
			t.Fatalf("admitted request %d: %d, %v; want 201 once the database moved", i, a.code, a.err)
		}
	}
	var jobs int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM spool.spool_jobs`).Scan(&jobs); err != nil || jobs != limit {
		t.Fatalf("%d jobs (%v), want %d: one per admitted request", jobs, err, limit)
	}
	if a := <-burst(srv, 1); a.code != http.StatusCreated {
		t.Fatalf("after the burst: %d, want 201 (every slot released)", a.code)
	}
}

// TestPoolWaitIsBounded: without the in-flight limit, requests queued for
// a pool connection, or holding one on a stalled database, answer 503 with
// Retry-After within the request timeout; none hangs, none writes.
func TestPoolWaitIsBounded(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	client := smallPool(t, db, 2)
	srv := httptest.NewServer(openapitest.Handler(t, httpapi.New(client, &httpapi.Opts{RequestTimeout: 500 * time.Millisecond, MaxInFlight: -1})))
	t.Cleanup(srv.Close)
	srv.Client().Timeout = 30 * time.Second
	release := blockInserts(t, db)

	const n = 10
	answers := burst(srv, n)
	for i := range n {
		a := <-answers
		switch {
		case a.err != nil:
			t.Fatalf("answer %d: %v", i, a.err)
		case a.code != http.StatusServiceUnavailable || a.retryAfter == "":
			t.Fatalf("answer %d: %d, Retry-After %q; want 503 with Retry-After", i, a.code, a.retryAfter)
		case a.elapsed > 5*time.Second:
			t.Errorf("answer %d took %s, want about the 500ms request timeout", i, a.elapsed)
		}
	}
	release()
	var jobs int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM spool.spool_jobs`).Scan(&jobs); err != nil || jobs != 0 {
		t.Fatalf("%d jobs (%v), want none", jobs, err)
	}
}

// A burst past the in-flight limit that the database can serve within the
// wait queues for slots instead of being shed: with inserts stalled for a
// moment, 24 requests against 4 slots all get 201, and their jobs were
// written by fewer transactions than jobs (gathered commits).
func TestBurstWaitsForASlot(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	client := smallPool(t, db, 2)
	srv := httptest.NewServer(httpapi.New(client, &httpapi.Opts{RequestTimeout: 20 * time.Second, InFlightWait: 15 * time.Second}))
	t.Cleanup(srv.Close)
	srv.Client().Timeout = 30 * time.Second
	release := blockInserts(t, db)
	const n = 24
	answers := burst(srv, n)
	time.Sleep(300 * time.Millisecond) // past the default wait: every request has arrived and waits
	release()
	for i := range n {
		if a := <-answers; a.err != nil || a.code != http.StatusCreated {
			t.Fatalf("answer %d: %d, %v; want 201 for every request of the burst", i, a.code, a.err)
		}
	}
	var jobs, txs int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT xmin::text) FROM spool.spool_jobs`).Scan(&jobs, &txs); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d jobs in %d transactions", jobs, txs)
	if jobs != n || txs >= n {
		t.Errorf("%d jobs in %d transactions; want %d jobs in fewer transactions", jobs, txs, n)
	}
}
