// Package workerapp is the service plumbing of a Spool worker binary:
// settings from SPOOL_* variables (and -h), a JSON logger, the database
// pool and its schema check, Prometheus metrics, the admin listener
// (/metrics, /healthz, /readyz), recurring jobs, and a clean stop on
// SIGTERM that lets running jobs finish or hands them back. The stock
// spool-worker is built on it, and so is a team's own worker, which then
// is a few dozen lines:
//
//	func main() {
//		workerapp.App{Name: "thumbnailer", Register: func(kinds *jobqueue.Kinds, d workerapp.Deps) error {
//			jobqueue.AddKind(kinds, resize, nil)
//			return nil
//		}}.Main()
//	}
package workerapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/config"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/postgres"
	"github.com/spoolq/spool/shared/schedule"
	"github.com/spoolq/spool/shared/telemetry"
)

// Deps is what a binary's kinds may need: the pool (for their own tables
// and the effect ledger), the client (to enqueue), the logger, the
// configuration and the registry that /metrics serves.
type Deps struct {
	Pool     *pgxpool.Pool
	Client   *jobqueue.Client
	Logger   *slog.Logger
	Config   *Config
	Registry prometheus.Registerer
}

// App describes a worker binary.
type App struct {
	// Name is the binary's name, in logs and -h.
	Name string
	// Settings are the binary's own settings: pointers to structs with
	// envconfig tags (read with the SPOOL_ prefix, listed by -h), loaded
	// before Register runs.
	Settings []any
	// Check, if set, checks the binary's own settings once they are loaded;
	// an error is a bad configuration (exit 2).
	Check func() error
	// Register adds the binary's kinds to kinds.
	Register func(kinds *jobqueue.Kinds, d Deps) error
	// Migrations, if set, returns the migration sets besides Spool's whose
	// schema must be current before the worker starts (an application's
	// own tables); it runs after the settings are loaded.
	Migrations func(cfg *Config) ([]*postgres.Migrations, error)
}

