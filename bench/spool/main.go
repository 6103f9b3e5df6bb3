// Command spool-bench measures Spool on a local PostgreSQL following the
// system-neutral protocol (bulk insert, drain, concurrent produce-and-work,
// pick-up latency, growth), using Spool's own queue package to insert and
// its real worker runtime to work. It prints one JSON object per run on
// stdout, with the same fields as the River harness, so compare.sh can pair
// them; progress goes to stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"regexp"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/postgres"
)

type opts struct {
	url, db, mode, insertMethod, dumpLatencies string
	n, workers, insertBatch, maxConns          int
	prefillFinished, prefillExpired            int
	concurrent                                 bool
	rate                                       float64
	duration, warmup, tail, timeout, poll      time.Duration
}

func main() {
	var o opts
	flag.StringVar(&o.url, "url", envOr("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "admin connection URL (env BENCH_PG_URL)")
	flag.StringVar(&o.db, "db", "bench_spool", "benchmark database (dropped and recreated every run)")
	flag.StringVar(&o.mode, "mode", "throughput", "throughput | latency")
	flag.IntVar(&o.n, "n", 100000, "throughput: number of jobs")
	flag.IntVar(&o.workers, "workers", 100, "worker concurrency of the default queue")
	flag.IntVar(&o.insertBatch, "insert-batch", 1000, "throughput: jobs per insert call (one transaction each)")
	flag.StringVar(&o.insertMethod, "insert-method", "copy", "throughput: copy (EnqueueManyFast) | many (EnqueueMany, multi-row INSERT)")
	flag.BoolVar(&o.concurrent, "concurrent", true, "throughput: also run the concurrent produce-while-working phase")
	flag.Float64Var(&o.rate, "rate", 100, "latency: single-job inserts per second")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "latency: measured duration")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "latency: unmeasured warm-up")
	flag.DurationVar(&o.tail, "tail", time.Second, "latency: unmeasured inserts after the measured period")
	flag.StringVar(&o.dumpLatencies, "dump-latencies", "", "latency: write per-job CSV here")
	flag.IntVar(&o.maxConns, "max-conns", 10, "Postgres connections of the process, LISTEN connection included")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "abort the run after this long")
	flag.IntVar(&o.prefillFinished, "prefill-finished", 0, "throughput: completed jobs written before measuring (then VACUUM ANALYZE)")
	flag.IntVar(&o.prefillExpired, "prefill-expired", 0, "latency: completed jobs already past retention, which the worker prunes while latency is measured")
	flag.DurationVar(&o.poll, "poll-interval", 0, "worker poll interval (0: Spool's default, 1s)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			logf("cpuprofile: %v", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(o); err != nil {
		logf("error: %v", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

var dbNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func run(o opts) error {
	if !dbNameRE.MatchString(o.db) || (o.mode != "throughput" && o.mode != "latency") ||
		(o.insertMethod != "copy" && o.insertMethod != "many") {
		return errors.New("invalid -db, -mode or -insert-method")
	}
	if o.n <= 0 || o.workers <= 0 || o.insertBatch <= 0 || o.rate <= 0 || o.maxConns < 3 {
		return errors.New("-n, -workers, -insert-batch, -rate must be > 0 and -max-conns >= 3")
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	start := time.Now()
	res := newResult(o, start)
	if err := recreateDB(ctx, o.url, o.db); err != nil {
		return err
	}
	pool, err := openPool(ctx, o)
	if err != nil {
		return err
	}
	defer pool.Close()
	spool, err := postgres.Spool("")
	if err != nil {
		return err
	}
	if _, err := spool.Apply(ctx, pool); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := prefill(ctx, pool, o.prefillFinished, o.prefillExpired); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	if err := pool.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('synchronous_commit'),
		current_setting('fsync'), current_setting('shared_buffers')`).Scan(&res.Postgres.ServerVersion,
		&res.Postgres.SynchronousCommit, &res.Postgres.Fsync, &res.Postgres.SharedBuffers); err != nil {
		return err
	}
	client, err := jobqueue.NewClient(pool, nil)
	if err != nil {
		return err
	}
	b := &bench{o: o, pool: pool, client: client, res: res}
	if o.mode == "throughput" {
		err = b.throughput(ctx)
	} else {
		err = b.latency(ctx)
	}
	if err != nil {
		return err
	}
	res.WallS = round3(time.Since(start).Seconds())
	out, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

// openPool sizes the pool so that it plus the worker's LISTEN connection
// stay within -max-conns.
func openPool(ctx context.Context, o opts) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(postgresURL(o.url, o.db))
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(o.maxConns - 1)
	return pgxpool.NewWithConfig(ctx, cfg)
}

func postgresURL(admin, db string) string {
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		return admin
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, db)
}

func recreateDB(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect admin: %w", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+ident)
	return err
}

// baseID is the largest id before measuring: checks count only jobs above it.
var baseID int64

// prefill writes completed jobs as Spool keeps them for a day by default:
// finished ones just now, and expired ones two days ago, past retention, for
// the pruner to delete while latency is measured.
func prefill(ctx context.Context, pool *pgxpool.Pool, finished, expired int) error {
	for _, set := range []struct {
		n   int
		age string
	}{{finished, "0"}, {expired, "2 days"}} {
		if set.n == 0 {
			continue
		}
		logf("prefill: writing %d completed jobs finished %s ago", set.n, set.age)
		if _, err := pool.Exec(ctx, `INSERT INTO spool.spool_jobs (type, status, attempts, started_at, finished_at, payload)
			SELECT 'bench_noop', 'completed', 1, now() - $2::interval, now() - $2::interval, '{"seq":0}'
			FROM generate_series(1, $1)`, set.n, set.age); err != nil {
			return err
		}
	}
	if finished+expired > 0 {
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE spool.spool_jobs`); err != nil {
			return err
		}
	}
	return pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM spool.spool_jobs`).Scan(&baseID)
}

func loadAvg() *float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var v float64
	if _, err := fmt.Sscanf(string(b), "%f", &v); err != nil {
		return nil
	}
	return &v
}

// rssMiB is the process's resident set size.
func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	var kb float64
	for _, line := range splitLines(string(b)) {
		if _, err := fmt.Sscanf(line, "VmRSS: %f kB", &kb); err == nil {
			return round3(kb / 1024)
		}
	}
	return 0
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
func f64(v float64) *float64   { v = round3(v); return &v }
func intp(v int) *int          { return &v }

// bench holds one run's shared state.
type bench struct {
	o      opts
	pool   *pgxpool.Pool
	client *jobqueue.Client
	res    *result
}

// phase counts handler runs and closes done when target is reached.
type phase struct {
	target int64
	n      atomic.Int64
	once   sync.Once
	done   chan struct{}
}

func newPhase(n int) *phase { return &phase{target: int64(n), done: make(chan struct{})} }

func (p *phase) hit() {
	if p.n.Add(1) == p.target {
		p.once.Do(func() { close(p.done) })
	}
}

// startWorker runs Spool's worker runtime until the returned stop is called.
func (b *bench) startWorker(ctx context.Context, reg *jobqueue.Kinds) (stop func() error, err error) {
	w, err := jobqueue.NewWorker(b.client, reg, jobqueue.WorkerConfig{
		ID: "bench", Queues: []jobqueue.QueueConfig{{Name: jobqueue.DefaultQueue, Concurrency: b.o.workers}},
		PollInterval: b.o.poll, PruneInterval: b.pruneInterval(), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	return func() error { cancel(); return <-done }, nil
}

// pruneInterval is Spool's default, except when expired jobs were written
// for the pruner: then its first round starts as the measured period does
// (after the 1 s idle and the warm-up).
func (b *bench) pruneInterval() time.Duration {
	if b.o.prefillExpired > 0 {
		return time.Second + b.o.warmup
	}
	return 0
}

// waitCompleted polls (at most every 5 ms) until n jobs above baseID are
// completed in the database and none is in another state.
func (b *bench) waitCompleted(ctx context.Context, n int) error {
	for {
		var done, other int
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'completed'),
			count(*) FILTER (WHERE status <> 'completed') FROM spool.spool_jobs WHERE id > $1`, baseID).Scan(&done, &other); err != nil {
			return err
		}
		if done >= n {
			if other != 0 || done != n {
				return fmt.Errorf("unexpected states: completed=%d other=%d want=%d", done, other, n)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for completion (%d/%d): %w", done, n, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (b *bench) insertRange(ctx context.Context, from, to int) error {
	ps := make([]jobqueue.EnqueueParams, 0, to-from)
	for i := from; i < to; i++ {
		ps = append(ps, jobqueue.EnqueueParams{Kind: "bench_noop", Payload: json.RawMessage(fmt.Sprintf(`{"seq":%d}`, i))})
	}
	if b.o.insertMethod == "copy" {
		_, err := b.client.EnqueueManyFast(ctx, ps)
		return err
	}
	_, err := b.client.EnqueueMany(ctx, ps)
	return err
}

func (b *bench) insertAll(ctx context.Context) error {
	for from := 0; from < b.o.n; from += b.o.insertBatch {
		if err := b.insertRange(ctx, from, min(from+b.o.insertBatch, b.o.n)); err != nil {
			return err
		}
	}
	return nil
}

// sampleRSS records the peak RSS until stop is closed.
func sampleRSS(peak *atomic.Uint64, stop <-chan struct{}) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if v := math.Float64bits(rssMiB()); v > peak.Load() {
			peak.Store(v)
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (b *bench) throughput(ctx context.Context) error {
	o, res := b.o, b.res
	var cur atomic.Pointer[phase]
	reg := jobqueue.NewKinds()
	reg.Handle("bench_noop", func(context.Context, *jobqueue.Job) error { cur.Load().hit(); return nil }, nil)

	logf("bulk insert: %d jobs, batch %d, %s", o.n, o.insertBatch, o.insertMethod)
	t0 := time.Now()
	if err := b.insertAll(ctx); err != nil {
		return fmt.Errorf("bulk insert: %w", err)
	}
	insertDur := time.Since(t0)
	var avail int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_jobs WHERE status = 'pending' AND id > $1`, baseID).Scan(&avail); err != nil || avail != o.n {
		return fmt.Errorf("after insert: %d pending jobs (err %v), want %d", avail, err, o.n)
	}
	res.InsertS, res.InsertJobsPerS = f64(insertDur.Seconds()), f64(float64(o.n)/insertDur.Seconds())

	p := newPhase(o.n)
	cur.Store(p)
	var peak atomic.Uint64
	stopRSS := make(chan struct{})
	go sampleRSS(&peak, stopRSS)
	t1 := time.Now()
	stop, err := b.startWorker(ctx, reg)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return fmt.Errorf("drain: %d/%d: %w", p.n.Load(), o.n, ctx.Err())
	}
	execDur := time.Since(t1)
	if err := b.waitCompleted(ctx, o.n); err != nil {
		return err
	}
	workDur := time.Since(t1)
	close(stopRSS)
	res.RSSPeakMiB = f64(math.Float64frombits(peak.Load()))
	res.WorkS, res.WorkJobsPerS = f64(workDur.Seconds()), f64(float64(o.n)/workDur.Seconds())
	res.ExecutedJobsPerS = f64(float64(o.n) / execDur.Seconds())
	logf("drain: %.3fs -> %.0f jobs/s (executed in %.3fs), peak RSS %.1f MiB", workDur.Seconds(), float64(o.n)/workDur.Seconds(), execDur.Seconds(), *res.RSSPeakMiB)
	if err := stop(); err != nil {
		return err
	}
	if !o.concurrent {
		return nil
	}
	return b.concurrentPhase(ctx, reg, &cur)
}

func (b *bench) concurrentPhase(ctx context.Context, reg *jobqueue.Kinds, cur *atomic.Pointer[phase]) error {
	o, res := b.o, b.res
	if _, err := b.pool.Exec(ctx, `DELETE FROM spool.spool_jobs WHERE id > $1`, baseID); err != nil {
		return err
	}
	p := newPhase(o.n)
	cur.Store(p)
	stop, err := b.startWorker(ctx, reg)
	if err != nil {
		return err
	}
	time.Sleep(time.Second)
	res.RSSIdleMiB = f64(rssMiB())
	logf("concurrent: producing %d jobs while working (idle RSS %.1f MiB)", o.n, *res.RSSIdleMiB)
	t2 := time.Now()
	if err := b.insertAll(ctx); err != nil {
		return fmt.Errorf("concurrent insert: %w", err)
	}
	prodDur := time.Since(t2)
	select {
	case <-p.done:
	case <-ctx.Done():
		return fmt.Errorf("concurrent: %d/%d: %w", p.n.Load(), o.n, ctx.Err())
	}
	if err := b.waitCompleted(ctx, o.n); err != nil {
		return err
	}
	susDur := time.Since(t2)
	res.SustainedS, res.SustainedJobsPerS = f64(susDur.Seconds()), f64(float64(o.n)/susDur.Seconds())
	res.ConcurrentInsertJobsPerS = f64(float64(o.n) / prodDur.Seconds())
	logf("concurrent: %.3fs -> %.0f jobs/s sustained", susDur.Seconds(), float64(o.n)/susDur.Seconds())
	return stop()
}

func (b *bench) latency(ctx context.Context) error {
	o, res := b.o, b.res
	interval := time.Duration(float64(time.Second) / o.rate)
	count, warm, tail := int(o.duration.Seconds()*o.rate), int(o.warmup.Seconds()*o.rate), int(o.tail.Seconds()*o.rate)
	total := warm + count + tail
	lat := make([]int64, total)
	for i := range lat {
		lat[i] = -1
	}
	var seen atomic.Int64
	reg := jobqueue.NewKinds()
	reg.Handle("bench_latency", func(_ context.Context, j *jobqueue.Job) error {
		now := time.Now().UnixNano()
		var a struct {
			Seq int   `json:"seq"`
			At  int64 `json:"enqueued_at_ns"`
		}
		if json.Unmarshal(j.Payload, &a) == nil && a.Seq >= 0 && a.Seq < total {
			atomic.StoreInt64(&lat[a.Seq], now-a.At)
			seen.Add(1)
		}
		return nil
	}, nil)
	stop, err := b.startWorker(ctx, reg)
	if err != nil {
		return err
	}
	defer stop() //nolint:errcheck
	time.Sleep(time.Second)
	res.RSSIdleMiB = f64(rssMiB())
	logf("latency: %d warm-up, %d measured, %d tail at %.0f/s", warm, count, tail, o.rate)

	stopWatch := make(chan struct{})
	var pruneGone <-chan time.Time
	if b.o.prefillExpired > 0 {
		pruneGone = b.watchPrune(ctx, stopWatch)
	}
	insertLat := make([]int64, total)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	begin := time.Now()
	var measureStart, measureLast time.Time
	for i := 0; i < total && ctx.Err() == nil; i++ {
		if d := time.Until(begin.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if i == warm {
			measureStart = time.Now()
		}
		if i >= warm && i < warm+count {
			measureLast = time.Now()
		}
		wg.Go(func() {
			t := time.Now()
			payload := json.RawMessage(fmt.Sprintf(`{"seq":%d,"enqueued_at_ns":%d}`, i, t.UnixNano()))
			if _, err := b.client.Enqueue(ctx, jobqueue.EnqueueParams{Kind: "bench_latency", Payload: payload}); err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			insertLat[i] = int64(time.Since(t))
		})
	}
	span := measureLast.Sub(measureStart) + interval
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for seen.Load() < int64(total) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if b.o.prefillExpired > 0 {
		close(stopWatch)
		if err := b.reportPrune(ctx, <-pruneGone, measureStart, measureStart.Add(span)); err != nil {
			return err
		}
	}
	return fillLatency(res, o, lat, insertLat, warm, count, total, span)
}

// watchPrune samples, every 100 ms until stop is closed, whether expired
// jobs remain, and returns when the last of them was seen gone (zero: never).
func (b *bench) watchPrune(ctx context.Context, stop <-chan struct{}) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		var gone time.Time
		defer func() { out <- gone }()
		for {
			var left bool
			if err := b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM spool.spool_jobs WHERE id <= $1)`, baseID).Scan(&left); err == nil && !left {
				gone = time.Now()
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return out
}

// reportPrune records how many expired jobs the pruner deleted during the
// run and for how much of the measured period it was deleting; it fails if
// the pruner never ran.
func (b *bench) reportPrune(ctx context.Context, gone time.Time, measureStart, measureEnd time.Time) error {
	var left int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_jobs WHERE id <= $1`, baseID).Scan(&left); err != nil {
		return err
	}
	pruned := b.o.prefillExpired - left
	covered := 1.0
	if !gone.IsZero() {
		covered = min(1, max(0, gone.Sub(measureStart).Seconds()/measureEnd.Sub(measureStart).Seconds()))
	}
	b.res.PrunedDuringRun, b.res.PruneCoveredMeasured = intp(pruned), f64(covered)
	logf("prune: %d of %d expired jobs deleted; pruning went on through %.0f%% of the measured period", pruned, b.o.prefillExpired, covered*100)
	if pruned == 0 {
		return fmt.Errorf("the pruner deleted none of %d expired jobs", b.o.prefillExpired)
	}
	return nil
}

func fillLatency(res *result, o opts, lat, insertLat []int64, warm, count, total int, span time.Duration) error {
	var lats, ins []float64
	missing := 0
	for i := warm; i < warm+count; i++ {
		ins = append(ins, float64(insertLat[i])/1e6)
		if v := atomic.LoadInt64(&lat[i]); v >= 0 {
			lats = append(lats, float64(v)/1e6)
		} else {
			missing++
		}
	}
	if len(lats) == 0 {
		return errors.New("no latency samples")
	}
	sort.Float64s(lats)
	sort.Float64s(ins)
	sum := 0.0
	for _, v := range lats {
		sum += v
	}
	tailMax := -1.0
	for i := warm + count; i < total; i++ {
		if v := atomic.LoadInt64(&lat[i]); v >= 0 {
			tailMax = max(tailMax, float64(v)/1e6)
		}
	}
	res.N, res.Rate, res.DurationS = count, f64(o.rate), f64(o.duration.Seconds())
	res.Samples, res.Missing = intp(len(lats)), intp(missing)
	res.P50Ms, res.P90Ms, res.P99Ms = f64(pct(lats, 50)), f64(pct(lats, 90)), f64(pct(lats, 99))
	res.MaxMs, res.MeanMs = f64(lats[len(lats)-1]), f64(sum/float64(len(lats)))
	res.InsertP50Ms, res.InsertP99Ms = f64(pct(ins, 50)), f64(pct(ins, 99))
	res.AchievedRate = f64(float64(count) / span.Seconds())
	if tailMax >= 0 {
		res.TailMaxMs = f64(tailMax)
	}
	logf("latency: p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms tail max %.2fms (missing %d)", *res.P50Ms, *res.P90Ms, *res.P99Ms, *res.MaxMs, tailMax, missing)
	if o.dumpLatencies != "" {
		return dump(o.dumpLatencies, lat, insertLat, warm, count)
	}
	return nil
}

func dump(path string, lat, insertLat []int64, warm, count int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	fmt.Fprintln(f, "index,phase,pickup_ms,insert_ms")
	for i := range lat {
		ph := "measured"
		if i < warm {
			ph = "warmup"
		} else if i >= warm+count {
			ph = "tail"
		}
		fmt.Fprintf(f, "%d,%s,%.3f,%.3f\n", i, ph, float64(atomic.LoadInt64(&lat[i]))/1e6, float64(insertLat[i])/1e6)
	}
	return f.Close()
}

// pct is the nearest-rank percentile of sorted values.
func pct(sorted []float64, p float64) float64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}
