package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/jobqueue/internal/completer"
	"github.com/spoolq/spool/shared/jobqueue/internal/executor"
	"github.com/spoolq/spool/shared/jobqueue/internal/lease"
	"github.com/spoolq/spool/shared/jobqueue/internal/maintenance"
	"github.com/spoolq/spool/shared/jobqueue/internal/notifier"
	"github.com/spoolq/spool/shared/jobqueue/internal/producer"
	"github.com/spoolq/spool/shared/jobqueue/internal/store"
)

// QueueConfig is one queue a worker serves and how many of its jobs it
// runs at once.
type QueueConfig struct {
	Name        string
	Concurrency int
}

// Retention says how long finished jobs are kept, per status. Zero keeps
// them forever.
type Retention struct {
	Completed time.Duration
	Cancelled time.Duration
	Dead      time.Duration // longer by default: dead jobs wait for a human
	Effects   time.Duration // effect-ledger entries
}

// DefaultRetention keeps completed and cancelled jobs a day, dead jobs and
// effect-ledger entries a week.
var DefaultRetention = Retention{Completed: 24 * time.Hour, Cancelled: 24 * time.Hour, Dead: 7 * 24 * time.Hour, Effects: 7 * 24 * time.Hour}

// WorkerConfig configures a Worker. Zero durations take the defaults noted.
type WorkerConfig struct {
	ID              string        // unique per process; required
	Queues          []QueueConfig // required
	PollInterval    time.Duration // 1s: claim even if no notification arrives
	ShutdownTimeout time.Duration // 25s: how long running jobs may finish after stop
	LeaseDuration   time.Duration // 30s: a running job's lease, renewed every third of it
	RescueInterval  time.Duration // 15s: how often to rescue jobs of lost workers; <0 disables
	JobTimeout      time.Duration // 5m: handler deadline of jobs whose kind sets none
	Backoff         Backoff       // DefaultBackoff: for jobs whose kind sets none
	MaxClaim        int           // 100: most jobs one claim takes
	PruneInterval   time.Duration // 1m: how often finished jobs past retention are deleted; <0 disables
	Retention       *Retention    // DefaultRetention
	Logger          *slog.Logger
	Metrics         *Metrics
	// Listen is the connection the worker LISTENs on for new jobs; nil:
	// one like the pool's. Behind a pooler in transaction mode, where
	// LISTEN cannot work, give a direct URL's configuration here.
	Listen *pgx.ConnConfig
	// Version is reported in the worker registry (spool_workers).
	Version string
	// Clock is what leases are timed on locally; nil: the system clock.
	// Tests give a settable one (jobqueuetest.Clock).
	Clock Clock
}