// Main runs the worker and exits with its status: 0 after a clean stop, 1
// on a failure, 2 on a bad configuration.
func (a App) Main() {
	os.Exit(a.Run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses of Run.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Run runs the worker until SIGINT or SIGTERM and returns its exit status.
func (a App) Run(args []string, stdout, stderr io.Writer) int {
	cfg, queues, err := Load(args, stdout, a.Settings...)
	if errors.Is(err, config.ErrHelp) {
		return ExitOK
	}
	if err == nil && a.Check != nil {
		err = a.Check()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", a.Name, err)
		return ExitUsage
	}
	log, err := telemetry.NewLogger(stdout, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "%s: configuration: %v\n", a.Name, err)
		return ExitUsage
	}
	log = log.With("service", "worker")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := a.run(ctx, cfg, queues, log); err != nil {
		log.Error(a.Name+" failed", "error", err)
		return ExitFailure
	}
	return ExitOK
}

func (a App) run(ctx context.Context, cfg *Config, queues []jobqueue.QueueConfig, log *slog.Logger) error {
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, &postgres.PoolOpts{MaxConns: cfg.DBMaxConns, AppName: a.Name})
	if err != nil {
		return err
	}
	defer pool.Close()
	sets, err := a.schemas(cfg)
	if err != nil {
		return err
	}
	if err := postgres.WaitForSchema(ctx, pool, log, sets...); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	stopTracing, err := telemetry.SetupTracing(ctx, a.Name, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	reg := telemetry.NewRegistry("worker")
	reg.MustRegister(telemetry.NewPoolCollector(pool))
	metrics := jobqueue.NewMetrics(reg)
	kinds := jobqueue.NewKinds()
	client, err := jobqueue.NewClient(pool, &jobqueue.ClientOpts{Schema: cfg.DBSchema, Kinds: kinds, Metrics: metrics})
	if err != nil {
		return err
	}
	kindCatalog := catalog.New(client, nil)
	client.SetPolicies(kindCatalog)
	if a.Register != nil {
		if err := a.Register(kinds, Deps{Pool: pool, Client: client, Logger: log, Config: cfg, Registry: reg}); err != nil {
			return err
		}
	}
	worker, err := a.worker(client, kinds, cfg, queues, log, metrics)
	if err != nil {
		return err
	}
	if cfg.SchedulesFile != "" { // its payloads are checked against the catalog: this worker's kinds first
		if err := worker.Publish(ctx); err != nil {
			return fmt.Errorf("publish kinds: %w", err)
		}
	}
	stopSchedules, err := runSchedules(ctx, client, kindCatalog, cfg, log, schedule.NewMetrics(reg))
	if err != nil {
		return err
	}
	defer stopSchedules()

	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	adminErr := make(chan error, 1)
	go func() {
		adminErr <- telemetry.Serve(adminCtx, cfg.AdminAddr, telemetry.AdminHandler(reg, func(ctx context.Context) error {
			return postgres.CheckAll(ctx, pool, sets...)
		}), 2*time.Second)
	}()
	log.Info(a.Name+" starting", "version", telemetry.Version, "worker_id", cfg.WorkerID, "admin_addr", cfg.AdminAddr, "schema", cfg.DBSchema)
	runErr := worker.Run(ctx)
	stopAdmin()
	if err := <-adminErr; err != nil {
		log.Error("admin listener", "error", err)
	}
	log.Info(a.Name+" exiting", slog.Bool("clean", runErr == nil))
	return runErr
}

func (a App) schemas(cfg *Config) ([]*postgres.Migrations, error) {
	spool, err := postgres.Spool(cfg.DBSchema)
	if err != nil {
		return nil, err
	}
	sets := []*postgres.Migrations{spool}
	if a.Migrations != nil {
		more, err := a.Migrations(cfg)
		if err != nil {
			return nil, err
		}
		sets = append(sets, more...)
	}
	return sets, nil
}

func (a App) worker(client *jobqueue.Client, kinds *jobqueue.Kinds, cfg *Config, queues []jobqueue.QueueConfig,
	log *slog.Logger, metrics *jobqueue.Metrics) (*jobqueue.Worker, error) {
	wc := jobqueue.WorkerConfig{
		ID: cfg.WorkerID, Queues: queues, PollInterval: cfg.PollInterval, ShutdownTimeout: cfg.ShutdownTimeout,
		LeaseDuration: cfg.LeaseDuration, RescueInterval: offIfZero(cfg.RescueInterval), JobTimeout: cfg.JobTimeout,
		Backoff: jobqueue.Backoff{Base: cfg.BackoffBase, Max: cfg.BackoffMax}, Logger: log, Metrics: metrics,
		PruneInterval: offIfZero(cfg.PruneInterval), Version: telemetry.Version,
		Retention: &jobqueue.Retention{Completed: cfg.RetainCompleted, Cancelled: cfg.RetainCancelled, Dead: cfg.RetainDead, Effects: cfg.RetainEffects},
	}
	if cfg.ListenURL != "" {
		lc, err := pgx.ParseConfig(cfg.ListenURL)
		if err != nil {
			return nil, errors.New("SPOOL_LISTEN_DATABASE_URL: invalid connection string")
		}
		wc.Listen = lc
	}
	return jobqueue.NewWorker(client, kinds, wc)
}

// runSchedules syncs the schedules file, if any, and checks schedules
// every SPOOL_SCHEDULE_INTERVAL (0: not in this process) until ctx ends;
// the returned func waits for the batch in flight (at most 5 s).
func runSchedules(ctx context.Context, client *jobqueue.Client, v schedule.PayloadValidator, cfg *Config, log *slog.Logger,
	metrics *schedule.Metrics) (wait func(), err error) {
	schedules := schedule.NewStore(client, v, &schedule.StoreOpts{Metrics: metrics})
	if cfg.SchedulesFile != "" {
		list, err := schedule.LoadFile(cfg.SchedulesFile)
		if err != nil {
			return nil, err
		}
		if err := schedules.Sync(ctx, list); err != nil {
			return nil, fmt.Errorf("schedules file: %w", err)
		}
		log.Info("schedules loaded", "file", cfg.SchedulesFile, "count", len(list))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if cfg.ScheduleInterval > 0 {
			schedules.Run(ctx, cfg.ScheduleInterval, log)
		}
	}()
	return func() { <-done }, nil
}

// offIfZero maps the documented "0 turns it off" to the runtime's negative
// value (its zero means "default").
func offIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
