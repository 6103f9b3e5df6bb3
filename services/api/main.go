// Command spool-api serves Spool's HTTP API. `spool-api migrate` applies the
// database schema and exits; `spool-api -h` lists the configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spoolq/spool/examples/orders"
	"github.com/spoolq/spool/services/api/internal/dashboard"
	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/services/api/internal/settings"
	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/httpkind"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/postgres"
	"github.com/spoolq/spool/shared/telemetry"
)

// Exit codes: 2 for a bad command line or configuration, 1 for a failure.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd, help, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "spool-api: %v\nusage: spool-api [migrate] [-h]\n", err)
		return exitUsage
	}
	if help {
		fmt.Fprint(stdout, "usage: spool-api [migrate]\n  (no command)  serve the HTTP API\n  migrate       apply database migrations and exit\n\n")
		_, _ = settings.Load([]string{"-h"}, stdout)
		return exitOK
	}
	cfg, err := settings.Load(nil, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "spool-api: %v\n", err)
		return exitUsage
	}
	log, err := telemetry.NewLogger(stdout, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "spool-api: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if cmd == "migrate" {
		return migrate(ctx, cfg, log)
	}
	return serve(ctx, stop, cfg, log)
}

// parseArgs accepts an optional command and -h; everything else is
// configured through the environment.
func parseArgs(args []string) (cmd string, help bool, err error) {
	cmd = "serve"
	for i, a := range args {
		switch {
		case a == "-h" || a == "-help" || a == "--help":
			help = true
		case a == "migrate" && i == 0:
			cmd = a
		default:
			return "", false, fmt.Errorf("unexpected argument %q (configuration is read from the environment; see -h)", a)
		}
	}
	return cmd, help, nil
}

// schemas are the migration sets this configuration needs: Spool's own,
// and the demo's when it is on.
func schemas(cfg settings.Config) []*postgres.Migrations {
	spool, err := postgres.Spool(cfg.DBSchema)
	if err != nil {
		panic(err) // settings.Load checked the name
	}
	sets := []*postgres.Migrations{spool}
	if cfg.Demo {
		sets = append(sets, orders.Migrations())
	}
	return sets
}

// migrate applies pending migrations under the advisory lock, so any number
// of concurrent runs is safe, and reports what it did.
func migrate(ctx context.Context, cfg settings.Config, log *slog.Logger) int {
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, &postgres.PoolOpts{MaxConns: 2, AppName: "spool-api-migrate"})
	if err != nil {
		log.Error("migrate: cannot open database pool", "error", err)
		return exitFailure
	}
	defer pool.Close()
	sets := schemas(cfg)
	applied, err := postgres.ApplyAll(ctx, pool, sets...)
	if err != nil {
		log.Error("migrate: failed", "error", err, "applied_before_failure", applied)
		return exitFailure
	}
	for _, m := range sets {
		if v := applied[m.Name]; len(v) > 0 {
			log.Info("migrate: applied migrations", "set", m.Name, "schema", m.Schema, "versions", v, "version", m.Latest())
		} else {
			log.Info("migrate: schema already current", "set", m.Name, "schema", m.Schema, "version", m.Latest())
		}
	}
	return exitOK
}

