package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/diagnostic"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
)

func TestParseAcceptsStandardSpecsAndRejectsTheRest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		spec, tz string
		ok       bool
	}{
		{"*/5 * * * *", "", true},
		{"0 9 * * MON-FRI", "Europe/Berlin", true},
		{"@daily", "America/New_York", true},
		{"@every 1s", "", true},
		{"@every 90m", "", true},
		{"@every 10ms", "", false},
		{"* * * *", "", false},
		{"0 0 0 * * *", "", false}, // seconds field: not standard
		{"61 * * * *", "", false},
		{"@yearlyish", "", false},
		{"", "", false},
		{"* * * * *", "Mars/Olympus", false},
	} {
		_, err := Parse(tc.spec, tc.tz)
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q, %q) error = %v, want ok=%v", tc.spec, tc.tz, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) error %v does not wrap ErrInvalid", tc.spec, err)
		}
	}
}

func TestParseEvaluatesInTheScheduleTimeZone(t *testing.T) {
	t.Parallel()
	c, err := Parse("0 9 * * *", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	next := c.Next(time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Fatalf("next 09:00 Berlin = %s, want %s (08:00 UTC in winter)", next.UTC(), want)
	}
}

func TestValidateChecksPayloadAgainstJobType(t *testing.T) {
	b := setup(t)
	bad := []Schedule{
		{Name: "x", Spec: "@hourly", Type: "nope"},
		{Name: "x", Spec: "@hourly", Type: "sleep", Payload: json.RawMessage(`{"ms":-1}`)},
		{Name: "x", Spec: "@hourly", Type: "noop", Payload: json.RawMessage(`{"unknown":1}`)},
		{Name: "bad name!", Spec: "@hourly", Type: "noop"},
		{Name: "x", Spec: "@hourly", Type: "noop", Queue: "Bad Queue"},
		{Name: "x", Spec: "@hourly", Type: "noop", Priority: 5000},
	}
	for i, s := range bad {
		if err := s.Validate(context.Background(), b.catalog); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d: Validate = %v, want ErrInvalid", i, err)
		}
	}
	good := Schedule{Name: "nightly-report", Spec: "0 2 * * *", Type: "noop"}
	if err := good.Validate(context.Background(), b.catalog); err != nil || good.Queue != "default" || good.Timezone != "UTC" {
		t.Fatalf("Validate = %v, queue %q, tz %q; want ok, default, UTC", err, good.Queue, good.Timezone)
	}
}

func TestParseFileRejectsUnknownFieldsAndDuplicates(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"schedules":[{"name":"a","spec":"@hourly","type":"noop","colour":"red"}]}`,
		`{"schedules":[{"name":"a","spec":"@hourly","type":"noop"},{"name":"a","spec":"@daily","type":"noop"}]}`,
		`{"schedules":[{"name":"a","spec":"every hour","type":"noop"}]}`,
		`not json`,
	} {
		if _, err := ParseFile([]byte(body)); err == nil {
			t.Errorf("ParseFile(%s) accepted it", body)
		}
	}
	got, err := ParseFile([]byte(`{"schedules":[{"name":"a","spec":"@hourly","type":"noop"}]}`))
	if err != nil || len(got) != 1 || got[0].Source != "file" {
		t.Fatalf("ParseFile = %+v, %v; want one file schedule", got, err)
	}
}

type bundle struct {
	db      *pgtest.DB
	store   *Store
	catalog *catalog.Catalog
}

// setup gives a fresh database whose kind catalog holds the diagnostic
// kinds, as a worker running them would have published.
func setup(t *testing.T) *bundle {
	t.Helper()
	t.Parallel()
	db := pgtest.New(t)
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	kinds := jobqueue.NewKinds()
	diagnostic.Add(kinds)
	if err := client.PublishKinds(context.Background(), "test", kinds); err != nil {
		t.Fatal(err)
	}
	cat := catalog.New(client, nil)
	client.SetPolicies(cat)
	return &bundle{db: db, store: NewStore(client, cat, nil), catalog: cat}
}

func (b *bundle) put(t *testing.T, s Schedule, created time.Time) {
	t.Helper()
	if _, err := b.store.Put(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Pool.Exec(context.Background(), `UPDATE spool.spool_schedules SET created_at = $2 WHERE name = $1`, s.Name, created); err != nil {
		t.Fatal(err)
	}
}

func (b *bundle) jobs(t *testing.T) int {
	t.Helper()
	var n int
	if err := b.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM spool.spool_jobs`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConcurrentTicksEnqueueEachTickOnce(t *testing.T) {
	b := setup(t)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b.put(t, Schedule{Name: "every-second", Spec: "@every 1s", Type: "noop"}, base)
	log := slog.New(slog.DiscardHandler)
	// Eight "workers" check at each of five instants, racing.
	for step := 1; step <= 5; step++ {
		now := base.Add(time.Duration(step)*time.Second + 100*time.Millisecond)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := b.store.Tick(context.Background(), now, log); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got := b.jobs(t); got != step {
			t.Fatalf("after tick %d: %d jobs, want %d", step, got, step)
		}
	}
}

