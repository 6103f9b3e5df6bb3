package main_test

import (
	"context"
	"testing"
	"time"
)

// A schedule flood against the real worker binaries (issue 17, item 5):
// with the API's cap of 1,000 schedules all `@every 1s`, a legitimate
// schedule sorted last by name still gets a job every second. Before the
// fair ticker it got 0.10-0.15 a second.
func TestLegitimateScheduleTicksUnderAFlood(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	if _, err := b.db.Pool.Exec(ctx, `INSERT INTO spool.spool_schedules (name, spec, type, payload)
		SELECT 'flood-' || lpad(i::text, 5, '0'), '@every 1s', 'noop', '{}' FROM generate_series(1, 1000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Pool.Exec(ctx, `INSERT INTO spool.spool_schedules (name, spec, type, payload)
		VALUES ('zzz-legit', '@every 1s', 'noop', '{"seq": 424242}')`); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		b.startWorker(t, "SPOOL_DIAGNOSTIC_JOBS=true", "SPOOL_LOG_LEVEL=warn")
	}
	time.Sleep(3 * time.Second) // warm-up: both workers up, the first backlog of ticks done
	from := time.Now()
	time.Sleep(10 * time.Second)
	to := time.Now()
	var legit, all int
	if err := b.db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE payload = '{"seq": 424242}'), count(*)
		FROM spool.spool_jobs WHERE created_at >= $1 AND created_at < $2`, from, to).Scan(&legit, &all); err != nil {
		t.Fatal(err)
	}
	t.Logf("in 10 s under 1,000 every-second schedules: zzz-legit enqueued %d jobs, all schedules %d", legit, all)
	if legit < 8 {
		t.Fatalf("zzz-legit got %d jobs in 10 s, want about 10 (one a second)", legit)
	}
}
