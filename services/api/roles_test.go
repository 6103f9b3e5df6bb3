package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/services/api/internal/openapi/openapitest"
	"github.com/spoolq/spool/services/api/internal/settings"
	"github.com/spoolq/spool/shared/config"
	"github.com/spoolq/spool/shared/diagnostic"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/postgres"
)

// docSQL returns the SQL blocks of docs/security.md by their marker
// (<!-- sql:NAME --> before a ```sql fence), so the test runs exactly what
// the documentation tells operators to run.
func docSQL(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]string{}
	re := regexp.MustCompile("(?s)<!-- sql:([a-z]+) -->\\s*```sql\n(.*?)```")
	for _, m := range re.FindAllSubmatch(doc, -1) {
		blocks[string(m[1])] = string(m[2])
	}
	for _, name := range []string{"roles", "database", "adopt"} {
		if blocks[name] == "" {
			t.Fatalf("docs/security.md has no <!-- sql:%s --> block", name)
		}
	}
	return blocks
}

// roleSetup is one test's pair of roles, named uniquely because roles are
// cluster-wide and test packages run in parallel.
type roleSetup struct {
	owner, app     string
	ownerPW, appPW string
	db             *pgtest.DB
	sql            map[string]string
}

func newRoleSetup(t *testing.T, migrateAsAdmin bool) *roleSetup {
	t.Helper()
	suffix := strings.ToLower(rand.Text()[:10])
	r := &roleSetup{owner: "spool_owner_" + suffix, app: "spool_app_" + suffix,
		ownerPW: rand.Text(), appPW: rand.Text(), sql: docSQL(t)}
	// Registered before the database exists, so it runs after pgtest has
	// dropped it (cleanups run last-in first-out): the roles own nothing then.
	t.Cleanup(func() {
		ctx := context.Background()
		admin, err := pgx.Connect(ctx, pgtest.AdminURL())
		if err != nil {
			t.Logf("drop roles: %v", err)
			return
		}
		defer admin.Close(ctx)
		for _, role := range []string{r.app, r.owner} {
			if _, err := admin.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize()); err != nil {
				t.Logf("drop role %s: %v", role, err)
			}
		}
	})
	r.db = pgtest.NewEmpty(t)
	if migrateAsAdmin {
		spool, err := postgres.Spool("")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := spool.Apply(context.Background(), r.db.Pool); err != nil {
			t.Fatal(err)
		}
	}
	r.exec(t, pgtest.AdminURL(), "roles")
	r.exec(t, r.db.URL, "database")
	if migrateAsAdmin {
		r.exec(t, r.db.URL, "adopt")
	}
	return r
}

// exec runs a documented block as the admin, with this test's names.
func (r *roleSetup) exec(t *testing.T, dbURL, block string) {
	t.Helper()
	sql := r.sql[block]
	for _, sub := range []struct{ re, with string }{
		{`\bspool_owner\b`, pgx.Identifier{r.owner}.Sanitize()},
		{`\bspool_app\b`, pgx.Identifier{r.app}.Sanitize()},
		{`\bDATABASE spool\b`, "DATABASE " + pgx.Identifier{r.db.Name}.Sanitize()},
		{`'change-me-owner'`, "'" + r.ownerPW + "'"},
		{`'change-me-app'`, "'" + r.appPW + "'"},
	} {
		sql = regexp.MustCompile(sub.re).ReplaceAllLiteralString(sql, sub.with)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("documented SQL %q: %v\n%s", block, err, sql)
	}
}

func (r *roleSetup) url(role, password string) string {
	u, err := url.Parse(r.db.URL)
	if err != nil {
		panic(err)
	}
	u.User = url.UserPassword(role, password)
	return u.String()
}

// TestLeastPrivilegeRoles runs the role SQL of docs/security.md on a fresh
// database and on one migrated earlier by a superuser: `spool-api migrate`
// works as the owner; the API and a worker work as the app role, which
// cannot change the schema.
func TestLeastPrivilegeRoles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		migrateAsAdmin bool
	}{{"fresh database", false}, {"adopted database", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRoleSetup(t, tc.migrateAsAdmin)
			var log bytes.Buffer
			cfg := settings.Config{Common: config.Common{DatabaseURL: r.url(r.owner, r.ownerPW)}}
			if code := migrate(context.Background(), cfg, slog.New(slog.NewJSONHandler(&log, nil))); code != exitOK {
				t.Fatalf("spool-api migrate as the owner: exit %d\n%s", code, log.String())
			}
			pool, err := postgres.Connect(context.Background(), r.url(r.app, r.appPW), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			spool, _ := postgres.Spool("")
			if err := spool.Check(context.Background(), pool); err != nil {
				t.Fatalf("schema check as the app role: %v", err)
			}
			appCanRunSpool(t, pool)
			appCannotChangeSchema(t, pool)
		})
	}
}

