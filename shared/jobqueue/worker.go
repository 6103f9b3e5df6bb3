package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Causes a job's context can be cancelled with (context.Cause).
var (
	// ErrShutdown: the worker is stopping and the job ran past the shutdown
	// timeout; it is handed back to the queue.
	ErrShutdown = errors.New("worker shutting down")
	// ErrJobTimeout: the job ran past its timeout; it fails and may retry.
	ErrJobTimeout = errors.New("job timed out")
	// ErrJobLost: the job is no longer this worker's (cancelled by a user, or
	// rescued after a missed heartbeat); nothing is written for it.
	ErrJobLost = errors.New("job no longer held by this worker")
)

// QueueConfig is one queue a worker serves and how many of its jobs it runs
// at once.
type QueueConfig struct {
	Name        string
	Concurrency int
}

// WorkerConfig configures a Worker. Zero durations take the defaults noted.
type WorkerConfig struct {
	ID              string        // unique per process; required
	Queues          []QueueConfig // required
	PollInterval    time.Duration // 1s: claim even if no notification arrives
	ShutdownTimeout time.Duration // 25s: how long running jobs may finish after stop
	LeaseDuration   time.Duration // 30s: a running job's lease, renewed every third of it
	RescueInterval  time.Duration // 15s: how often to rescue jobs of lost workers; <0 disables
	JobTimeout      time.Duration // 5m: default handler deadline
	Backoff         Backoff       // DefaultBackoff
	MaxClaim        int           // 100: most jobs one claim query takes
	PruneInterval   time.Duration // 1m: how often finished jobs past retention are deleted; <0 disables
	Retention       *Retention    // DefaultRetention
	Logger          *slog.Logger
	Metrics         *Metrics
	// TypeMaxAttempts gives the attempt limit of follow-up jobs enqueued
	// without one (Client.SetTypeMaxAttempts); nil: DefaultMaxAttempts.
	TypeMaxAttempts func(typ string) int
}