func TestSlowCheckStillEnqueuesEveryOnTimeTick(t *testing.T) {
	b := setup(t)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b.put(t, Schedule{Name: "s", Spec: "@every 1s", Type: "noop"}, base)
	res, err := b.store.Tick(context.Background(), base.Add(3500*time.Millisecond), slog.New(slog.DiscardHandler))
	if err != nil || len(res) != 3 || b.jobs(t) != 3 {
		t.Fatalf("ticks = %d (err %v), jobs = %d; want 3 and 3 (ticks 1s, 2s, 3s)", len(res), err, b.jobs(t))
	}
}

func TestMissedTicksAreSkippedUnlessCatchingUp(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	created := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	b.put(t, Schedule{Name: "skips", Spec: "0 * * * *", Type: "noop"}, created)
	b.put(t, Schedule{Name: "catches-up", Spec: "0 * * * *", Type: "noop", CatchUp: true}, created)
	// Down from midnight until 05:30: five hourly ticks missed.
	res, err := b.store.Tick(ctx, created.Add(5*time.Hour+30*time.Minute), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]TickResult{}
	for _, r := range res {
		got[r.Schedule] = r
	}
	if r := got["skips"]; !r.Skipped || r.JobID != 0 {
		t.Errorf("skips: %+v, want skipped without a job", r)
	}
	if r := got["catches-up"]; r.Skipped || r.JobID == 0 {
		t.Errorf("catches-up: %+v, want one catch-up job", r)
	}
	if n := b.jobs(t); n != 1 {
		t.Fatalf("%d jobs after the outage, want exactly 1 (the catch-up run)", n)
	}
	for _, name := range []string{"skips", "catches-up"} {
		s, _ := b.store.Get(ctx, name)
		if want := created.Add(5 * time.Hour); s.LastTick == nil || !s.LastTick.Equal(want) {
			t.Errorf("%s last tick = %v, want %s", name, s.LastTick, want)
		}
	}
}

func TestSyncReplacesFileSchedulesOnly(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.put(t, Schedule{Name: "from-api", Spec: "@hourly", Type: "noop"}, time.Now())
	first, err := ParseFile([]byte(`{"schedules":[{"name":"a","spec":"@hourly","type":"noop"},{"name":"b","spec":"@daily","type":"noop"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.store.Sync(ctx, first); err != nil {
		t.Fatal(err)
	}
	second, _ := ParseFile([]byte(`{"schedules":[{"name":"b","spec":"@hourly","type":"noop"}]}`))
	if err := b.store.Sync(ctx, second); err != nil {
		t.Fatal(err)
	}
	list, err := b.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range list {
		names = append(names, s.Name+"="+s.Spec)
		if s.NextRun == nil {
			t.Errorf("%s has no next run time", s.Name)
		}
	}
	if len(names) != 2 || names[0] != "b=@hourly" || names[1] != "from-api=@hourly" {
		t.Fatalf("schedules = %v, want b (updated) and from-api (untouched)", names)
	}
}

// A client cannot take a tick's place: jobs with the keys ticks once used
// (schedule:<name>:<tick>) do not stop the ticks, which need no key.
func TestClientKeysCannotSuppressTicks(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b.put(t, Schedule{Name: "s", Spec: "@every 1s", Type: "noop"}, base)
	for i := 1; i <= 3; i++ {
		key := "schedule:s:" + base.Add(time.Duration(i)*time.Second).Format(time.RFC3339)
		if _, err := b.store.client.Enqueue(ctx, jobqueue.EnqueueParams{Kind: "noop", IdempotencyKey: key}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := b.store.Tick(ctx, base.Add(3500*time.Millisecond), slog.New(slog.DiscardHandler))
	if err != nil || len(res) != 3 || b.jobs(t) != 6 {
		t.Fatalf("ticks = %d (err %v), jobs = %d; want 3 ticks beside the client's 3 jobs", len(res), err, b.jobs(t))
	}
	for _, r := range res {
		j, err := b.store.client.Get(ctx, r.JobID)
		if err != nil || j.RequestID == nil || *j.RequestID != TickID("s", r.Tick) {
			t.Errorf("tick %s: job %+v (%v), want its request id %s", r.Tick, j, err, TickID("s", r.Tick))
		}
	}
}

// A bounded list carries payloads while they fit its budget, in name
// order, and marks the rest omitted; the one schedule still has its own.
func TestListBoundedLeavesOutPayloadsPastItsBudget(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	big := json.RawMessage(`{"message":"` + strings.Repeat("m", 1000) + `"}`)
	for i := range 6 {
		b.put(t, Schedule{Name: fmt.Sprint("s", i), Spec: "@hourly", Type: "fail", Payload: big}, time.Now())
	}
	list, err := b.store.ListBounded(ctx, 3*int64(len(big))+10)
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, s := range list {
		got = append(got, s.PayloadOmitted)
		if s.PayloadOmitted == (len(s.Payload) > 0) {
			t.Fatalf("%s: payload %d bytes, omitted %v", s.Name, len(s.Payload), s.PayloadOmitted)
		}
	}
	if fmt.Sprint(got) != "[false false false true true true]" {
		t.Fatalf("omitted = %v, want the last three", got)
	}
	if one, err := b.store.Get(ctx, "s5"); err != nil || len(one.Payload) == 0 {
		t.Fatalf("GET of an omitted one: %v, %v", one, err)
	}
}
