package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.up.sql
var migrationFS embed.FS

// migrationLockKey serialises migrations across every replica that starts at
// once; the value is arbitrary but fixed forever.
const migrationLockKey int64 = 0x5370_6f6f_6c4d_6967 // "SpoolMig"

// Migration is one embedded schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Errors returned by CheckSchema.
var (
	ErrSchemaMissing  = errors.New("database schema is missing: run `spool-api migrate` first")
	ErrSchemaOutdated = errors.New("database schema is older than this binary: run `spool-api migrate`")
	ErrSchemaNewer    = errors.New("database schema is newer than this binary: upgrade Spool before running it against this database")
)

// Migrations returns the embedded migrations in version order.
func Migrations() []Migration {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		panic(err) // embedded at build time; cannot fail at run time
	}
	var out []Migration
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".up.sql")
		num, _, _ := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if err != nil {
			panic(fmt.Sprintf("migration %s: name must start with a number", e.Name()))
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			panic(err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// LatestVersion is the schema version this binary expects.
func LatestVersion() int {
	m := Migrations()
	return m[len(m)-1].Version
}

// Migrate applies every embedded migration not yet applied, each in its own
// transaction, holding a session advisory lock so that concurrent callers
// wait instead of racing. It returns the versions it applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return nil, fmt.Errorf("migrate: take lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLockKey) //nolint:errcheck

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS spool_schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("migrate: create version table: %w", err)
	}
	current, err := currentVersion(ctx, conn.Conn())
	if err != nil {
		return nil, err
	}
	if current > LatestVersion() {
		return nil, ErrSchemaNewer
	}
	var applied []int
	for _, m := range Migrations() {
		if m.Version <= current {
			continue
		}
		if err := apply(ctx, conn.Conn(), m); err != nil {
			return applied, err
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

func apply(ctx context.Context, conn *pgx.Conn, m Migration) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO spool_schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
		return err
	})
}

func currentVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var v int
	err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM spool_schema_migrations`).Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// CheckSchema reports whether the database holds exactly the schema this
// binary was built for, so a service never runs against a missing or newer one.
func CheckSchema(ctx context.Context, pool *pgxpool.Pool) error {
	v, err := currentVersion(ctx, pool)
	if err != nil {
		return err
	}
	switch latest := LatestVersion(); {
	case v == 0:
		return ErrSchemaMissing
	case v < latest:
		return fmt.Errorf("%w (database at %d, binary needs %d)", ErrSchemaOutdated, v, latest)
	case v > latest:
		return fmt.Errorf("%w (database at %d, binary knows %d)", ErrSchemaNewer, v, latest)
	}
	return nil
}