func (c *WorkerConfig) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.PollInterval, time.Second)
	def(&c.ShutdownTimeout, 25*time.Second)
	def(&c.LeaseDuration, 30*time.Second)
	def(&c.RescueInterval, 15*time.Second)
	def(&c.JobTimeout, 5*time.Minute)
	if c.Backoff == (Backoff{}) {
		c.Backoff = DefaultBackoff
	}
	def(&c.PruneInterval, time.Minute)
	if c.Retention == nil {
		c.Retention = &DefaultRetention
	}
	if c.MaxClaim <= 0 {
		c.MaxClaim = 100
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// abandonGrace is how long a handler whose context was cancelled may take to
// return before the worker stops waiting for it and frees its slot.
const abandonGrace = 500 * time.Millisecond

// Worker claims jobs from its queues and runs them.
type Worker struct {
	cfg   WorkerConfig
	pool  *pgxpool.Pool
	reg   *Registry
	types []string
	log   *slog.Logger

	producers map[string]*producer
	limits    atomic.Pointer[limitSet]
	completer *completer
	enqueuer  *Client // follow-up jobs (Then)

	mu     sync.Mutex
	active map[int64]*activeJob
	jobsWG sync.WaitGroup
}

type activeJob struct {
	job    *Job
	cancel context.CancelCauseFunc
}

// NewWorker builds a worker; Run starts it.
func NewWorker(pool *pgxpool.Pool, reg *Registry, cfg WorkerConfig) (*Worker, error) {
	cfg.setDefaults()
	if cfg.ID == "" {
		return nil, errors.New("worker: ID is required")
	}
	if len(cfg.Queues) == 0 {
		return nil, errors.New("worker: at least one queue is required")
	}
	w := &Worker{cfg: cfg, pool: pool, reg: reg, types: reg.Types(), producers: map[string]*producer{},
		active: map[int64]*activeJob{}, log: cfg.Logger.With("worker_id", cfg.ID)}
	w.completer = newCompleter(w)
	w.enqueuer = &Client{metrics: cfg.Metrics, typeAttempts: cfg.TypeMaxAttempts}
	cfg.Metrics.preset(w.types)
	slots := 0
	for _, q := range cfg.Queues {
		if q.Concurrency <= 0 {
			return nil, fmt.Errorf("worker: queue %q: concurrency must be positive", q.Name)
		}
		w.producers[q.Name] = &producer{w: w, queue: q.Name, limit: q.Concurrency,
			wake: make(chan struct{}, 1), freed: make(chan struct{}, 1)}
		slots += q.Concurrency
	}
	cfg.Metrics.setSlots(slots)
	return w, nil
}

// Run works until ctx is cancelled, then shuts down: it stops claiming at
// once, lets running jobs finish for up to ShutdownTimeout, then cancels them
// and hands them back to the queue. It returns when no job is held.
func (w *Worker) Run(ctx context.Context) error {
	// Jobs and heartbeats must outlive ctx: they end under shutdown's control.
	jobsCtx, cancelJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelJobs(ErrShutdown)
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	bg.Go(func() { w.heartbeat(bgCtx) })
	go w.completer.run(bgCtx)
	w.loadLimits(ctx)

	var loops sync.WaitGroup
	loops.Go(func() { w.listen(ctx) })
	if w.cfg.RescueInterval > 0 {
		loops.Go(func() { w.every(ctx, w.cfg.RescueInterval, w.rescueOnce) })
	}
	loops.Go(func() { w.every(ctx, limitsRefresh, w.loadLimits) })
	if w.cfg.PruneInterval > 0 {
		loops.Go(func() { w.every(ctx, w.cfg.PruneInterval, w.pruneOnce) })
	}
	for _, p := range w.producers {
		loops.Go(func() { p.loop(ctx, jobsCtx) })
	}
	w.log.Info("worker started", "queues", w.cfg.Queues, "types", w.types)
	loops.Wait()

	w.log.Info("worker stopping: no new jobs claimed", "running", w.running(), "shutdown_timeout", w.cfg.ShutdownTimeout)
	if !w.waitIdle(w.cfg.ShutdownTimeout) {
		w.log.Warn("shutdown timeout reached: cancelling running jobs and handing them back", "running", w.running())
		cancelJobs(ErrShutdown)
	}
	w.jobsWG.Wait()
	close(w.completer.in) // every job has handed in its outcome
	<-w.completer.done
	stopBg()
	bg.Wait()
	w.log.Info("worker stopped")
	return nil
}

func (w *Worker) running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.active)
}

