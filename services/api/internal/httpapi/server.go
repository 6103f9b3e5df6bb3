package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/shared/postgres"
	"github.com/spoolq/spool/shared/telemetry"
)

// ServerConfig sets how a Server shuts down. Every field is used as given.
type ServerConfig struct {
	// Schemas are the migration sets /readyz checks are current.
	Schemas []*postgres.Migrations
	// DrainDelay is how long /readyz fails, with the listener still
	// serving, before shutdown begins: time for load balancers to notice.
	DrainDelay time.Duration
	// ShutdownTimeout is how long in-flight requests may then finish.
	ShutdownTimeout time.Duration
	// MaxConns bounds the connections open on the listener (see
	// connLimiter); zero or less means no bound.
	MaxConns int
	// MaxHeaderBytes bounds a request's header (http.Server's, which
	// allows 4 KiB more); zero keeps telemetry.NewServer's.
	MaxHeaderBytes int
	Logger         *slog.Logger
	Registry       prometheus.Registerer // nil: no connection metrics
}

// Server states, in the only order they occur.
const (
	stateStarting int32 = iota
	stateServing
	stateDraining
)

// Server is the API's listener; it knows whether it is ready.
type Server struct {
	http  *http.Server
	pool  *pgxpool.Pool
	cfg   ServerConfig
	state atomic.Int32
	conns *connMetrics
}

// NewServer wraps h in an http.Server with every timeout set.
func NewServer(h http.Handler, pool *pgxpool.Pool, cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv := telemetry.NewServer(h)
	srv.ErrorLog = slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)
	if cfg.MaxHeaderBytes > 0 {
		srv.MaxHeaderBytes = cfg.MaxHeaderBytes
	}
	return &Server{http: srv, pool: pool, cfg: cfg, conns: newConnMetrics(cfg.Registry)}
}

// Run serves on ln until ctx ends, then shuts down in the order Kubernetes
// needs: readiness fails at once, requests are still served for DrainDelay,
// then Shutdown lets in-flight requests finish within ShutdownTimeout, and
// whatever remains is closed. A clean stop returns nil.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	lim := newConnLimiter(ln, s.cfg.MaxConns, s.conns)
	s.http.ConnState = lim.connState
	ln = lim
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(ln) }()
	s.state.Store(stateServing)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.state.Store(stateDraining)
	log := s.cfg.Logger
	log.Info("shutting down: /readyz fails from now; draining", "drain_delay", s.cfg.DrainDelay.String())
	time.Sleep(s.cfg.DrainDelay)

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil {
		log.Warn("requests still running at the shutdown timeout; closing their connections",
			"shutdown_timeout", s.cfg.ShutdownTimeout.String())
		_ = s.http.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("api listener stopped")
	return nil
}

// Ready reports why the API should not receive traffic, or nil: it is not
// serving yet or is draining, the database does not answer, or its schema
// is not the one this binary was built for.
func (s *Server) Ready(ctx context.Context) error {
	switch s.state.Load() {
	case stateStarting:
		return errors.New("not serving yet")
	case stateDraining:
		return errors.New("shutting down")
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return postgres.CheckAll(ctx, s.pool, s.cfg.Schemas...)
}
