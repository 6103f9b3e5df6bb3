package postgres

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// WaitForSchema waits until the database answers, then checks its schema.
// An unreachable database is waited for (a service may start before its
// database); a missing or newer schema is returned at once.
func WaitForSchema(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	pause := 250 * time.Millisecond
	for {
		err := CheckSchema(ctx, pool)
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
