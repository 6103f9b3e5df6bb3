// Package postgres owns Spool's connection pool and schema migrations.
package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolOpts tunes a pool; nil means defaults.
type PoolOpts struct {
	// MaxConns caps the pool unless the URL sets pool_max_conns itself.
	MaxConns int32
	// AppName is reported to Postgres as application_name.
	AppName string
}

// Connect opens a pool without waiting for the database: a service must start
// (and report not-ready) during a database outage rather than crash-loop.
func Connect(ctx context.Context, url string, opts *PoolOpts) (*pgxpool.Pool, error) {
	cfg, err := ParseConfig(url, opts)
	if err != nil {
		return nil, err
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// ParseConfig builds a pool configuration with Spool's defaults.
func ParseConfig(url string, opts *PoolOpts) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may echo the URL, password included.
		return nil, fmt.Errorf("parse database URL: invalid connection string")
	}
	if opts == nil {
		opts = &PoolOpts{}
	}
	if opts.MaxConns > 0 && !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.AppName != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = opts.AppName
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	cfg.HealthCheckPeriod = 10 * time.Second
	return cfg, nil
}
