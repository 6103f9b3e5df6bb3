// Package lease keeps the leases of the attempts a worker runs. It renews
// them together, with a deadline well under the renewal interval, and it
// fences each attempt locally: an attempt whose lease this worker could not
// renew in time is cancelled before the lease can run out in the database,
// so the rescuer of another worker (which waits out a grace period beyond
// the lease) never starts the job again while this one still runs it.
package lease

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/spoolq/spool/shared/jobqueue/internal/executor"
	"github.com/spoolq/spool/shared/jobqueue/internal/metrics"
	"github.com/spoolq/spool/shared/jobqueue/internal/store"
)

// Timing of a lease of length L:
//   - renewals every L/3, each bounded by L/10;
//   - after failed renewals the worker retries every L/10 and cancels an
//     attempt by (last successful renewal sent) + L − L/10, its local
//     expiry, checking every L/10 for what expires before the next check;
//     its handler then has AbandonGrace to return;
//   - the rescuer takes a job only once its lease ran out more than the
//     grace Grace(L) = L/10 + AbandonGrace ago, on the database's clock.
//
// The database's lease_until is at least the time a renewal was sent plus
// L, so a partitioned worker stops its handler at least L/10 + Grace(L)
// before any rescuer can take the job; that margin absorbs clock-rate
// differences and the abandon grace.

// Margin is how much earlier than its lease a worker gives up an attempt
// it could not renew.
func Margin(lease time.Duration) time.Duration { return lease / 10 }

// Grace is how long after a lease ran out the rescuer waits before taking
// the job.
func Grace(lease time.Duration) time.Duration { return lease/10 + executor.AbandonGrace }

// Attempt identifies one attempt held by this worker.
type Attempt = store.Attempt

type held struct {
	cancel  context.CancelCauseFunc
	expires time.Time // local: cancel the attempt at this time unless renewed
}

// Keeper holds a worker's running attempts and their leases.
type Keeper struct {
	Store   *store.Store
	DB      store.DBTX
	Lease   time.Duration
	Metrics *metrics.Set
	Log     *slog.Logger
	Now     func() time.Time // the clock local expiry is measured on; nil: time.Now

	mu   sync.Mutex
	held map[Attempt]*held
}

// Add starts keeping an attempt claimed at sent (local time the claim was
// sent: its database lease is at least sent + Lease); cancel stops its
// handler.
func (k *Keeper) Add(a Attempt, sent time.Time, cancel context.CancelCauseFunc) {
	k.mu.Lock()
	if k.held == nil {
		k.held = map[Attempt]*held{}
	}
	k.held[a] = &held{cancel: cancel, expires: sent.Add(k.Lease - Margin(k.Lease))}
	k.mu.Unlock()
}

// Remove stops keeping an attempt (it ended).
func (k *Keeper) Remove(a Attempt) {
	k.mu.Lock()
	delete(k.held, a)
	k.mu.Unlock()
}

// Count is how many attempts are held.
func (k *Keeper) Count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.held)
}

// Run renews leases until ctx ends.
func (k *Keeper) Run(ctx context.Context) {
	step := max(k.Lease/10, 10*time.Millisecond)
	tick := time.NewTicker(step)
	defer tick.Stop()
	var last time.Time // the last renewal attempt
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := k.now()
		k.expire(now, step)
		if failing || now.Sub(last) >= k.Lease/3 {
			last = now
			failing = !k.renew(ctx, last)
		}
	}
}

// renew extends every held lease in one statement bounded by Lease/10 and
// reports whether it reached the database. Attempts no longer held there
// (cancelled, rescued) are stopped.
func (k *Keeper) renew(ctx context.Context, sent time.Time) bool {
	k.mu.Lock()
	ids := make([]int64, 0, len(k.held))
	tokens := make([]int64, 0, len(k.held))
	for a := range k.held {
		ids, tokens = append(ids, a.ID), append(tokens, a.Token)
	}
	k.mu.Unlock()
	if len(ids) == 0 {
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, max(k.Lease/10, 10*time.Millisecond))
	owned, err := k.Store.Renew(rctx, k.DB, ids, tokens, k.Lease)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			k.Log.Warn("lease renewal failed; attempts will be cancelled at their local expiry unless a renewal succeeds",
				"error", err, "held", len(ids))
		}
		return false
	}
	expires := sent.Add(k.Lease - Margin(k.Lease))
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, id := range ids {
		a := Attempt{ID: id, Token: tokens[i]}
		h, ok := k.held[a]
		if !ok {
			continue // ended meanwhile
		}
		if owned[id] {
			h.expires = expires
			continue
		}
		h.cancel(executor.ErrJobLost)
		delete(k.held, a)
		k.Metrics.LeaseLost(metrics.LeaseTaken)
	}
	return true
}

// expire cancels the attempts whose local expiry comes before the next
// check, one step from now: an attempt is cancelled by its local expiry,
// never up to a step after it (checked only once it had passed, a
// partitioned worker's handler ran on for up to another lease/10).
func (k *Keeper) expire(now time.Time, step time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for a, h := range k.held {
		if now.Add(step).Before(h.expires) {
			continue
		}
		h.cancel(executor.ErrJobLost)
		delete(k.held, a)
		k.Metrics.LeaseLost(metrics.LeaseExpired)
		k.Log.Warn("lease not renewed in time: handler cancelled before the lease could run out", "job_id", a.ID)
	}
}

func (k *Keeper) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}
