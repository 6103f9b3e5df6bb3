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
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.up.sql
var spoolFS embed.FS

// Migration is one schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Errors of Check.
var (
	ErrSchemaMissing  = errors.New("database schema is missing: run `spool-api migrate` first")
	ErrSchemaOutdated = errors.New("database schema is older than this binary: run `spool-api migrate`")
	ErrSchemaNewer    = errors.New("database schema is newer than this binary: upgrade Spool before running it against this database")
)

// Migrations is a numbered set of migrations that live in one schema, with
// the table that records which ran. Spool's own set is Spool(schema); an
// application (the order demo) keeps its own set in a schema of its own.
type Migrations struct {
	Name   string // for messages
	Schema string // where the objects and the version table live
	Table  string // the version table
	// Files holds NNN_name.up.sql files, written for the schema Written;
	// each runs with that qualifier rewritten to Schema.
	Files   fs.FS
	Written string
	// Before runs first, in the transaction that creates the version
	// table, for what no numbered migration can do (moving an old
	// install's tables into the schema).
	Before func(ctx context.Context, tx pgx.Tx) error
}

// Spool returns Spool's own migrations in schema ("" means DefaultSchema).
func Spool(schema string) (*Migrations, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if err := CheckSchemaName(schema); err != nil {
		return nil, err
	}
	sub, _ := fs.Sub(spoolFS, "migrations")
	m := &Migrations{Name: "spool", Schema: schema, Table: "spool_schema_migrations", Files: sub, Written: DefaultSchema}
	if schema != "public" {
		m.Before = adoptPublic(schema)
	}
	return m, nil
}

// oldTables are the tables Spool kept in public before its own schema.
var oldTables = []string{"spool_schema_migrations", "spool_jobs", "spool_effects", "spool_queues", "spool_limits", "spool_schedules", "spool_workflows"}

// adoptPublic moves the tables of an install made before Spool had a
// schema of its own (they lived in public) into schema, keeping their
// rows, indexes, trigger and version history; the numbered migrations
// then carry on from the version they were at. The demo's tables that
// those versions made in public are left alone.
func adoptPublic(schema string) func(context.Context, pgx.Tx) error {
	return func(ctx context.Context, tx pgx.Tx) error {
		var old, moved bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass('public.spool_schema_migrations') IS NOT NULL,
				to_regclass($1) IS NOT NULL`, schema+".spool_schema_migrations").Scan(&old, &moved); err != nil {
			return err
		}
		if !old || moved {
			return nil
		}
		for _, t := range oldTables {
			if _, err := tx.Exec(ctx, `ALTER TABLE IF EXISTS public.`+t+` SET SCHEMA `+schema); err != nil {
				return fmt.Errorf("move %s into schema %s: %w", t, schema, err)
			}
		}
		var fn bool
		if err := tx.QueryRow(ctx, `SELECT to_regprocedure('public.spool_notify_insert()') IS NOT NULL`).Scan(&fn); err != nil {
			return err
		}
		if fn {
			if _, err := tx.Exec(ctx, `ALTER FUNCTION public.spool_notify_insert() SET SCHEMA `+schema); err != nil {
				return err
			}
		}
		return nil
	}
}

// List returns the migrations in version order, rewritten for Schema.
func (m *Migrations) List() []Migration {
	entries, err := fs.ReadDir(m.Files, ".")
	if err != nil {
		panic(err) // embedded at build time; cannot fail at run time
	}
	var rw *strings.Replacer
	if m.Written != "" && m.Schema != m.Written {
		rw = strings.NewReplacer(m.Written+":jobs", Channel(m.Schema), m.Written+".", m.Schema+".")
	}
	var out []Migration
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".up.sql") {
			continue
		}
		name := strings.TrimSuffix(e.Name(), ".up.sql")
		num, _, _ := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if err != nil {
			panic(fmt.Sprintf("migration %s: name must start with a number", e.Name()))
		}
		b, err := fs.ReadFile(m.Files, e.Name())
		if err != nil {
			panic(err)
		}
		sql := string(b)
		if rw != nil {
			sql = rw.Replace(sql)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: sql})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// Latest is the version the set ends at.
func (m *Migrations) Latest() int {
	l := m.List()
	return l[len(l)-1].Version
}

func (m *Migrations) table() string { return m.Schema + "." + m.Table }

// Apply applies every migration not yet applied, each in its own
// transaction, under a session advisory lock so that concurrent callers
// wait instead of racing. It returns the versions it applied. A run that
// stopped half-way (a crash, a failing migration) is re-run to the end by
// calling it again: each migration commits with its version row or not at
// all.
func (m *Migrations) Apply(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	return m.ApplyTo(ctx, pool, 0)
}

// ApplyTo is Apply up to version upTo (0: all).
func (m *Migrations) ApplyTo(ctx context.Context, pool *pgxpool.Pool, upTo int) ([]int, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	lock := "spool.migrate:" + m.table()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, lock); err != nil {
		return nil, fmt.Errorf("migrate: take lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, lock) //nolint:errcheck

	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Created only when missing: CREATE SCHEMA IF NOT EXISTS needs the
		// database's CREATE privilege even when the schema exists, and a
		// least-privilege owner is given the schema, not the database.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regnamespace($1) IS NOT NULL`, m.Schema).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA `+m.Schema); err != nil {
				return fmt.Errorf("migrate: create schema %s: %w", m.Schema, err)
			}
		}
		if m.Before != nil {
			if err := m.Before(ctx, tx); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+m.table()+` (
			version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
		return err
	}); err != nil {
		return nil, err
	}
	current, err := m.Version(ctx, conn.Conn())
	if err != nil {
		return nil, err
	}
	if current > m.Latest() {
		return nil, ErrSchemaNewer
	}
	var applied []int
	for _, mg := range m.List() {
		if mg.Version <= current || (upTo > 0 && mg.Version > upTo) {
			continue
		}
		if err := m.apply(ctx, conn.Conn(), mg); err != nil {
			return applied, err
		}
		applied = append(applied, mg.Version)
	}
	return applied, nil
}

