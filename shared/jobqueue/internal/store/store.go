// Package store holds every SQL statement of Spool's tables, one file per
// table, and the one place where driver errors become the package's own.
//
// Statements name their tables with the schema qualifier "spool." and the
// notification channel as "spool:jobs"; a Store for another schema rewrites
// both once per statement, so Spool can live in any schema of the user's
// database, and its statements never depend on the session's search_path
// (a caller's own transaction keeps its own).
package store

import (
	"context"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spoolq/spool/shared/postgres"
)

// DefaultSchema is the schema Spool's tables live in unless configured.
const DefaultSchema = postgres.DefaultSchema

// DBTX is what both a pool and a transaction offer; statements take it so
// they run the same either way.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Beginner starts transactions; a pool, a connection and a transaction
// (a savepoint) are all one.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Store runs Spool's statements in one schema.
type Store struct {
	schema   string
	replacer *strings.Replacer // nil for DefaultSchema: statements run as written
	cache    sync.Map          // statement as written → as run
}

// New returns the store of schema ("" means DefaultSchema). The name must
// pass postgres.CheckSchemaName.
func New(schema string) (*Store, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if err := postgres.CheckSchemaName(schema); err != nil {
		return nil, err
	}
	s := &Store{schema: schema}
	if schema != DefaultSchema {
		s.replacer = postgres.Rewriter(schema)
	}
	return s, nil
}

// Schema is the store's schema.
func (s *Store) Schema() string { return s.schema }

// Channel is the NOTIFY channel workers of this schema listen on.
func (s *Store) Channel() string { return postgres.Channel(s.schema) }

// sql returns a statement as it runs in the store's schema.
func (s *Store) sql(text string) string {
	if s.replacer == nil {
		return text
	}
	if v, ok := s.cache.Load(text); ok {
		return v.(string)
	}
	v := s.replacer.Replace(text)
	s.cache.Store(text, v)
	return v
}

// Table is a table of the store's schema, for COPY.
func (s *Store) Table(name string) pgx.Identifier { return pgx.Identifier{s.schema, name} }

// Pool is what the worker runtime needs of its connection pool.
type Pool interface {
	DBTX
	Beginner
}
