// Command rows-bench measures what a hostile job does to a row and to the
// processes that read it: jobs that fail every attempt with a huge message
// (by default 6 jobs × 40 attempts × 1 MiB, the case of issue 16). A worker
// runs in this process; then the real spool-api binary serves each job and
// the dead-letter list. It prints one JSON object: the largest row (stored
// and as text), the WAL the run wrote, this process's peak RSS (the worker)
// and the API's, and the response sizes.
//
//	go build -o bin/spool-api ./services/api
//	go run ./bench/rows -api bin/spool-api
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/postgres"
)

type result struct {
	Jobs, Attempts, MessageBytes int
	RowStoredBytes               int64   `json:"row_stored_bytes"`
	HistoryTextBytes             int64   `json:"history_text_bytes"`
	WALBytes                     int64   `json:"wal_bytes"`
	WorkerPeakRSSMiB             float64 `json:"worker_peak_rss_mib"`
	APIPeakRSSMiB                float64 `json:"api_peak_rss_mib,omitempty"`
	GetJobBytes                  int     `json:"get_job_bytes,omitempty"`
	DeadListBytes                int     `json:"dead_list_bytes,omitempty"`
	Seconds                      float64 `json:"seconds"`
}

func main() {
	admin := flag.String("url", envOr("BENCH_PG_URL", envOr("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")), "admin PostgreSQL URL")
	db := flag.String("db", "spool_bench_rows", "database to (re)create")
	jobs := flag.Int("jobs", 6, "failing jobs")
	attempts := flag.Int("attempts", 40, "attempts per job")
	msgBytes := flag.Int("msg-bytes", 1<<20, "bytes of each failure's message")
	apiBin := flag.String("api", "", "spool-api binary to measure (empty: skip the API)")
	flag.Parse()
	start := time.Now()
	r, err := run(*admin, *db, *jobs, *attempts, *msgBytes, *apiBin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rows-bench:", err)
		os.Exit(1)
	}
	r.Seconds = time.Since(start).Seconds()
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

func run(admin, db string, jobs, attempts, msgBytes int, apiBin string) (*result, error) {
	ctx := context.Background()
	url, err := recreate(ctx, admin, db)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	m, _ := postgres.Spool("")
	if _, err := m.Apply(ctx, pool); err != nil {
		return nil, err
	}
	var walStart string
	if err := pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&walStart); err != nil {
		return nil, err
	}
	if err := failAll(ctx, pool, jobs, attempts, msgBytes); err != nil {
		return nil, err
	}
	r := &result{Jobs: jobs, Attempts: attempts, MessageBytes: msgBytes, WorkerPeakRSSMiB: peakRSS("self")}
	err = pool.QueryRow(ctx, `SELECT max(pg_column_size(j.*)), max(octet_length(j.errors::text)),
			pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint FROM spool.spool_jobs j`, walStart).
		Scan(&r.RowStoredBytes, &r.HistoryTextBytes, &r.WALBytes)
	if err != nil || apiBin == "" {
		return r, err
	}
	return r, measureAPI(ctx, apiBin, url, r)
}

// failAll runs the failing jobs to dead in an in-process worker.
func failAll(ctx context.Context, pool *pgxpool.Pool, jobs, attempts, msgBytes int) error {
	client, err := jobqueue.NewClient(pool, nil)
	if err != nil {
		return err
	}
	msg := noise(msgBytes)
	kinds := jobqueue.NewKinds()
	kinds.Handle("bench.huge_error", func(context.Context, *jobqueue.Job) error { return errors.New(msg) }, nil)
	w, err := jobqueue.NewWorker(client, kinds, jobqueue.WorkerConfig{ID: "rows-bench", PollInterval: 50 * time.Millisecond,
		Queues: []jobqueue.QueueConfig{{Name: jobqueue.DefaultQueue, Concurrency: jobs}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() { stop(); <-done }()
	for range jobs {
		if _, err := client.Enqueue(ctx, jobqueue.EnqueueParams{Kind: "bench.huge_error", MaxAttempts: attempts,
			BackoffBase: time.Millisecond, BackoffMax: time.Millisecond}); err != nil {
			return err
		}
	}
	for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var dead int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_jobs WHERE status = 'dead'`).Scan(&dead); err != nil {
			return err
		}
		if dead == jobs {
			return nil
		}
	}
	return errors.New("jobs not dead after 10 minutes")
}

// measureAPI starts the API, reads every job and the dead-letter list with
// the histories, and records the API's peak RSS.
func measureAPI(ctx context.Context, bin, url string, r *result) error {
	addr, admin := freeAddr(), freeAddr()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "SPOOL_HTTP_ADDR="+addr, "SPOOL_ADMIN_ADDR="+admin, "SPOOL_AUTH_DISABLED=true")
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	base := "http://" + addr
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + admin + "/readyz"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if i > 100 {
			return errors.New("api not ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for range 3 {
		for id := 1; id <= r.Jobs; id++ {
			n, err := get(fmt.Sprintf("%s/v1/jobs/%d", base, id))
			if err != nil {
				return err
			}
			r.GetJobBytes = max(r.GetJobBytes, n)
		}
		n, err := get(base + "/v1/jobs?status=dead&include=errors&limit=500")
		if err != nil {
			return err
		}
		r.DeadListBytes = n
	}
	r.APIPeakRSSMiB = peakRSS(fmt.Sprint(cmd.Process.Pid))
	return nil
}

// noise is n bytes of random letters: a message that, like a real stack
// trace or response body, does not compress to nothing.
func noise(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(rand.IntN(26))
	}
	return string(b)
}

func get(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return int(n), err
}

// peakRSS is a process's peak resident set (VmHWM) in MiB.
func peakRSS(pid string) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb float64
		if _, err := fmt.Sscanf(line, "VmHWM: %f kB", &kb); err == nil {
			return float64(int(kb/1024*10)) / 10
		}
	}
	return 0
}

func recreate(ctx context.Context, admin, name string) (string, error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", err
	}
	cfg := conn.Config()
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name), nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