// waitIdle waits until no job runs or d passes; it reports whether idle.
func (w *Worker) waitIdle(d time.Duration) bool {
	done := make(chan struct{})
	go func() { w.jobsWG.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// producer claims jobs of one queue into its free slots.
type producer struct {
	w     *Worker
	queue string
	limit int
	wake  chan struct{} // a notification or reconnect: new work may be due
	freed chan struct{} // a slot became free

	mu   sync.Mutex
	busy int // slots running or reserved by a claim in flight

	wakeups atomic.Int64 // times the loop woke up, for tests
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (p *producer) free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit - p.busy
}

// claimTimeout bounds one claim query, which shutdown does not interrupt.
const claimTimeout = 10 * time.Second

// gatherWindow is the most a backlogged producer waits for more slots to
// free up before claiming for the few that are: claiming one job per round
// trip would make the database, not the handlers, set the pace.
const gatherWindow = 2 * time.Millisecond

// maxRounds is how many claim rounds a producer keeps in flight. With one,
// a busy worker's slots wait for each claim's round trip in turn and the
// database sits partly idle; a second round claims for the slots that free
// up meanwhile. Rounds reserve their slots, so together they never take
// more jobs than the queue's concurrency.
const maxRounds = 2

// roundResult is what a finished claim round reports to its producer.
type roundResult struct {
	more      bool      // a claim came back full: more may be due now
	nextToken time.Time // when a rate limit's next token arrives
	wakes     int       // the producer's wake-up count when the round started
}

func (p *producer) loop(ctx, jobsCtx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var rounds sync.WaitGroup
	defer rounds.Wait() // claims in flight still start their jobs
	results := make(chan roundResult, maxRounds)
	// A busy producer claims for half its slots at once, or after the gather
	// window for fewer: per-claim costs are then shared by many jobs (+10% on
	// the drain benchmark against a quarter).
	floor := max(1, min(p.limit, p.w.cfg.MaxClaim)/2)
	var pollAt, wakeAt, gatherUntil time.Time
	inflight := 0
	more := true  // something may be due; after a short claim, only a signal says so
	full := false // the last round filled its slots: the queue is backlogged
	wakes := 0    // wake-ups and timer firings so far: one after a round began may be for a job it missed
	for ctx.Err() == nil {
		free := p.free()
		if !more {
			gatherUntil = time.Time{} // nothing to gather for until a signal
		}
		// A second round in flight only pays off in a backlog; for a wake-up
		// the round already on its way suffices.
		open := inflight == 0 || (full && inflight < maxRounds)
		canClaim := more && free > 0 && open
		if canClaim && free < floor && gatherUntil.IsZero() {
			gatherUntil = time.Now().Add(gatherWindow)
		}
		if canClaim && (free >= floor || !time.Now().Before(gatherUntil)) {
			gatherUntil = time.Time{}
			inflight++
			// Reserved here, before the next turn of the loop looks at free.
			slots, started := p.reserve(p.w.cfg.MaxClaim), wakes
			rounds.Go(func() {
				more, next := p.claimRound(ctx, jobsCtx, slots)
				results <- roundResult{more: more, nextToken: next, wakes: started}
			})
			continue
		}
		// With no slot free, or no round to start, only a freed slot or a
		// round's end can change anything: timers would only spin.
		next := time.Now().Add(p.w.cfg.PollInterval)
		if free > 0 && open {
			next = earliest(next, pollAt, wakeAt, gatherUntil)
		}
		timer.Reset(max(time.Until(next), 100*time.Microsecond))
		p.wakeups.Add(1)
		select {
		case <-ctx.Done():
		case r := <-results:
			inflight--
			full = r.more
			more, wakeAt = r.more || wakes > r.wakes, r.nextToken
			if !more && inflight == 0 {
				pollAt = time.Now().Add(p.w.cfg.PollInterval)
				if due := p.nextDue(ctx); !due.IsZero() && (wakeAt.IsZero() || due.Before(wakeAt)) {
					wakeAt = due
				}
			}
		case <-p.wake:
			more = true
			wakes++
		case <-timer.C:
			// Poll time, a due job or token, or the gather window's end. All
			// but the last may concern a job a round in flight did not see.
			if gatherUntil.IsZero() || time.Now().Before(gatherUntil) {
				wakes++
			}
			more = true
		case <-p.freed:
		}
	}
}

// earliest is the earliest non-zero time of ts (the first is never zero).
func earliest(first time.Time, ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() && t.Before(first) {
			first = t
		}
	}
	return first
}

// claimRound fills the slots reserved for it: unlimited job types in one
// claim, each limited type in a claim of its own under its limits; it gives
// back the slots it did not fill. It reports whether more may be due now,
// and when a rate limit's next token arrives.
func (p *producer) claimRound(ctx, jobsCtx context.Context, slots int) (more bool, nextToken time.Time) {
	w := p.w
	limits := w.limits.Load()
	queueLimit := limits.queues[p.queue]
	var free, limited []string
	for _, t := range w.types {
		if limits.types[t] != nil {
			limited = append(limited, t)
		} else {
			free = append(free, t)
		}
	}
	groups := make([]claimGroup, 0, 1+len(limited))
	if len(free) > 0 {
		groups = append(groups, claimGroup{types: free, limits: nonNil(queueLimit)})
	}
	for _, t := range limited {
		groups = append(groups, claimGroup{types: []string{t}, limits: nonNil(queueLimit, limits.types[t])})
	}
	defer func() { p.unreserve(slots) }()
	for _, g := range groups {
		if slots == 0 {
			return true, nextToken
		}
		n, wait, err := p.claimGroup(ctx, jobsCtx, g, slots)
		if err != nil {
			return false, nextToken
		}
		more = more || n == slots
		slots -= n
		if !wait.IsZero() && (nextToken.IsZero() || wait.Before(nextToken)) {
			nextToken = wait
		}
	}
	return more, nextToken
}

// claimGroup is some job types claimed together, under the same limits.
type claimGroup struct {
	types  []string
	limits []*Limit
}

func nonNil(ls ...*Limit) []*Limit {
	var out []*Limit
	for _, l := range ls {
		if l != nil {
			out = append(out, l)
		}
	}
	return out
}

func (p *producer) claimGroup(ctx, jobsCtx context.Context, g claimGroup, n int) (int, time.Time, error) {
	w := p.w
	var (
		jobs      []*Job
		nextToken time.Time
		err       error
	)
	// A claim is never cut off by shutdown: cancelled mid-flight, its commit
	// could still land on the server while this worker sees only an error,
	// stranding the jobs until their leases expire. Whatever it claims is
	// started, then finished or handed back like any running job.
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	if len(g.limits) == 0 {
		jobs, err = claim(qctx, w.pool, p.queue, g.types, n, w.cfg.ID, w.cfg.LeaseDuration)
	} else {
		var throttled bool
		jobs, nextToken, throttled, err = claimLimited(qctx, w.pool, p.queue, g.types, n, w.cfg.ID, w.cfg.LeaseDuration, g.limits)
		if throttled {
			w.cfg.Metrics.throttle(g.limits)
		}
	}
	w.cfg.Metrics.poll(len(jobs), err)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("claim failed", "queue", p.queue, "error", err)
		}
		return 0, time.Time{}, err
	}
	for _, job := range jobs {
		w.start(jobsCtx, p, job) // its slot was reserved by claimRound
	}
	return len(jobs), nextToken, nil
}