func (m *Migrations) apply(ctx context.Context, conn *pgx.Conn, mg Migration) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, mg.SQL); err != nil {
			return fmt.Errorf("migration %s %s: %w", m.Name, mg.Name, err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+m.table()+` (version, name) VALUES ($1, $2)`, mg.Version, mg.Name)
		return err
	})
}

// Version is the latest applied version, 0 when none is.
func (m *Migrations) Version(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var v int
	err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+m.table()).Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") { // undefined table or schema
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// AppliedMigration is a row of the migrations table.
type AppliedMigration struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

// Applied lists the applied migrations, oldest first (none when the table
// does not exist yet).
func (m *Migrations) Applied(ctx context.Context, pool *pgxpool.Pool) ([]AppliedMigration, error) {
	if v, err := m.Version(ctx, pool); err != nil || v == 0 {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT version, name, applied_at FROM `+m.table()+` ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[AppliedMigration])
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	return out, nil
}

// Check reports whether the database holds exactly the schema this binary
// was built for, so a service never runs against a missing or newer one.
func (m *Migrations) Check(ctx context.Context, pool *pgxpool.Pool) error {
	v, err := m.Version(ctx, pool)
	if err != nil {
		return err
	}
	switch latest := m.Latest(); {
	case v == 0 && m.Before != nil && m.hasOldInstall(ctx, pool):
		return fmt.Errorf("%w (its tables are still in schema public, from before version 7: migrate moves them into %s)", ErrSchemaOutdated, m.Schema)
	case v == 0:
		return fmt.Errorf("%w (%s, schema %s)", ErrSchemaMissing, m.Name, m.Schema)
	case v < latest:
		return fmt.Errorf("%w (%s: database at %d, binary needs %d)", ErrSchemaOutdated, m.Name, v, latest)
	case v > latest:
		return fmt.Errorf("%w (%s: database at %d, binary knows %d)", ErrSchemaNewer, m.Name, v, latest)
	}
	return nil
}

func (m *Migrations) hasOldInstall(ctx context.Context, pool *pgxpool.Pool) bool {
	var old bool
	err := pool.QueryRow(ctx, `SELECT to_regclass('public.spool_schema_migrations') IS NOT NULL`).Scan(&old)
	return err == nil && old
}
