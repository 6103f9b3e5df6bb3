// Package pgtest gives each test a fresh, migrated database on a real
// PostgreSQL server, cloned from a template that is migrated once per schema
// version (the pgtestdb approach). Test packages run in parallel safely.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolq/spool/shared/postgres"
)

// DefaultAdminURL is used when TEST_DATABASE_URL is unset.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// templateLockKey serialises template creation across test processes.
const templateLockKey int64 = 0x5370_6f6f_6c54_706c

// AdminURL is the server-level URL tests create databases through.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// DB is a fresh database for one test.
type DB struct {
	Name string
	URL  string
	Pool *pgxpool.Pool
}

// New creates a database for t holding Spool's schema (in the default
// schema "spool") and the extra migration sets given, dropped when t passes
// and kept (with its URL logged) when it fails.
func New(t testing.TB, extra ...*postgres.Migrations) *DB {
	t.Helper()
	spool, err := postgres.Spool("")
	if err != nil {
		t.Fatal(err)
	}
	return newDB(t, append([]*postgres.Migrations{spool}, extra...))
}

// NewEmpty creates an empty database (no migrations) for tests of migrating.
func NewEmpty(t testing.TB) *DB {
	t.Helper()
	return newDB(t, nil)
}

func newDB(t testing.TB, sets []*postgres.Migrations) *DB {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v (set TEST_DATABASE_URL or run `make test`)", redact(AdminURL()), err)
	}
	defer admin.Close(ctx)

	name := "spool_test_" + randomSuffix()
	create := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if len(sets) > 0 {
		tmpl, err := ensureTemplate(ctx, admin, sets)
		if err != nil {
			t.Fatalf("pgtest: template: %v", err)
		}
		create += " TEMPLATE " + pgx.Identifier{tmpl}.Sanitize()
	}
	if _, err := admin.Exec(ctx, create); err != nil {
		t.Fatalf("pgtest: %s: %v", create, err)
	}
	db := &DB{Name: name, URL: WithDatabase(AdminURL(), name)}
	db.Pool, err = pgxpool.New(ctx, db.URL)
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(func() { db.cleanup(t) })
	return db
}

func (db *DB) cleanup(t testing.TB) {
	db.Pool.Close()
	if t.Failed() {
		t.Logf("pgtest: kept database of failed test: %s", redact(db.URL))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Logf("pgtest: drop %s: %v", db.Name, err)
		return
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db.Name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Logf("pgtest: drop %s: %v", db.Name, err)
	}
}

// ensureTemplate returns a template database holding the current schema,
// building it under an advisory lock if no process has yet. It is built
// under a temporary name and renamed when complete, so a crash mid-build
// never leaves a half-migrated template behind.
func ensureTemplate(ctx context.Context, admin *pgx.Conn, sets []*postgres.Migrations) (string, error) {
	name := "spool_tmpl_" + schemaHash(sets)
	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock($1)`, templateLockKey); err != nil {
		return "", err
	}
	defer admin.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, templateLockKey) //nolint:errcheck

	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := pgx.Identifier{name + "_building"}.Sanitize()
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", err
	}
	pool, err := pgxpool.New(ctx, WithDatabase(AdminURL(), name+"_building"))
	if err != nil {
		return "", err
	}
	_, err = postgres.ApplyAll(ctx, pool, sets...)
	pool.Close()
	if err != nil {
		return "", err
	}
	_, err = admin.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+pgx.Identifier{name}.Sanitize())
	return name, err
}

// schemaHash names the template after the migrations' content, so a changed
// migration gets a new template instead of a stale one.
func schemaHash(sets []*postgres.Migrations) string {
	h := sha256.New()
	for _, set := range sets {
		h.Write([]byte(set.Schema))
		for _, m := range set.List() {
			h.Write([]byte(m.Name))
			h.Write([]byte(m.SQL))
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WithDatabase returns rawURL pointing at database name.
func WithDatabase(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(fmt.Sprintf("pgtest: bad URL: %v", err))
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