// nextDue asks when the queue's next delayed job becomes due, so an idle
// worker wakes for it on time rather than on the next poll.
func (p *producer) nextDue(ctx context.Context) time.Time {
	t, err := nextDue(ctx, p.w.pool, p.queue)
	if err != nil && ctx.Err() == nil {
		p.w.log.Warn("next due time unknown", "queue", p.queue, "error", err)
	}
	return t
}

// reserve takes up to n free slots for a claim about to be made, so that
// rounds in flight together never claim more than the queue's concurrency.
func (p *producer) reserve(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n = min(n, p.limit-p.busy)
	p.busy += n
	return n
}

// unreserve gives back the slots a claim reserved but did not fill.
func (p *producer) unreserve(n int) {
	if n == 0 {
		return
	}
	p.mu.Lock()
	p.busy -= n
	p.mu.Unlock()
	signal(p.freed)
}

func (p *producer) release() {
	p.mu.Lock()
	p.busy--
	p.mu.Unlock()
	signal(p.freed)
}

func (w *Worker) start(jobsCtx context.Context, p *producer, job *Job) {
	h := w.reg.handlers[job.Type] // claim only takes registered types
	timeout := w.cfg.JobTimeout
	if h.opts.Timeout > 0 {
		timeout = h.opts.Timeout
	}
	if job.Timeout != nil {
		timeout = time.Duration(*job.Timeout)
	}
	ctx, cancel := context.WithCancelCause(jobsCtx)
	w.mu.Lock()
	w.active[job.ID] = &activeJob{job: job, cancel: cancel}
	w.mu.Unlock()
	w.cfg.Metrics.started(job)
	w.jobsWG.Go(func() {
		defer p.release()
		defer w.forget(job.ID)
		defer cancel(nil)
		w.execute(ctx, h, job, timeout)
	})
}

func (w *Worker) forget(id int64) {
	w.mu.Lock()
	delete(w.active, id)
	w.mu.Unlock()
}

// execute runs one attempt and records its outcome.
func (w *Worker) execute(ctx context.Context, h handler, job *Job, timeout time.Duration) {
	ctx = w.withJobLog(ctx, job) // Logger(ctx) gives handlers the job's logger
	debug := w.log.Enabled(ctx, slog.LevelDebug)
	if debug {
		Logger(ctx).Debug("job started")
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrJobTimeout)
	defer cancel()
	ctx, out := withOutcome(ctx)
	begin := time.Now()
	err := callHandler(ctx, h.fn, job)
	elapsed := time.Since(begin)
	if err == nil && job.WorkflowID == nil && out.simple() {
		w.completer.in <- completion{job: job, elapsed: elapsed, ended: time.Now(), debug: debug} // counted once written
		return
	}
	outcome := w.record(ctx, job, out, err, context.Cause(ctx), w.backoffFor(h, job), Logger(ctx))
	w.cfg.Metrics.finished(job.Type, outcome, elapsed.Seconds())
}

