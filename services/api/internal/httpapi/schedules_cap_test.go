package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/schedule"
)

// schedules is how many schedules exist, and a digest of all of them.
func (f *fixture) schedules() (int, string) {
	f.t.Helper()
	var n int
	var sum string
	err := f.db.Pool.QueryRow(context.Background(),
		`SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY name)), '') FROM spool.spool_schedules t`).Scan(&n, &sum)
	if err != nil {
		f.t.Fatal(err)
	}
	return n, sum
}

// Past the cap, a new schedule is refused with a body naming the limit,
// and nothing is written; replacing one, or creating one after a delete,
// is still allowed.
func TestSchedulePutPastTheCapIsRefusedAndWritesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, &httpapi.Opts{MaxSchedules: 3})
	for i := range 3 {
		mustStatus[map[string]any](t, f.do("PUT", fmt.Sprintf("/v1/schedules/s%d", i), `{"spec":"@every 1s","type":"noop"}`), 200)
	}
	n, before := f.schedules()
	e := mustStatus[errBody](t, f.do("PUT", "/v1/schedules/one-too-many", `{"spec":"@every 1s","type":"noop"}`), 409)
	if e.Field != "name" || !strings.Contains(e.Error, "at most 3 schedules") || !strings.Contains(e.Error, "SPOOL_MAX_SCHEDULES") {
		t.Errorf("refusal = %+v, want field name and a message naming the limit (3, SPOOL_MAX_SCHEDULES)", e)
	}
	if m, after := f.schedules(); m != n || after != before {
		t.Fatalf("refused PUT changed the schedules: %d → %d (%s → %s)", n, m, before, after)
	}
	mustStatus[errBody](t, f.do("GET", "/v1/schedules/one-too-many", ""), 404)

	s := mustStatus[struct{ Schedule map[string]any }](t, f.do("PUT", "/v1/schedules/s1", `{"spec":"@hourly","type":"noop"}`), 200)
	if s.Schedule["spec"] != "@hourly" {
		t.Errorf("replaced schedule = %v, want spec @hourly", s.Schedule)
	}
	mustStatus[map[string]any](t, f.do("DELETE", "/v1/schedules/s0", ""), 200)
	mustStatus[map[string]any](t, f.do("PUT", "/v1/schedules/one-too-many", `{"spec":"@every 1s","type":"noop"}`), 200)
	if n, _ := f.schedules(); n != 3 {
		t.Fatalf("%d schedules, want 3", n)
	}
}

// Concurrent creations cannot pass the cap together.
func TestConcurrentSchedulePutsKeepToTheCap(t *testing.T) {
	t.Parallel()
	const limit, tries = 5, 40
	f := setup(t, &httpapi.Opts{MaxSchedules: limit, MaxInFlight: -1})
	codes := make([]int, tries)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range tries {
		wg.Go(func() {
			<-start
			codes[i] = f.do("PUT", fmt.Sprintf("/v1/schedules/c%d", i), `{"spec":"@every 1s","type":"noop"}`).Code
		})
	}
	close(start)
	wg.Wait()
	got := map[int]int{}
	for _, c := range codes {
		got[c]++
	}
	if n, _ := f.schedules(); n != limit || got[200] != limit || got[409] != tries-limit {
		t.Fatalf("%d schedules; answers %v; want %d, %d × 200 and %d × 409", n, got, limit, limit, tries-limit)
	}
}

// Issue 17: clients sending the old tick keys (schedule:<name>:<tick>)
// over the API suppressed 3 of 3 ticks. Ticks take no idempotency key now,
// and Spool's own namespace (spool:) is refused.
func TestClientKeysOverTheAPICannotSuppressTicks(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	mustStatus[map[string]any](t, f.do("PUT", "/v1/schedules/s", `{"spec":"@every 1s","type":"noop"}`), 200)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.exec(`UPDATE spool.spool_schedules SET created_at = $1 WHERE name = 's'`, base)
	for i := 1; i <= 3; i++ {
		tick := base.Add(time.Duration(i) * time.Second).Format(time.RFC3339)
		mustStatus[map[string]any](t, f.do("POST", "/v1/jobs", `{"type":"noop","idempotency_key":"schedule:s:`+tick+`"}`), 201)
		mustStatus[errBody](t, f.do("POST", "/v1/jobs", `{"type":"noop","idempotency_key":"spool:schedule:s:`+tick+`"}`), 422)
	}
	store := schedule.NewStore(f.client, catalog.New(f.client, nil), nil)
	res, err := store.Tick(context.Background(), base.Add(3500*time.Millisecond), slog.New(slog.DiscardHandler))
	if err != nil || len(res) != 3 || f.count() != 6 {
		t.Fatalf("ticks = %d (err %v), jobs = %d; want 3 ticks enqueued beside the client's 3 jobs", len(res), err, f.count())
	}
}
