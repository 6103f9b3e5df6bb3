// Command spool-worker claims jobs from the Spool queue and runs them.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spoolq/spool/services/worker/internal/handlers"
	"github.com/spoolq/spool/services/worker/internal/settings"
	"github.com/spoolq/spool/shared/config"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/jobs"
	"github.com/spoolq/spool/shared/postgres"
	"github.com/spoolq/spool/shared/schedule"
	"github.com/spoolq/spool/shared/telemetry"
)

func main() {
	if err := run(); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "spool-worker:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, queues, err := settings.Load(os.Args[1:], os.Stdout)
	if err != nil {
		return err
	}
	log, err := telemetry.NewLogger(os.Stdout, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log = log.With("service", "worker")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, &postgres.PoolOpts{MaxConns: cfg.DBMaxConns, AppName: "spool-worker"})
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.WaitForSchema(ctx, pool, log); err != nil {
		return err
	}

	reg := telemetry.NewRegistry("worker")
	reg.MustRegister(telemetry.NewPoolCollector(pool))
	metrics := jobqueue.NewMetrics(reg)
	handlerReg := jobqueue.NewRegistry()
	handlers.Register(handlerReg, handlers.Options{
		Pool: pool, Diagnostic: cfg.DiagnosticJobs, Latency: cfg.SimLatency,
		EmailFailure: cfg.SimEmailFailure, InvoiceFailure: cfg.SimInvoiceFail, InventoryFailure: cfg.SimInventoryFail, PaymentFailure: cfg.SimPaymentFail,
	})
	worker, err := jobqueue.NewWorker(pool, handlerReg, jobqueue.WorkerConfig{
		ID: cfg.WorkerID, Queues: queues, PollInterval: cfg.PollInterval, ShutdownTimeout: cfg.ShutdownTimeout,
		LeaseDuration: cfg.LeaseDuration, RescueInterval: offIfZero(cfg.RescueInterval), JobTimeout: cfg.JobTimeout,
		Backoff: jobqueue.Backoff{Base: cfg.BackoffBase, Max: cfg.BackoffMax}, Logger: log, Metrics: metrics, TypeMaxAttempts: jobs.MaxAttemptsOf,
		PruneInterval: offIfZero(cfg.PruneInterval), Retention: &jobqueue.Retention{Completed: cfg.RetainCompleted,
			Cancelled: cfg.RetainCancelled, Dead: cfg.RetainDead, Effects: cfg.RetainEffects},
	})
	if err != nil {
		return err
	}

	scheduled := jobqueue.NewClient(pool, metrics)
	scheduled.SetTypeMaxAttempts(jobs.MaxAttemptsOf)
	schedules := schedule.NewStore(pool, scheduled)
	if cfg.SchedulesFile != "" {
		list, err := schedule.LoadFile(cfg.SchedulesFile)
		if err != nil {
			return err
		}
		if err := schedules.Sync(ctx, list); err != nil {
			return fmt.Errorf("schedules file: %w", err)
		}
		log.Info("schedules loaded", "file", cfg.SchedulesFile, "count", len(list))
	}
	schedulerDone := make(chan struct{})
	go func() {
		defer close(schedulerDone)
		if cfg.ScheduleInterval > 0 {
			schedules.Run(ctx, cfg.ScheduleInterval, log)
		}
	}()
	defer func() { <-schedulerDone }() // ends with ctx, after the check in flight (at most 5 s)

	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	adminErr := make(chan error, 1)
	go func() {
		adminErr <- telemetry.Serve(adminCtx, cfg.AdminAddr, telemetry.AdminHandler(reg, func(ctx context.Context) error {
			return postgres.CheckSchema(ctx, pool)
		}), 2*time.Second)
	}()
	log.Info("spool-worker starting", "version", telemetry.Version, "worker_id", cfg.WorkerID, "admin_addr", cfg.AdminAddr)

	runErr := worker.Run(ctx)
	stopAdmin()
	if err := <-adminErr; err != nil {
		log.Error("admin listener", "error", err)
	}
	log.Info("spool-worker exiting", slog.Bool("clean", runErr == nil))
	return runErr
}

// offIfZero maps the documented "0 turns it off" to the runtime's negative
// value (its zero means "default").
func offIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