// jobLog is the logger for one job's lines, the worker's and its handler's
// (through Logger): every one carries job_id, type, queue, attempt and
// worker_id. Built only when a line is written: pre-formatting these
// attributes for every job would cost more than running a small job.
func (w *Worker) jobLog(job *Job) *slog.Logger {
	return w.log.With("job_id", job.ID, "type", job.Type, "queue", job.Queue, "attempt", job.Attempts)
}

// backoffFor picks the job's own backoff, else its type's, else the worker's.
func (w *Worker) backoffFor(h handler, job *Job) Backoff {
	b := w.cfg.Backoff
	if h.opts.Backoff != nil {
		b = *h.opts.Backoff
	}
	if job.BackoffBase != nil {
		b.Base = time.Duration(*job.BackoffBase)
	}
	if job.BackoffMax != nil {
		b.Max = time.Duration(*job.BackoffMax)
	}
	return b
}

// callHandler runs fn, turning a panic into an error, and stops waiting
// abandonGrace after ctx ends: a handler that ignores its context keeps its
// goroutine (Go cannot kill it) but no longer holds the slot or the job.
func callHandler(ctx context.Context, fn HandlerFunc, job *Job) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("handler panic: %v\n%s", r, debug.Stack())
			}
		}()
		done <- fn(ctx, job)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		return err
	case <-time.After(abandonGrace):
		return fmt.Errorf("handler did not return %s after its context ended: %w", abandonGrace, context.Cause(ctx))
	}
}

// record writes an attempt's outcome and returns it for metrics.
func (w *Worker) record(ctx context.Context, job *Job, out *attemptOutcome, err, cause error, backoff Backoff, log *slog.Logger) string {
	wctx := context.WithoutCancel(ctx)
	var snz *snoozeError
	switch {
	case err == nil:
		w.write(wctx, log, "complete", func(ctx context.Context) (bool, error) {
			return completeTx(ctx, w.pool, w.enqueuer, job, w.cfg.ID, out)
		})
		log.Debug("job completed")
		return OutcomeCompleted
	case errors.Is(cause, ErrJobLost):
		log.Info("job was taken away while running (cancelled or rescued); outcome discarded")
		return OutcomeCancelled
	case errors.Is(cause, ErrShutdown):
		w.write(wctx, log, "hand back", func(ctx context.Context) (bool, error) { return handBack(ctx, w.pool, job.ID, w.cfg.ID) })
		log.Info("job handed back on shutdown")
		return OutcomeHandedBack
	case errors.As(err, &snz):
		w.write(wctx, log, "snooze", func(ctx context.Context) (bool, error) { return snooze(ctx, w.pool, job.ID, w.cfg.ID, snz.after) })
		log.Info("job snoozed", "for", snz.after)
		return OutcomeSnoozed
	}
	if errors.Is(cause, ErrJobTimeout) && !errors.Is(err, ErrJobTimeout) {
		err = fmt.Errorf("%w: %w", ErrJobTimeout, err)
	}
	var perm *permanentError
	status, delay := StatusRetrying, backoff.Delay(job.Attempts)
	if errors.As(err, &perm) || job.Attempts >= job.MaxAttempts {
		status, delay = StatusDead, 0
	}
	msg := err.Error()
	w.write(wctx, log, "fail", func(ctx context.Context) (bool, error) {
		if status == StatusDead && job.WorkflowID != nil {
			return deadTx(ctx, w.pool, w.cfg.Metrics, job, w.cfg.ID, msg)
		}
		return fail(ctx, w.pool, job.ID, w.cfg.ID, status, delay, msg)
	})
	if status == StatusDead {
		log.Error("job dead", "error", msg, "max_attempts", job.MaxAttempts)
		return OutcomeDead
	}
	log.Warn("job failed, will retry", "error", msg, "retry_in", delay)
	return OutcomeRetried
}

