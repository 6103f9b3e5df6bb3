// Package producer claims jobs of one queue into a worker's free slots: it
// claims in rounds sized to the free slots (gathering a moment in a
// backlog, so per-claim costs are shared), keeps a second round in flight
// while a busy worker's first is on its way, honours cluster-wide limits,
// and sleeps until a notification, a freed slot, the next due job, a rate
// limit's next token, or the poll interval.
package producer

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool/shared/jobqueue/internal/metrics"
	"github.com/spoolq/spool/shared/jobqueue/internal/store"
	"github.com/spoolq/spool/shared/spooltype"
)

// Claimed is one job a round claimed, for the worker to start.
type Claimed struct {
	Job   *store.Job
	Token int64     // the attempt's lease token
	Sent  time.Time // when the claim was sent: its lease runs at least Lease from then
}

// Producer claims the jobs of one queue.
type Producer struct {
	Queue        string
	Concurrency  int
	Kinds        []string // the kinds this worker runs
	Store        *store.Store
	DB           store.Pool
	WorkerID     string
	Lease        time.Duration
	PollInterval time.Duration
	MaxClaim     int
	Limits       func() *LimitSet
	Metrics      *metrics.Set
	Log          *slog.Logger
	Now          func() time.Time // the clock a claim's Sent is read on; nil: time.Now
	// Start runs a claimed job; it must call Release when the job's slot
	// is free again.
	Start func(jobsCtx context.Context, c Claimed)

	once  sync.Once
	wake  chan struct{} // a notification or reconnect: new work may be due
	freed chan struct{} // a slot became free

	mu   sync.Mutex
	busy int // slots running or reserved by a claim in flight

	Wakeups atomic.Int64 // times the loop woke up, for tests
}

func (p *Producer) init() {
	p.once.Do(func() {
		p.wake, p.freed = make(chan struct{}, 1), make(chan struct{}, 1)
	})
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Wake tells the producer new work may be due.
func (p *Producer) Wake() {
	p.init()
	signal(p.wake)
}

// Release frees one slot.
func (p *Producer) Release() {
	p.mu.Lock()
	p.busy--
	p.mu.Unlock()
	signal(p.freed)
}

func (p *Producer) free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Concurrency - p.busy
}

// claimTimeout bounds one claim query, which shutdown does not interrupt.
const claimTimeout = 10 * time.Second

// gatherWindow is the most a backlogged producer waits for more slots to
// free up before claiming for the few that are: claiming one job per round
// trip would make the database, not the handlers, set the pace.
const gatherWindow = 2 * time.Millisecond

// maxRounds is how many claim rounds a producer keeps in flight. With one,
// a busy worker's slots wait for each claim's round trip in turn and the
// database sits partly idle; a second round claims for the slots that free
// up meanwhile. Rounds reserve their slots, so together they never take
// more jobs than the queue's concurrency.
const maxRounds = 2

// roundResult is what a finished claim round reports to its producer.
type roundResult struct {
	more      bool      // a claim came back full: more may be due now
	nextToken time.Time // when a rate limit's next token arrives
	wakes     int       // the producer's wake-up count when the round started
}

// Run claims until ctx ends; jobsCtx is the context jobs start under.
// Claims in flight when ctx ends still start their jobs.
func (p *Producer) Run(ctx, jobsCtx context.Context) {
	p.init()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var rounds sync.WaitGroup
	defer rounds.Wait()
	results := make(chan roundResult, maxRounds)
	// A busy producer claims for half its slots at once, or after the gather
	// window for fewer: per-claim costs are then shared by many jobs (+10% on
	// the drain benchmark against a quarter).
	floor := max(1, min(p.Concurrency, p.MaxClaim)/2)
	var pollAt, wakeAt, gatherUntil time.Time
	inflight := 0
	more := true  // something may be due; after a short claim, only a signal says so
	full := false // the last round filled its slots: the queue is backlogged
	wakes := 0    // wake-ups and timer firings so far: one after a round began may be for a job it missed
	for ctx.Err() == nil {
		free := p.free()
		if !more {
			gatherUntil = time.Time{} // nothing to gather for until a signal
		}
		// A second round in flight only pays off in a backlog; for a wake-up
		// the round already on its way suffices.
		open := inflight == 0 || (full && inflight < maxRounds)
		canClaim := more && free > 0 && open
		if canClaim && free < floor && gatherUntil.IsZero() {
			gatherUntil = time.Now().Add(gatherWindow)
		}
		if canClaim && (free >= floor || !time.Now().Before(gatherUntil)) {
			gatherUntil = time.Time{}
			inflight++
			// Reserved here, before the next turn of the loop looks at free.
			slots, started := p.reserve(p.MaxClaim), wakes
			rounds.Go(func() {
				more, next := p.round(ctx, jobsCtx, slots)
				results <- roundResult{more: more, nextToken: next, wakes: started}
			})
			continue
		}
		// With no slot free, or no round to start, only a freed slot or a
		// round's end can change anything: timers would only spin.
		next := time.Now().Add(p.PollInterval)
		if free > 0 && open {
			next = earliest(next, pollAt, wakeAt, gatherUntil)
		}
		timer.Reset(max(time.Until(next), 100*time.Microsecond))
		p.Wakeups.Add(1)
		select {
		case <-ctx.Done():
		case r := <-results:
			inflight--
			full = r.more
			more, wakeAt = r.more || wakes > r.wakes, r.nextToken
			if !more && inflight == 0 {
				pollAt = time.Now().Add(p.PollInterval)
				if due := p.nextDue(ctx); !due.IsZero() && (wakeAt.IsZero() || due.Before(wakeAt)) {
					wakeAt = due
				}
			}
		case <-p.wake:
			more = true
			wakes++
		case <-timer.C:
			// Poll time, a due job or token, or the gather window's end. All
			// but the last may concern a job a round in flight did not see.
			if gatherUntil.IsZero() || time.Now().Before(gatherUntil) {
				wakes++
			}
			more = true
		case <-p.freed:
		}
	}
}

