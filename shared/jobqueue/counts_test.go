package jobqueue

import (
	"context"
	"testing"
	"time"
)

// The cache serves one snapshot to every reader while it is young, serves
// it while one refresh runs once it is older, and with maxAge 0 counts on
// every call.
func TestCountsCacheSharesAndRefreshesASnapshot(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	enqueue := func() {
		t.Helper()
		if _, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "k"}); err != nil {
			t.Fatal(err)
		}
	}
	pending := func(c *Counts) int64 { return c.Stats[DefaultQueue].Counts[StatusPending] }
	enqueue()
	cache := NewCountsCache(b.client, 200*time.Millisecond)
	first, err := cache.Get(ctx)
	if err != nil || pending(first) != 1 || first.Waiting["k"] != 1 {
		t.Fatalf("first counts %+v, %v; want 1 pending k", first, err)
	}
	enqueue()
	if again, _ := cache.Get(ctx); again != first {
		t.Fatalf("a young snapshot was counted again: %+v", again)
	}
	time.Sleep(250 * time.Millisecond)
	if stale, _ := cache.Get(ctx); stale != first {
		t.Fatalf("an old snapshot was not served while refreshing: %+v", stale)
	}
	waitFor(t, "refreshed counts", func() bool {
		c, err := cache.Get(ctx)
		return err == nil && pending(c) == 2 && c.Waiting["k"] == 2
	})
	exact := NewCountsCache(b.client, 0)
	enqueue()
	if c, err := exact.Get(ctx); err != nil || pending(c) != 3 {
		t.Fatalf("maxAge 0: %+v, %v; want 3 pending", c, err)
	}
}

// Fresh waits for a refresh past maxAge instead of serving the old
// snapshot, so the gauges never publish counts one refresh behind.
func TestCountsCacheFreshWaitsPastMaxAge(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	cache := NewCountsCache(b.client, 100*time.Millisecond)
	if _, err := cache.Fresh(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "k"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	c, err := cache.Fresh(ctx, time.Hour)
	if err != nil || c.Stats[DefaultQueue].Counts[StatusPending] != 1 {
		t.Fatalf("fresh counts past maxAge: %+v, %v; want the new job counted", c, err)
	}
}
