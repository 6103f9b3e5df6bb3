package jobqueue

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCheckLimitHostScope(t *testing.T) {
	rate, one := 5.0, 1
	for _, tc := range []struct {
		l  Limit
		ok bool
	}{
		{Limit{Scope: ScopeHost, Name: "api.example.com", RatePerSecond: &rate, Burst: 1}, true},
		{Limit{Scope: ScopeHost, Name: "127.0.0.1", RatePerSecond: &rate, Burst: 3}, true},
		{Limit{Scope: ScopeHost, Name: "::1", RatePerSecond: &rate, Burst: 1}, true},
		{Limit{Scope: ScopeHost, Name: "hooks_1.example-2.io", RatePerSecond: &rate, Burst: 1}, true},
		{Limit{Scope: ScopeHost, Name: "API.example.com", RatePerSecond: &rate, Burst: 1}, false},
		{Limit{Scope: ScopeHost, Name: "api.example.com.", RatePerSecond: &rate, Burst: 1}, false},
		{Limit{Scope: ScopeHost, Name: "a..b", RatePerSecond: &rate, Burst: 1}, false},
		{Limit{Scope: ScopeHost, Name: "", RatePerSecond: &rate, Burst: 1}, false},
		{Limit{Scope: ScopeHost, Name: "127.000.0.1", RatePerSecond: &rate, Burst: 1}, false},
		{Limit{Scope: ScopeHost, Name: "2130706433", RatePerSecond: &rate, Burst: 1}, false},
		{Limit{Scope: ScopeHost, Name: "::ffff:127.0.0.1", RatePerSecond: &rate, Burst: 1}, false},
		{Limit{Scope: ScopeHost, Name: "0:0::1", RatePerSecond: &rate, Burst: 1}, false},
		{Limit{Scope: ScopeHost, Name: "example.com:443", RatePerSecond: &rate, Burst: 1}, false},
		{Limit{Scope: ScopeHost, Name: strings.Repeat("a", 129), RatePerSecond: &rate, Burst: 1}, false},
		{Limit{Scope: ScopeHost, Name: "api.example.com", MaxRunning: &one, Burst: 1}, false},
		{Limit{Scope: ScopeHost, Name: "api.example.com", MaxRunning: &one, RatePerSecond: &rate, Burst: 1}, false},
		{Limit{Scope: ScopeHost, Name: "api.example.com", RatePerSecond: &rate, Burst: 0}, false},
	} {
		if err := CheckLimit(tc.l); (err == nil) != tc.ok {
			t.Errorf("CheckLimit(%s/%q) = %v, want ok %v", tc.l.Scope, tc.l.Name, err, tc.ok)
		}
	}
}

// TakeToken under concurrency takes exactly the bucket's tokens, tells the
// others how long until the next one, and takes nothing without a limit.
func TestTakeTokenConcurrent(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	if wait, err := b.client.TakeToken(ctx, ScopeHost, "none.example.com"); err != nil || wait != 0 {
		t.Fatalf("no limit: wait %s, %v; want 0", wait, err)
	}
	rate := 0.5 // a token every 2 s: none refills during the test
	if _, err := b.client.SetLimit(ctx, Limit{Scope: ScopeHost, Name: "api.example.com", RatePerSecond: &rate, Burst: 3}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var taken int
	var waits []time.Duration
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			wait, err := b.client.TakeToken(ctx, ScopeHost, "api.example.com")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
			} else if wait == 0 {
				taken++
			} else {
				waits = append(waits, wait)
			}
		})
	}
	wg.Wait()
	if taken != 3 || len(waits) != 17 {
		t.Fatalf("taken %d, refused %d; want 3 and 17", taken, len(waits))
	}
	for _, w := range waits {
		if w <= 0 || w > 2*time.Second {
			t.Errorf("wait %s, want within (0, 2 s]", w)
		}
	}
	// The claim-time limits do not apply a host limit to any queue or kind.
	ls, err := b.client.Limits(ctx)
	if err != nil || len(ls) != 1 || ls[0].Scope != ScopeHost {
		t.Fatalf("limits = %+v, %v", ls, err)
	}
}

// A host limit whose name is also a kind's and a queue's is not applied at
// claim time: the kind and queue run unthrottled.
func TestHostLimitIsNotAClaimLimit(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	rate := MinRatePerSecond // a token every ~17 minutes
	for _, name := range []string{"hostnamed", DefaultQueue} {
		if _, err := b.client.SetLimit(ctx, Limit{Scope: ScopeHost, Name: name, RatePerSecond: &rate, Burst: 1}); err != nil {
			t.Fatal(err)
		}
	}
	reg := NewKinds()
	reg.Handle("hostnamed", func(context.Context, *Job) error { return nil }, nil)
	b.runWorker(t, reg, WorkerConfig{})
	var ids []int64
	for range 5 {
		res, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "hostnamed"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Job.ID)
	}
	for _, id := range ids {
		b.waitStatus(t, id, StatusCompleted)
	}
}
