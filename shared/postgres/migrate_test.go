package postgres_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/postgres"
)

func spool(t *testing.T, schema string) *postgres.Migrations {
	t.Helper()
	m, err := postgres.Spool(schema)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func tablesIn(t *testing.T, pool *pgxpool.Pool, schema string) string {
	t.Helper()
	var s string
	if err := pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(tablename, ',' ORDER BY tablename), '')
		FROM pg_tables WHERE schemaname = $1`, schema).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// An application's database that already holds tables of the names Spool
// and its demo once used in public is migrated without touching them:
// Spool creates its own schema and nothing else.
func TestMigrateBesideAnApplicationsTables(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmpty(t)
	for _, table := range []string{"orders", "products", "jobs", "queues", "schedules"} {
		exec(t, db.Pool, `CREATE TABLE public.`+table+` (id int PRIMARY KEY, note text)`)
		exec(t, db.Pool, `INSERT INTO public.`+table+` VALUES (1, 'mine')`)
	}
	before := tablesIn(t, db.Pool, "public")
	applied, err := spool(t, "").Apply(context.Background(), db.Pool)
	if err != nil {
		t.Fatalf("migrate: %v (applied %v)", err, applied)
	}
	if after := tablesIn(t, db.Pool, "public"); after != before {
		t.Fatalf("public holds %q after migrating, want only the application's %q", after, before)
	}
	var notes int
	for _, table := range []string{"orders", "products", "jobs", "queues", "schedules"} {
		var n int
		if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM public.`+table+` WHERE note = 'mine'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		notes += n
	}
	if notes != 5 {
		t.Fatalf("%d of the application's 5 rows left", notes)
	}
	if err := spool(t, "").Check(context.Background(), db.Pool); err != nil {
		t.Fatal(err)
	}
	if got := tablesIn(t, db.Pool, "spool"); !strings.Contains(got, "spool_jobs") || !strings.Contains(got, "spool_kinds") {
		t.Fatalf("schema spool holds %q", got)
	}
}

// A migration run that stopped half-way is run again to the end.
func TestHalfAppliedMigrationRunsToTheEnd(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmpty(t)
	m := spool(t, "")
	if _, err := m.ApplyTo(context.Background(), db.Pool, 3); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(context.Background(), db.Pool); err == nil {
		t.Fatal("a half-migrated schema passed the check")
	}
	applied, err := m.Apply(context.Background(), db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) == 0 || applied[len(applied)-1] != m.Latest() {
		t.Fatalf("second run applied %v, want the rest up to %d", applied, m.Latest())
	}
	if err := m.Check(context.Background(), db.Pool); err != nil {
		t.Fatal(err)
	}
}

// Another schema than the default holds everything, the channel included.
func TestMigrateIntoAnotherSchema(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmpty(t)
	m := spool(t, "acme_jobs")
	if _, err := m.Apply(context.Background(), db.Pool); err != nil {
		t.Fatal(err)
	}
	if got := tablesIn(t, db.Pool, "spool"); got != "" {
		t.Fatalf("schema spool holds %q; want nothing outside acme_jobs", got)
	}
	var body string
	if err := db.Pool.QueryRow(context.Background(), `SELECT prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'acme_jobs' AND proname = 'spool_notify_insert'`).Scan(&body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "'acme_jobs:jobs'") {
		t.Fatalf("insert trigger notifies with %q; want the acme_jobs:jobs channel", body)
	}
}

// An install of the previous version (schema 6, everything in public, the
// demo's tables beside Spool's) upgrades in place: its tables move into
// the spool schema with their rows, the history carries on to the latest
// version, and the demo's old tables are left where they were.
func TestUpgradeFromThePreviousSchemaVersion(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmpty(t)
	old := &postgres.Migrations{Name: "spool v6", Schema: "public", Table: "spool_schema_migrations", Files: os.DirFS("testdata/v6")}
	if _, err := old.Apply(context.Background(), db.Pool); err != nil {
		t.Fatal(err)
	}
	exec(t, db.Pool, `INSERT INTO spool_jobs (type, queue, payload) VALUES ('send_email', 'default', '{"to":"a@b.c"}')`)
	exec(t, db.Pool, `INSERT INTO spool_jobs (type, status, attempts, worker_id, lease_until) VALUES ('noop', 'running', 1, 'old-worker', now())`)
	exec(t, db.Pool, `INSERT INTO spool_workflows (name, on_failure_type, on_failure_payload) VALUES ('w', 'fail_order', '{"order_id":7}')`)
	exec(t, db.Pool, `INSERT INTO spool_schedules (name, spec, type) VALUES ('nightly', '@daily', 'noop')`)

	m := spool(t, "")
	if err := m.Check(context.Background(), db.Pool); err == nil || !strings.Contains(err.Error(), "public") {
		t.Fatalf("check before the upgrade: %v; want an outdated schema that names public", err)
	}
	applied, err := m.Apply(context.Background(), db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) == 0 || applied[0] != 7 || applied[len(applied)-1] != m.Latest() {
		t.Fatalf("applied %v, want 7 to %d (1-6 carried over)", applied, m.Latest())
	}
	if err := m.Check(context.Background(), db.Pool); err != nil {
		t.Fatal(err)
	}
	if pub := tablesIn(t, db.Pool, "public"); strings.Contains(pub, "spool_") {
		t.Fatalf("public still holds Spool tables: %s", pub)
	}
	if pub := tablesIn(t, db.Pool, "public"); !strings.Contains(pub, "orders") {
		t.Fatalf("public lost the old demo's tables: %s", pub)
	}
	var jobs, running, tokened int
	var failure string
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE status = 'running'),
			count(*) FILTER (WHERE lease_token = 0), (SELECT on_failure->>'type' FROM spool.spool_workflows)
		FROM spool.spool_jobs`).Scan(&jobs, &running, &tokened, &failure); err != nil {
		t.Fatal(err)
	}
	if jobs != 2 || running != 1 || tokened != 1 || failure != "fail_order" {
		t.Fatalf("after the upgrade: %d jobs, %d running, %d with the old workers' token, failure job %q; want 2, 1, 1, fail_order",
			jobs, running, tokened, failure)
	}
	// The trigger moved with its table and now names the new channel.
	var body string
	if err := db.Pool.QueryRow(context.Background(), `SELECT prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'spool' AND proname = 'spool_notify_insert'`).Scan(&body); err != nil || !strings.Contains(body, "'spool:jobs'") {
		t.Fatalf("trigger function %q (%v), want it in spool notifying spool:jobs", body, err)
	}
	if again, err := m.Apply(context.Background(), db.Pool); err != nil || len(again) != 0 {
		t.Fatalf("migrating again: %v %v, want nothing to do", again, err)
	}
}