func appCanRunSpool(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	client, err := jobqueue.NewClient(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	kinds := jobqueue.NewKinds()
	diagnostic.Add(kinds)
	if err := client.PublishKinds(context.Background(), "roles-test", kinds); err != nil {
		t.Fatalf("publish kinds as the app role: %v", err)
	}
	h := openapitest.Handler(t, httpapi.New(client, nil))
	do := func(method, path, body string, want int) map[string]json.RawMessage {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if body != "" || method != "GET" {
			req.Header.Set("Content-Type", "application/json") // the API requires it of every unsafe method
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Fatalf("%s %s as the app role: %d %s, want %d", method, path, rec.Code, rec.Body, want)
		}
		var m map[string]json.RawMessage
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return m
	}
	var job struct{ ID int64 }
	_ = json.Unmarshal(do("POST", "/v1/jobs", `{"type":"noop","idempotency_key":"k1"}`, 201)["job"], &job)
	do("POST", "/v1/jobs", `{"type":"noop","idempotency_key":"k1"}`, 200)
	do("POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop"},{"type":"noop","queue":"other"}]}`, 201)
	if jobs := do("GET", "/v1/jobs?limit=10", "", 200)["jobs"]; strings.Count(string(jobs), `"id"`) != 3 {
		t.Fatalf("listed %s, want 3 jobs", jobs)
	}
	do("GET", fmt.Sprintf("/v1/jobs/%d", job.ID), "", 200)
	do("POST", fmt.Sprintf("/v1/jobs/%d/cancel", job.ID), "", 200)
	do("POST", fmt.Sprintf("/v1/jobs/%d/retry", job.ID), "", 200)
	do("GET", "/v1/stats", "", 200)
	do("POST", "/v1/queues/other/pause", "", 200)
	do("POST", "/v1/queues/other/resume", "", 200)
	do("GET", "/v1/queues", "", 200)
	do("PUT", "/v1/limits/queue/other", `{"max_running":2,"rate_per_second":5}`, 200)
	do("GET", "/v1/limits", "", 200)
	do("DELETE", "/v1/limits/queue/other", "", 200)
	do("PUT", "/v1/schedules/nightly", `{"spec":"0 2 * * *","type":"noop"}`, 200)
	do("GET", "/v1/schedules", "", 200)
	do("DELETE", "/v1/schedules/nightly", "", 200)
	do("POST", "/v1/dead/retry", "", 200)
	do("DELETE", "/v1/dead?all=true", "", 200)

	// A worker claims, runs and completes the pending jobs of its queue.
	w, err := jobqueue.NewWorker(client, kinds, jobqueue.WorkerConfig{ID: "roles-test",
		Queues: []jobqueue.QueueConfig{{Name: "default", Concurrency: 2}}, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker as the app role: %v", err)
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		j, err := client.Get(context.Background(), job.ID)
		if err == nil && j.Status == jobqueue.StatusCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d not completed by a worker on the app role: %+v, %v", job.ID, j, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func appCannotChangeSchema(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for _, stmt := range []string{
		`CREATE TABLE spool.spool_evil (id int)`,
		`CREATE TABLE public.spool_evil (id int)`,
		`DROP TABLE spool.spool_jobs`,
		`ALTER TABLE spool.spool_jobs ADD COLUMN evil int`,
		`TRUNCATE spool.spool_jobs`,
		`CREATE FUNCTION spool.spool_evil() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
		`CREATE TEMP TABLE evil (id int)`,
		`CREATE SCHEMA evil`,
		`DROP FUNCTION spool.spool_notify_insert() CASCADE`,
	} {
		_, err := pool.Exec(context.Background(), stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s as the app role: %v; want permission denied (42501)", stmt, err)
		}
	}
}
