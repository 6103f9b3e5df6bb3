package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/spoolq/spool/shared/postgres"
)

// migrate talks to the database itself, not to the API: it is what runs
// before there is an API to talk to.

func (a *app) migrateCommand() *cobra.Command {
	var schema string
	cmd := group(&cobra.Command{
		Use:   "migrate",
		Short: "Apply Spool's database migrations, or show which are applied (talks to SPOOL_DATABASE_URL)",
		Long: `Apply Spool's own database migrations (up) or show them (status). These talk to the database
of SPOOL_DATABASE_URL (or DATABASE_URL, or the config file's database_url) directly, in the schema
SPOOL_DB_SCHEMA (default spool), as 'spool-api migrate' does: under an advisory lock, so any number
of concurrent runs is safe. The order demo's tables are migrated by 'spool-api migrate' with
SPOOL_DEMO=true.`,
	})
	cmd.PersistentFlags().StringVar(&schema, "schema", "", "PostgreSQL schema of Spool's tables (default $SPOOL_DB_SCHEMA or spool)")

	up := &cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			m, pool, err := a.openMigrations(cmd.Context(), schema)
			if err != nil {
				return err
			}
			defer pool.Close()
			applied, err := m.Apply(cmd.Context(), pool)
			if err != nil {
				if len(applied) > 0 {
					err = fmt.Errorf("%w (applied before the failure: %v)", err, applied)
				}
				return dbError(err)
			}
			if applied == nil {
				applied = []int{}
			}
			if a.jsonOut() {
				return a.printValue(map[string]any{"schema": m.Schema, "applied": applied, "version": m.Latest()})
			}
			if len(applied) == 0 {
				fmt.Fprintf(a.stdout, "schema %s is current: version %d\n", m.Schema, m.Latest())
				return nil
			}
			fmt.Fprintf(a.stdout, "schema %s: applied %s; now at version %d\n", m.Schema, joinInts(applied), m.Latest())
			return nil
		}),
	}

	var check bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the applied and pending migrations (--check: exit 1 unless the schema is current)",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			m, pool, err := a.openMigrations(cmd.Context(), schema)
			if err != nil {
				return err
			}
			defer pool.Close()
			st, err := readStatus(cmd.Context(), pool, m)
			if err != nil {
				return dbError(err)
			}
			if err := a.printStatus(st); err != nil {
				return err
			}
			if check && st.Current != st.Latest {
				return &failure{err: fmt.Errorf("schema %s is at version %d; this binary's is %d", st.Schema, st.Current, st.Latest)}
			}
			return nil
		}),
	}
	status.Flags().BoolVar(&check, "check", false, "exit 1 unless the database is at this binary's version")
	cmd.AddCommand(up, status)
	return cmd
}

// openMigrations opens a small pool on the database and checks that it
// answers.
func (a *app) openMigrations(ctx context.Context, schema string) (*postgres.Migrations, *pgxpool.Pool, error) {
	s, err := a.settings()
	if err != nil {
		return nil, nil, err
	}
	if s.DatabaseURL == "" {
		return nil, nil, usagef("set SPOOL_DATABASE_URL (or the config file's database_url)")
	}
	m, err := postgres.Spool(firstOf(schema, s.DBSchema))
	if err != nil {
		return nil, nil, usagef("%v", err)
	}
	pool, err := postgres.Connect(ctx, s.DatabaseURL, &postgres.PoolOpts{MaxConns: 2, AppName: "spool-cli-migrate"})
	if err != nil {
		return nil, nil, usagef("%v", err) // a URL that does not parse; the message never echoes it
	}
	pctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, nil, dbError(err)
	}
	return m, pool, nil
}

// dbError classifies a database error: one the server answered (a wrong
// password, a failing migration) is a failure; no answer is unreachable.
func dbError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return &failure{err: err}
	}
	if errors.Is(err, postgres.ErrSchemaNewer) {
		return &failure{err: err}
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.Timeout(err) {
		return &unreachableError{what: "the database", err: err}
	}
	return &failure{err: err}
}

// migrationStatus is `migrate status`'s answer.
type migrationStatus struct {
	Schema     string            `json:"schema"`
	Current    int               `json:"current"`
	Latest     int               `json:"latest"`
	Pending    []int             `json:"pending"`
	Migrations []migrationRecord `json:"migrations"`
}

type migrationRecord struct {
	Version   int        `json:"version"`
	Name      string     `json:"name"`
	AppliedAt *time.Time `json:"applied_at"` // null: pending
	// Unknown: applied, but not a migration of this binary (a newer one's).
	Unknown bool `json:"unknown,omitempty"`
}

func readStatus(ctx context.Context, pool *pgxpool.Pool, m *postgres.Migrations) (migrationStatus, error) {
	st := migrationStatus{Schema: m.Schema, Latest: m.Latest(), Pending: []int{}}
	var err error
	if st.Current, err = m.Version(ctx, pool); err != nil {
		return st, err
	}
	rows, err := m.Applied(ctx, pool)
	if err != nil {
		return st, err
	}
	applied := map[int]migrationRecord{}
	for _, r := range rows {
		applied[r.Version] = migrationRecord{Version: r.Version, Name: r.Name, AppliedAt: &r.AppliedAt}
	}
	for _, mg := range m.List() {
		r, ok := applied[mg.Version]
		if !ok {
			r = migrationRecord{Version: mg.Version, Name: mg.Name}
			if mg.Version > st.Current {
				st.Pending = append(st.Pending, mg.Version)
			}
		}
		delete(applied, mg.Version)
		st.Migrations = append(st.Migrations, r)
	}
	for _, r := range applied {
		r.Unknown = true
		st.Migrations = append(st.Migrations, r)
	}
	return st, nil
}

func (a *app) printStatus(st migrationStatus) error {
	if a.jsonOut() {
		return a.printValue(st)
	}
	state := "current"
	switch {
	case st.Current > st.Latest:
		state = "newer than this binary: upgrade spool"
	case st.Current < st.Latest:
		state = fmt.Sprintf("%d pending (%s): run 'spool migrate up'", len(st.Pending), joinInts(st.Pending))
	}
	fmt.Fprintf(a.stdout, "schema %s: database at version %d, this binary's is %d; %s\n\n", st.Schema, st.Current, st.Latest, state)
	t := newTable(a.stdout, "VERSION", "NAME", "APPLIED AT")
	for _, r := range st.Migrations {
		at := "pending"
		if r.AppliedAt != nil {
			at = fmtTime(r.AppliedAt)
		} else if r.Version < st.Current {
			at = "skipped"
		}
		name := r.Name
		if r.Unknown {
			name += " (unknown to this binary)"
		}
		t.row(fmt.Sprintf("%03d", r.Version), name, at)
	}
	return t.flush()
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
