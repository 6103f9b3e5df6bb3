package jobqueue

import (
	"context"
	"sync"
	"time"
)

// Counts is a snapshot of the queue's counts: jobs by queue and status
// (Stats), and waiting jobs by kind (WaitingByKind), as of At.
type Counts struct {
	Stats   map[string]*QueueStats
	Waiting map[string]int64
	At      time.Time
}

// CountsCache shares one snapshot of the counts among every reader in a
// process (API requests, dashboards, gauges): each count is a scan of the
// jobs table, about 0.2 s at a million pending jobs, which readers must
// neither wait for nor multiply. A snapshot younger than maxAge is
// returned as it is; an older one is returned too, for up to
// maxAge more, while one refresh runs in the background; past that,
// or before the first snapshot, readers wait for the refresh (one for all
// of them). With maxAge 0 every Get counts afresh.
type CountsCache struct {
	client *Client
	maxAge time.Duration

	mu     sync.Mutex
	snap   *Counts
	flight *countsFlight // the refresh under way, if any
}

// countsTimeout bounds one refresh, which outlives the request that
// started it.
const countsTimeout = 30 * time.Second

type countsFlight struct {
	done chan struct{}
	snap *Counts
	err  error
}

// NewCountsCache shares client's counts, refreshed when older than maxAge.
func NewCountsCache(client *Client, maxAge time.Duration) *CountsCache {
	return &CountsCache{client: client, maxAge: maxAge}
}

// Get returns the counts, at most maxAge old unless a refresh is under way
// (then at most twice maxAge old: after idle, the first reader waits for a
// count rather than see an old one).
func (cc *CountsCache) Get(ctx context.Context) (*Counts, error) {
	if cc.maxAge <= 0 {
		return cc.client.counts(ctx)
	}
	cc.mu.Lock()
	snap := cc.snap
	if snap != nil && time.Now().Sub(snap.At) < cc.maxAge {
		cc.mu.Unlock()
		return snap, nil
	}
	f := cc.refreshLocked()
	cc.mu.Unlock()
	if snap != nil && time.Since(snap.At) < 2*cc.maxAge {
		return snap, nil
	}
	select {
	case <-f.done:
		return f.snap, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Fresh returns counts at most within old (at most the cache's maxAge),
// waiting for a refresh (shared with every other reader) when the
// snapshot is older: for background readers such as the gauges, which
// must not publish a snapshot one refresh behind.
func (cc *CountsCache) Fresh(ctx context.Context, within time.Duration) (*Counts, error) {
	if cc.maxAge <= 0 {
		return cc.client.counts(ctx)
	}
	within = min(within, cc.maxAge)
	cc.mu.Lock()
	if cc.snap != nil && time.Since(cc.snap.At) < within {
		snap := cc.snap
		cc.mu.Unlock()
		return snap, nil
	}
	f := cc.refreshLocked()
	cc.mu.Unlock()
	select {
	case <-f.done:
		return f.snap, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// refreshLocked starts a refresh unless one is under way, and returns it.
func (cc *CountsCache) refreshLocked() *countsFlight {
	if cc.flight != nil {
		return cc.flight
	}
	f := &countsFlight{done: make(chan struct{})}
	cc.flight = f
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), countsTimeout)
		defer cancel()
		f.snap, f.err = cc.client.counts(ctx)
		cc.mu.Lock()
		if f.err == nil {
			cc.snap = f.snap
		}
		cc.flight = nil
		cc.mu.Unlock()
		close(f.done)
	}()
	return f
}

// Queues is Client.Queues with the cached counts.
func (cc *CountsCache) Queues(ctx context.Context) ([]QueueInfo, error) {
	counts, err := cc.Get(ctx)
	if err != nil {
		return nil, err
	}
	return cc.client.queuesWith(ctx, counts.Stats)
}

// counts runs both counts now.
func (c *Client) counts(ctx context.Context) (*Counts, error) {
	at := time.Now()
	stats, err := c.Stats(ctx)
	if err != nil {
		return nil, err
	}
	waiting, err := c.WaitingByKind(ctx)
	if err != nil {
		return nil, err
	}
	return &Counts{Stats: stats, Waiting: waiting, At: at}, nil
}