// write retries an outcome write through a database outage for up to one
// lease: after that the lease has run out and the rescuer owns the job.
func (w *Worker) write(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) (bool, error)) {
	deadline := time.Now().Add(w.cfg.LeaseDuration)
	pause := 50 * time.Millisecond
	for {
		ok, err := fn(ctx)
		if err == nil {
			if !ok {
				log.Info("outcome not written: job no longer held by this worker", "write", what)
			}
			return
		}
		if !errors.Is(err, ErrUnavailable) || time.Now().After(deadline) {
			log.Error("outcome not written; the job will be rescued when its lease expires", "write", what, "error", err)
			return
		}
		time.Sleep(pause)
		pause = min(pause*2, 2*time.Second)
	}
}

// heartbeat renews the leases of held jobs and cancels those the worker no
// longer owns.
func (w *Worker) heartbeat(ctx context.Context) {
	tick := time.NewTicker(w.cfg.LeaseDuration / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w.mu.Lock()
		ids := make([]int64, 0, len(w.active))
		for id := range w.active {
			ids = append(ids, id)
		}
		w.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		owned, err := renewLeases(ctx, w.pool, ids, w.cfg.ID, w.cfg.LeaseDuration)
		if err != nil {
			w.log.Warn("lease renewal failed", "error", err)
			continue
		}
		w.mu.Lock()
		for _, id := range ids {
			if a, ok := w.active[id]; ok && !owned[id] {
				a.cancel(ErrJobLost)
			}
		}
		w.mu.Unlock()
	}
}

// every runs fn every interval until ctx ends.
func (w *Worker) every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fn(ctx)
		}
	}
}

// rescueOnce returns jobs of crashed workers to the queue.
func (w *Worker) rescueOnce(ctx context.Context) {
	jobs, err := rescue(ctx, w.pool, w.cfg.Metrics, 1000)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("rescue failed", "error", err)
		}
		return
	}
	for _, j := range jobs {
		w.cfg.Metrics.rescue(j.Type, j.Status)
		w.log.Warn("rescued job of lost worker", "job_id", j.ID, "type", j.Type, "queue", j.Queue, "attempt", j.Attempts,
			"lost_worker_id", j.WorkerID, "status", j.Status)
	}
	if len(jobs) > 0 {
		w.wakeAll()
	}
}

// limitsRefresh is how soon a changed limit reaches every worker.
const limitsRefresh = 2 * time.Second

// loadLimits refreshes the cached limits; on error the old ones stay.
func (w *Worker) loadLimits(ctx context.Context) {
	ls, err := loadLimits(ctx, w.pool)
	if err != nil {
		if w.limits.Load() == nil {
			w.limits.Store(newLimitSet(nil))
		}
		if ctx.Err() == nil {
			w.log.Warn("limits not refreshed", "error", err)
		}
		return
	}
	w.limits.Store(newLimitSet(ls))
}

// pruneOnce deletes finished jobs past their retention.
func (w *Worker) pruneOnce(ctx context.Context) {
	if n := pruneOnce(ctx, w.pool, *w.cfg.Retention, w.log); n > 0 {
		w.log.Info("pruned finished jobs", "deleted", n)
	}
}

func (w *Worker) wakeAll() {
	for _, p := range w.producers {
		signal(p.wake)
	}
}

// listen wakes producers on insert notifications, on a connection of its own
// (LISTEN needs a session; PgBouncer must be in session mode for it). Lost
// notifications cost at most one poll interval.
func (w *Worker) listen(ctx context.Context) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		began := time.Now()
		err := w.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute { // it was healthy: this is a new outage
			pause = 100 * time.Millisecond
		}
		w.log.Warn("notification listener lost its connection; retrying", "error", err, "in", pause)
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(pause*2, 5*time.Second)
	}
}

func (w *Worker) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, w.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN spool_jobs`); err != nil {
		return err
	}
	w.wakeAll() // anything inserted while we were not listening
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if p, ok := w.producers[n.Payload]; ok {
			w.cfg.Metrics.wakeup()
			signal(p.wake)
		}
	}
}
