package main_test

import (
	"testing"

	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

func TestMigrate(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmpty(t)
	c := newCLI(t, "SPOOL_DATABASE_URL="+db.URL)
	type statusJSON struct {
		Schema     string `json:"schema"`
		Current    int    `json:"current"`
		Latest     int    `json:"latest"`
		Pending    []int  `json:"pending"`
		Migrations []struct {
			Version   int     `json:"version"`
			Name      string  `json:"name"`
			AppliedAt *string `json:"applied_at"`
		} `json:"migrations"`
	}

	before := decode[statusJSON](t, c.run(t, "migrate", "status", "-o", "json").ok(t))
	if before.Current != 0 || before.Latest == 0 || len(before.Pending) != len(before.Migrations) || before.Schema != "spool" {
		t.Fatalf("status of an empty database: %+v; want every migration pending", before)
	}
	c.run(t, "migrate", "status").ok(t).contains(t, "database at version 0", "pending", "001_jobs")
	c.run(t, "migrate", "status", "--check").want(t, 1).errContains(t, "at version 0")

	c.run(t, "migrate", "up").ok(t).contains(t, "applied 1, 2")
	after := decode[statusJSON](t, c.run(t, "migrate", "status", "-o", "json").ok(t))
	if after.Current != after.Latest || len(after.Pending) != 0 || after.Migrations[0].AppliedAt == nil {
		t.Fatalf("status after up: %+v; want current, nothing pending", after)
	}
	c.run(t, "migrate", "status", "--check").ok(t).contains(t, "current", "VERSION", "APPLIED AT")
	if got := decode[map[string]any](t, c.run(t, "migrate", "up", "-o", "json").ok(t)); len(got["applied"].([]any)) != 0 {
		t.Fatalf("a second up: %v, want nothing applied", got)
	}
	// Another schema of the same database starts empty.
	c.run(t, "migrate", "status", "--schema", "other", "--check").want(t, 1)
	c.run(t, "migrate", "status", "--schema", "Bad-Name").want(t, 2)

	// No database URL: usage; no database there: unreachable.
	newCLI(t).run(t, "migrate", "status").want(t, 2).errContains(t, "SPOOL_DATABASE_URL")
	down := "postgres://postgres@" + proctest.FreeAddr(t) + "/nothing?connect_timeout=2"
	newCLI(t, "SPOOL_DATABASE_URL="+down).run(t, "migrate", "up").want(t, 3).errContains(t, "cannot reach the database")
	c.run(t, "migrate").ok(t).contains(t, "up", "status")
	c.run(t, "migrate", "sideways").want(t, 2)
}
