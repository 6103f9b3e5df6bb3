package postgres

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// WaitForSchema waits until the database answers, then checks every set's
// schema. An unreachable database is waited for (a service may start
// before its database); a missing, outdated or newer schema is returned at
// once.
func WaitForSchema(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, sets ...*Migrations) error {
	pause := 250 * time.Millisecond
	for {
		err := CheckAll(ctx, pool, sets...)
		var pgErr *pgconn.PgError
		if err == nil || errors.Is(err, ErrSchemaMissing) || errors.Is(err, ErrSchemaNewer) ||
			errors.Is(err, ErrSchemaOutdated) || errors.As(err, &pgErr) {
			return err
		}
		log.Warn("database not reachable yet; retrying", "error", err, "in", pause)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(pause*2, 5*time.Second)
	}
}

// CheckAll checks every set's schema; the first mismatch is returned.
func CheckAll(ctx context.Context, pool *pgxpool.Pool, sets ...*Migrations) error {
	for _, m := range sets {
		if err := m.Check(ctx, pool); err != nil {
			return err
		}
	}
	return nil
}

// ApplyAll applies every set in order and returns the versions applied,
// by set name.
func ApplyAll(ctx context.Context, pool *pgxpool.Pool, sets ...*Migrations) (map[string][]int, error) {
	out := map[string][]int{}
	for _, m := range sets {
		applied, err := m.Apply(ctx, pool)
		if len(applied) > 0 {
			out[m.Name] = applied
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
