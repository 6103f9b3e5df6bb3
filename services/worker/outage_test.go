package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/postgres"
	"github.com/spoolq/spool/shared/proctest"
)

// TestDatabaseRestartLosesNoAcknowledgedJob restarts PostgreSQL (a server
// this test owns) while the API takes enqueues and two workers process them:
// the API answers 503 during the outage, everything reconnects by itself,
// and every job the API acknowledged with 201 is completed.
func TestDatabaseRestartLosesNoAcknowledgedJob(t *testing.T) {
	t.Parallel()
	srv := pgtest.StartServer(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	spool, err := postgres.Spool("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spool.Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}

	apiAddr := proctest.FreeAddr(t)
	api := proctest.Start(t, proctest.Build(t, "github.com/spoolq/spool/services/api"), []string{
		"SPOOL_DATABASE_URL=" + srv.URL(), "SPOOL_HTTP_ADDR=" + apiAddr, "SPOOL_ADMIN_ADDR=" + proctest.FreeAddr(t),
		"SPOOL_AUTH_DISABLED=true", "SPOOL_REQUEST_TIMEOUT=2s", "SPOOL_DRAIN_DELAY=100ms",
	})
	workerBin := proctest.Build(t, "github.com/spoolq/spool/services/worker")
	var workers []*proctest.Proc
	for i := range 2 {
		workers = append(workers, proctest.Start(t, workerBin, []string{
			"SPOOL_DATABASE_URL=" + srv.URL(), "SPOOL_ADMIN_ADDR=" + proctest.FreeAddr(t), "SPOOL_WORKER_ID=" + fmt.Sprint("w", i),
			"SPOOL_POLL_INTERVAL=200ms",
		}))
	}
	waitReady(t, "http://"+apiAddr+"/v1/stats")
	proctest.Eventually(t, 20*time.Second, "the workers to publish their kinds", func() bool {
		var n int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_kinds WHERE name = 'noop'`).Scan(&n)
		return n == 1
	})

	const want = 5000
	p := &producer{url: "http://" + apiAddr + "/v1/jobs", client: &http.Client{Timeout: 5 * time.Second}}
	prodCtx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { p.run(prodCtx, want) })
	}
	proctest.Eventually(t, 60*time.Second, "1000 acknowledged jobs", func() bool { return p.acked() >= 1000 })
	srv.Stop()
	before503 := p.unavailable.Load()
	proctest.Eventually(t, 15*time.Second, "503s during the outage", func() bool { return p.unavailable.Load() > before503+10 })
	time.Sleep(time.Second)
	srv.Start()
	t.Logf("database restarted after %d acknowledged jobs; %d answers of 503 during the outage", p.acked(), p.unavailable.Load())
	wg.Wait()

	if bad := p.other.Load(); bad != 0 {
		t.Errorf("%d answers other than 201 or 503 (e.g. 500s or transport errors): last %q", bad, p.lastOther.Load())
	}
	ids := p.ids()
	if len(ids) < want {
		t.Fatalf("only %d jobs acknowledged, want %d", len(ids), want)
	}
	proctest.Eventually(t, 90*time.Second, "every acknowledged job completed", func() bool {
		var done int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_jobs WHERE id = ANY($1) AND status = 'completed'`, ids).Scan(&done)
		return done == len(ids)
	})
	for _, w := range append(workers, api) {
		stopClean(t, w, 10*time.Second)
	}
}

// producer enqueues noop jobs through the API until it has want 201s.
type producer struct {
	url         string
	client      *http.Client
	mu          sync.Mutex
	acked201    []int64
	unavailable atomic.Int64
	other       atomic.Int64
	lastOther   atomic.Value
}

func (p *producer) acked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked201)
}

func (p *producer) ids() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int64(nil), p.acked201...)
}

func (p *producer) run(ctx context.Context, want int) {
	for ctx.Err() == nil && p.acked() < want {
		resp, err := p.client.Post(p.url, "application/json", strings.NewReader(`{"type":"noop"}`))
		if err != nil {
			p.other.Add(1)
			p.lastOther.Store(err.Error())
			continue
		}
		var body struct {
			Job struct{ ID int64 } `json:"job"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			p.mu.Lock()
			p.acked201 = append(p.acked201, body.Job.ID)
			p.mu.Unlock()
		case http.StatusServiceUnavailable:
			p.unavailable.Add(1)
			time.Sleep(50 * time.Millisecond) // a polite client backs off
		default:
			p.other.Add(1)
			p.lastOther.Store(resp.Status)
		}
	}
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	proctest.Eventually(t, 20*time.Second, url+" to answer 200", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