// earliest is the earliest non-zero time of ts (the first is never zero).
func earliest(first time.Time, ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() && t.Before(first) {
			first = t
		}
	}
	return first
}

// group is some kinds claimed together, under the same limits.
type group struct {
	kinds  []string
	limits []*spooltype.Limit
}

func nonNil(ls ...*spooltype.Limit) []*spooltype.Limit {
	var out []*spooltype.Limit
	for _, l := range ls {
		if l != nil {
			out = append(out, l)
		}
	}
	return out
}

// round fills the slots reserved for it: unlimited kinds in one claim,
// each limited kind in a claim of its own under its limits; it gives back
// the slots it did not fill. It reports whether more may be due now, and
// when a rate limit's next token arrives.
func (p *Producer) round(ctx, jobsCtx context.Context, slots int) (more bool, nextToken time.Time) {
	limits := p.Limits()
	queueLimit := limits.queues[p.Queue]
	var free, limited []string
	for _, k := range p.Kinds {
		if limits.kinds[k] != nil {
			limited = append(limited, k)
		} else {
			free = append(free, k)
		}
	}
	groups := make([]group, 0, 1+len(limited))
	if len(free) > 0 {
		groups = append(groups, group{kinds: free, limits: nonNil(queueLimit)})
	}
	for _, k := range limited {
		groups = append(groups, group{kinds: []string{k}, limits: nonNil(queueLimit, limits.kinds[k])})
	}
	defer func() { p.unreserve(slots) }()
	for _, g := range groups {
		if slots == 0 {
			return true, nextToken
		}
		n, wait, err := p.claim(ctx, jobsCtx, g, slots)
		if err != nil {
			return false, nextToken
		}
		more = more || n == slots
		slots -= n
		if !wait.IsZero() && (nextToken.IsZero() || wait.Before(nextToken)) {
			nextToken = wait
		}
	}
	return more, nextToken
}

// claim takes up to n jobs of a group and starts them.
func (p *Producer) claim(ctx, jobsCtx context.Context, g group, n int) (int, time.Time, error) {
	// A claim is never cut off by shutdown: cancelled mid-flight, its commit
	// could still land on the server while this worker sees only an error,
	// stranding the jobs until their leases expire. Whatever it claims is
	// started, then finished or handed back like any running job.
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	cp := store.ClaimParams{Queue: p.Queue, Kinds: g.kinds, Limit: n, WorkerID: p.WorkerID, Lease: p.Lease, Token: newToken()}
	sent := time.Now()
	if p.Now != nil {
		sent = p.Now()
	}
	var (
		jobs      []*store.Job
		nextToken time.Time
		err       error
	)
	if len(g.limits) == 0 {
		jobs, err = p.Store.Claim(qctx, p.DB, cp)
	} else {
		var throttled bool
		jobs, nextToken, throttled, err = p.claimLimited(qctx, cp, g.limits)
		if throttled {
			p.Metrics.Throttle(g.limits)
		}
	}
	p.Metrics.Poll(len(jobs), err)
	if err != nil {
		if ctx.Err() == nil {
			p.Log.Warn("claim failed", "queue", p.Queue, "error", err)
		}
		return 0, time.Time{}, err
	}
	for _, job := range jobs {
		p.Start(jobsCtx, Claimed{Job: job, Token: cp.Token, Sent: sent}) // its slot was reserved by round
	}
	return len(jobs), nextToken, nil
}

// newToken draws a claim's lease token: random, so that no two attempts of
// a job share one (0 marks attempts of workers before fencing).
func newToken() int64 {
	for {
		if t := rand.Int64(); t != 0 {
			return t
		}
	}
}

// nextDue asks when the queue's next delayed job becomes due, so an idle
// worker wakes for it on time rather than on the next poll.
func (p *Producer) nextDue(ctx context.Context) time.Time {
	t, err := p.Store.NextDue(ctx, p.DB, p.Queue)
	if err != nil && ctx.Err() == nil {
		p.Log.Warn("next due time unknown", "queue", p.Queue, "error", err)
	}
	return t
}

// reserve takes up to n free slots for a claim about to be made, so that
// rounds in flight together never claim more than the queue's concurrency.
func (p *Producer) reserve(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n = min(n, p.Concurrency-p.busy)
	p.busy += n
	return n
}

// unreserve gives back the slots a claim reserved but did not fill.
func (p *Producer) unreserve(n int) {
	if n == 0 {
		return
	}
	p.mu.Lock()
	p.busy -= n
	p.mu.Unlock()
	signal(p.freed)
}