// serve runs the API until SIGINT or SIGTERM; stopSignals restores the
// default signal behaviour, so a second signal during the drain kills.
func serve(ctx context.Context, stopSignals func(), cfg settings.Config, log *slog.Logger) int {
	if err := cfg.CheckAuth(); err != nil {
		log.Error("refusing to start", "error", err)
		return exitUsage
	}
	log.Info("spool-api starting", "version", telemetry.Version, "http_addr", cfg.HTTPAddr, "admin_addr", cfg.AdminAddr,
		"auth", authMode(cfg), "schema", cfg.DBSchema, "demo", cfg.Demo, "open_kinds", cfg.Open, "tracing", telemetry.TracingEnabled())
	stopTracing, err := telemetry.SetupTracing(ctx, "spool-api", log)
	if err != nil {
		log.Error("refusing to start", "error", err)
		return exitUsage
	}
	defer stopTracing()
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, &postgres.PoolOpts{MaxConns: cfg.DBMaxConns, AppName: "spool-api"})
	if err != nil {
		log.Error("cannot open database pool", "error", err)
		return exitFailure
	}
	defer pool.Close() // last: after both listeners have stopped

	reg := telemetry.NewRegistry("api")
	reg.MustRegister(telemetry.NewPoolCollector(pool))
	client, err := jobqueue.NewClient(pool, &jobqueue.ClientOpts{Schema: cfg.DBSchema, Metrics: jobqueue.NewClientMetrics(reg)})
	if err != nil {
		log.Error("refusing to start", "error", err)
		return exitUsage
	}
	kinds := catalog.New(client, cfg.Open)
	check, err := httpkind.EnqueueCheck(cfg.HTTPKind(), nil) // validated: cannot fail
	if err != nil {
		log.Error("refusing to start", "error", err)
		return exitUsage
	}
	kinds.Check(httpkind.Request{}.Kind(), check)
	client.SetPolicies(kinds)
	opts := &httpapi.Opts{
		MaxPayloadBytes: cfg.MaxPayloadBytes, MaxBatch: cfg.MaxBatch, MaxBatchBytes: cfg.MaxBatchBytes, MaxResponseBytes: cfg.MaxResponseBytes,
		RequestTimeout: cfg.RequestTimeout, MaxInFlight: cfg.MaxInFlight, InFlightWait: orNone(cfg.InFlightWait), MaxSchedules: cfg.MaxSchedules, Tokens: cfg.Tokens,
		BodyTimeout: cfg.BodyTimeout, MaxBufferedBytes: cfg.MaxBuffered,
		Catalog: kinds, Logger: log, Registry: reg, Counts: jobqueue.NewCountsCache(client, cfg.StatsMaxAge),
	}
	if cfg.Demo {
		opts.Extensions = orders.Routes(orders.NewStore(client))
	}
	sets := schemas(cfg)
	api := httpapi.NewServer(dashboard.Mount(httpapi.New(client, opts)), pool,
		httpapi.ServerConfig{DrainDelay: cfg.DrainDelay, ShutdownTimeout: cfg.ShutdownTimeout, Logger: log, Schemas: sets,
			MaxConns: cfg.MaxConns, MaxHeaderBytes: cfg.MaxHeaderBytes, Registry: reg})

	// The admin listener starts first so /healthz answers (and /readyz says
	// why not) while the database is awaited, and stops after the API.
	stopAdmin, err := startAdmin(cfg.AdminAddr, telemetry.AdminHandler(reg, api.Ready), log)
	if err != nil {
		log.Error("cannot start admin listener", "error", err)
		return exitFailure
	}
	defer stopAdmin()

	if err := postgres.WaitForSchema(ctx, pool, log, sets...); err != nil {
		if ctx.Err() != nil {
			log.Info("stopped while waiting for the database")
			return exitOK
		}
		log.Error("refusing to start: "+err.Error(), "error", err)
		return exitFailure
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.HTTPAddr, "error", err)
		return exitFailure
	}
	log.Info("api listening", "addr", ln.Addr().String())
	gaugesCtx, stopGauges := context.WithCancel(ctx)
	gaugesDone := make(chan struct{})
	go func() {
		defer close(gaugesDone)
		jobqueue.NewQueueGauges(opts.Counts, reg).Run(gaugesCtx, cfg.StatsInterval, log)
	}()
	defer func() { stopGauges(); <-gaugesDone }()
	context.AfterFunc(ctx, stopSignals)
	if err := api.Run(ctx, ln); err != nil {
		log.Error("api listener failed", "error", err)
		return exitFailure
	}
	log.Info("spool-api stopped")
	return exitOK
}

func authMode(cfg settings.Config) string {
	if cfg.AuthDisabled {
		return "disabled"
	}
	return fmt.Sprintf("%d bearer token(s)", len(cfg.Tokens))
}

// startAdmin serves /metrics, /healthz and /readyz on addr; the returned
// func stops it.
func startAdmin(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := telemetry.NewServer(h)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener failed", "error", err)
		}
	}()
	log.Info("admin listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// orNone maps a configured zero duration (none) to the API's negative.
func orNone(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