// Clock tells the time; tests substitute one they can move.
type Clock interface {
	Now() time.Time
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
	def(&c.PruneInterval, time.Minute)
	c.Backoff = c.Backoff.Or(DefaultBackoff)
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

// Worker claims jobs of its kinds from its queues and runs them.
type Worker struct {
	cfg    WorkerConfig
	client *Client
	kinds  *Kinds
	log    *slog.Logger

	producers map[string]*producer.Producer
	limits    atomic.Pointer[producer.LimitSet]
	leases    *lease.Keeper
	completer *completer.Completer
	rescuer   *maintenance.Rescuer
	pruner    *maintenance.Pruner
	registry  *maintenance.Registry
	jobs      sync.WaitGroup
}

// NewWorker builds a worker that runs kinds with client's pool and
// schema; Run starts it.
func NewWorker(client *Client, kinds *Kinds, cfg WorkerConfig) (*Worker, error) {
	cfg.setDefaults()
	switch {
	case cfg.ID == "":
		return nil, errors.New("worker: ID is required")
	case len(cfg.Queues) == 0:
		return nil, errors.New("worker: at least one queue is required")
	case kinds == nil:
		kinds = NewKinds()
	}
	w := &Worker{cfg: cfg, client: client, kinds: kinds, producers: map[string]*producer.Producer{}, log: cfg.Logger.With("worker_id", cfg.ID)}
	m := cfg.Metrics.set()
	st, pool := client.store, client.pool
	w.leases = &lease.Keeper{Store: st, DB: pool, Lease: cfg.LeaseDuration, Metrics: m, Log: w.log, Now: nowOf(cfg.Clock)}
	w.completer = &completer.Completer{Store: st, DB: pool, Enqueuer: client.enq, Workflows: client.workflows, Metrics: m,
		Log: w.log, Lease: cfg.LeaseDuration}
	w.rescuer = &maintenance.Rescuer{Store: st, DB: pool, Workflows: client.workflows, Grace: lease.Grace(cfg.LeaseDuration),
		Backoff: cfg.Backoff, Metrics: m, Log: w.log}
	r := cfg.Retention
	w.pruner = &maintenance.Pruner{Store: st, DB: pool, Log: w.log,
		Retention: maintenance.Retention{Completed: r.Completed, Cancelled: r.Cancelled, Dead: r.Dead, Effects: r.Effects}}
	queues := map[string]int{}
	for _, q := range cfg.Queues {
		if err := CheckQueueName(q.Name); err != nil {
			return nil, fmt.Errorf("worker: queue %q: %w", q.Name, err)
		}
		if q.Concurrency <= 0 {
			return nil, fmt.Errorf("worker: queue %q: concurrency must be positive", q.Name)
		}
		if _, dup := w.producers[q.Name]; dup {
			return nil, fmt.Errorf("worker: queue %q listed twice", q.Name)
		}
		queues[q.Name] = q.Concurrency
		w.producers[q.Name] = w.newProducer(q)
	}
	host, _ := os.Hostname()
	w.registry = &maintenance.Registry{Store: st, DB: pool, Running: w.leases.Count, Log: w.log,
		Worker: WorkerInfo{ID: cfg.ID, Host: host, Version: cfg.Version, Queues: queues, Kinds: kinds.Names()}}
	m.Preset(kinds.Names())
	m.SetSlots(sum(queues))
	return w, nil
}

func nowOf(c Clock) func() time.Time {
	if c == nil {
		return nil
	}
	return c.Now
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func (w *Worker) newProducer(q QueueConfig) *producer.Producer {
	p := &producer.Producer{Queue: q.Name, Concurrency: q.Concurrency, Kinds: w.kinds.Names(), Store: w.client.store, DB: w.client.pool,
		WorkerID: w.cfg.ID, Lease: w.cfg.LeaseDuration, PollInterval: w.cfg.PollInterval, MaxClaim: w.cfg.MaxClaim,
		Limits: w.limits.Load, Metrics: w.cfg.Metrics.set(), Log: w.log, Now: nowOf(w.cfg.Clock)}
	p.Start = func(jobsCtx context.Context, c producer.Claimed) { w.start(jobsCtx, p, c) }
	return p
}

// Run works until ctx is cancelled, then shuts down: it stops claiming at
// once, lets running jobs finish for up to ShutdownTimeout, then cancels
// them and hands them back to the queue. It returns when no job is held.
func (w *Worker) Run(ctx context.Context) error {
	// Jobs and lease renewals must outlive ctx: they end under shutdown's control.
	jobsCtx, cancelJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelJobs(ErrShutdown)
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	bg.Go(func() { w.leases.Run(bgCtx) })
	w.completer.Start(bgCtx)
	w.loadLimits(ctx)

	var loops sync.WaitGroup
	loops.Go(func() { w.notifier().Run(ctx) })
	// Published before the first claim, so the API knows the kinds as soon
	// as this worker can run them; when the database refuses, announce
	// keeps trying while the worker runs.
	published := w.Publish(ctx)
	if published != nil && ctx.Err() == nil {
		w.log.Warn("kinds not published yet; retrying", "error", published)
	}
	loops.Go(func() { w.announce(ctx, published == nil) })
	if w.cfg.RescueInterval > 0 {
		loops.Go(func() {
			maintenance.Every(ctx, w.cfg.RescueInterval, func(ctx context.Context) {
				if w.rescuer.Run(ctx) {
					w.wakeAll()
				}
			})
		})
	}
	loops.Go(func() { maintenance.Every(ctx, limitsRefresh, w.loadLimits) })
	if w.cfg.PruneInterval > 0 {
		loops.Go(func() { maintenance.Every(ctx, w.cfg.PruneInterval, w.pruner.Run) })
	}
	if len(w.kinds.Names()) == 0 {
		w.log.Warn("no kinds to run: this worker only rescues, prunes and runs schedules")
	} else {
		for _, p := range w.producers {
			loops.Go(func() { p.Run(ctx, jobsCtx) })
		}
	}
	w.log.Info("worker started", "queues", w.cfg.Queues, "types", w.kinds.Names())
	loops.Wait()

	w.log.Info("worker stopping: no new jobs claimed", "running", w.leases.Count(), "shutdown_timeout", w.cfg.ShutdownTimeout)
	if !w.waitIdle(w.cfg.ShutdownTimeout) {
		w.log.Warn("shutdown timeout reached: cancelling running jobs and handing them back", "running", w.leases.Count())
		cancelJobs(ErrShutdown)
	}
	w.jobs.Wait()
	w.completer.Close() // every job has handed in its outcome
	stopBg()
	bg.Wait()
	w.registry.Stop(ctx)
	w.log.Info("worker stopped")
	return nil
}

// Publish writes the worker's kinds to the catalog and registers the
// worker. Run does it when it starts; call it first when something needs
// the catalog to hold these kinds before then (a schedules file).
func (w *Worker) Publish(ctx context.Context) error {
	if err := w.client.PublishKinds(ctx, w.cfg.ID, w.kinds); err != nil {
		return err
	}
	return w.registry.Register(ctx)
}

// announce publishes the worker's kinds and registers it unless that is
// done (retrying until the database takes them), then keeps its heartbeat
// fresh.
func (w *Worker) announce(ctx context.Context, published bool) {
	for !published {
		select {
		case <-ctx.Done():
			return
		case <-time.After(maintenance.HeartbeatInterval):
		}
		err := w.Publish(ctx)
		published = err == nil
		if err != nil && ctx.Err() == nil {
			w.log.Warn("kinds not published yet; retrying", "error", err)
		}
	}
	maintenance.Every(ctx, maintenance.HeartbeatInterval, w.registry.Beat)
}

func (w *Worker) notifier() *notifier.Notifier {
	cfg := w.cfg.Listen
	if cfg == nil {
		cfg = w.client.pool.Config().ConnConfig
	}
	return &notifier.Notifier{Config: cfg, Channel: w.client.store.Channel(), Log: w.log, WakeAll: w.wakeAll, PollInterval: w.cfg.PollInterval,
		Wake: func(queue string) {
			if p, ok := w.producers[queue]; ok {
				w.cfg.Metrics.set().Wakeup()
				p.Wake()
			}
		}}
}

func (w *Worker) wakeAll() {
	for _, p := range w.producers {
		p.Wake()
	}
}

// waitIdle waits until no job runs or d passes; it reports whether idle.
func (w *Worker) waitIdle(d time.Duration) bool {
	done := make(chan struct{})
	go func() { w.jobs.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// start runs one claimed job in a goroutine of its own; its slot was
// reserved by the producer's round and is released when it ends.
func (w *Worker) start(jobsCtx context.Context, p *producer.Producer, c producer.Claimed) {
	job := c.Job
	kd := w.kinds.m[job.Kind] // claims take only registered kinds
	ctx, cancel := context.WithCancelCause(jobsCtx)
	a := store.Attempt{ID: job.ID, Token: c.Token}
	w.leases.Add(a, c.Sent, cancel)
	w.cfg.Metrics.set().Started(job)
	at := executor.Attempt{Job: job, Timeout: w.timeout(kd, job), Backoff: w.backoff(kd, job), Log: w.log}
	w.jobs.Go(func() {
		defer p.Release()
		defer w.leases.Remove(a)
		defer cancel(nil)
		if w.log.Enabled(ctx, slog.LevelDebug) {
			executor.JobLogger(w.log, job).Debug("job started")
		}
		w.completer.Write(ctx, job, c.Token, executor.Run(ctx, kd.handle, at))
	})
}

// timeout is the job's own deadline, else its kind's, else the worker's.
func (w *Worker) timeout(kd *kind, job *Job) time.Duration {
	switch {
	case job.Timeout > 0:
		return job.Timeout
	case kd.info.Policy.Timeout > 0:
		return kd.info.Policy.Timeout
	}
	return w.cfg.JobTimeout
}

// backoff is the job's own, else its kind's, else the worker's, field by
// field.
func (w *Worker) backoff(kd *kind, job *Job) Backoff {
	return Backoff{Base: job.BackoffBase, Max: job.BackoffMax}.Or(kd.info.Policy.Backoff).Or(w.cfg.Backoff)
}

// limitsRefresh is how soon a changed limit reaches every worker.
const limitsRefresh = 2 * time.Second

// loadLimits refreshes the cached limits; on error the old ones stay.
func (w *Worker) loadLimits(ctx context.Context) {
	ls, err := w.client.Limits(ctx)
	if err != nil {
		if w.limits.Load() == nil {
			w.limits.Store(producer.NewLimitSet(nil))
		}
		if ctx.Err() == nil {
			w.log.Warn("limits not refreshed", "error", err)
		}
		return
	}
	w.limits.Store(producer.NewLimitSet(ls))
}
