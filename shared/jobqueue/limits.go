package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// Limit scopes.
const (
	ScopeQueue = "queue"
	ScopeType  = "type"
)

// Limit bounds one queue or job type across the whole cluster: at most
// MaxRunning jobs running at once, and at most RatePerSecond starts per
// second with bursts of at most Burst. Over-limit jobs wait; they never
// fail or spend attempts.
type Limit struct {
	Scope         string   `json:"scope"`
	Name          string   `json:"name"`
	MaxRunning    *int     `json:"max_running,omitempty"`
	RatePerSecond *float64 `json:"rate_per_second,omitempty"`
	Burst         int      `json:"burst"`
}

// ErrInvalidLimit is returned for a limit that bounds nothing or is out of range.
var ErrInvalidLimit = errors.New("invalid limit")

// Validate checks a limit before it is stored.
func (l Limit) Validate() error {
	switch {
	case l.Scope != ScopeQueue && l.Scope != ScopeType:
		return fmt.Errorf("%w: scope must be queue or type", ErrInvalidLimit)
	case l.Name == "" || len(l.Name) > 128:
		return fmt.Errorf("%w: name must be 1-128 characters", ErrInvalidLimit)
	case l.MaxRunning == nil && l.RatePerSecond == nil:
		return fmt.Errorf("%w: set max_running, rate_per_second or both", ErrInvalidLimit)
	case l.MaxRunning != nil && (*l.MaxRunning < 1 || *l.MaxRunning > 100_000):
		return fmt.Errorf("%w: max_running must be 1-100000", ErrInvalidLimit)
	case l.RatePerSecond != nil && (*l.RatePerSecond < 0.001 || *l.RatePerSecond > 1e6 || math.IsNaN(*l.RatePerSecond)):
		// Below a token per 1000 s the wait for the next token overflows a Duration soon enough to matter.
		return fmt.Errorf("%w: rate_per_second must be between 0.001 and 1000000", ErrInvalidLimit)
	case l.Burst < 0 || l.Burst > 100_000:
		return fmt.Errorf("%w: burst must be 1-100000", ErrInvalidLimit)
	}
	return nil
}

// SetLimit creates or replaces a limit. The token bucket starts full.
func (c *Client) SetLimit(ctx context.Context, l Limit) (Limit, error) {
	if l.Burst == 0 {
		l.Burst = 1
	}
	if err := l.Validate(); err != nil {
		return Limit{}, err
	}
	_, err := c.pool.Exec(ctx, `INSERT INTO spool_limits (scope, name, max_running, rate_per_second, burst, tokens)
		VALUES ($1, $2, $3, $4, $5::int, $5::int)
		ON CONFLICT (scope, name) DO UPDATE SET max_running = $3, rate_per_second = $4, burst = $5::int,
			tokens = least(spool_limits.tokens, $5::int), updated_at = now()`, l.Scope, l.Name, l.MaxRunning, l.RatePerSecond, l.Burst)
	return l, interpretError(err)
}

// DeleteLimit removes a limit; ErrNotFound if there was none.
func (c *Client) DeleteLimit(ctx context.Context, scope, name string) error {
	tag, err := c.pool.Exec(ctx, `DELETE FROM spool_limits WHERE scope = $1 AND name = $2`, scope, name)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return interpretError(err)
}

// Limits lists every limit.
func (c *Client) Limits(ctx context.Context) ([]Limit, error) {
	return loadLimits(ctx, c.pool)
}

func loadLimits(ctx context.Context, db DBTX) ([]Limit, error) {
	rows, err := db.Query(ctx, `SELECT scope, name, max_running, rate_per_second, burst FROM spool_limits ORDER BY scope, name`)
	if err != nil {
		return nil, interpretError(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Limit, error) {
		var l Limit
		return l, r.Scan(&l.Scope, &l.Name, &l.MaxRunning, &l.RatePerSecond, &l.Burst)
	})
	return out, interpretError(err)
}

// SetPaused pauses or resumes a queue for every worker. Running jobs finish.
func (c *Client) SetPaused(ctx context.Context, queue string, paused bool) error {
	_, err := c.pool.Exec(ctx, `INSERT INTO spool_queues (name, paused) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET paused = $2, updated_at = now()`, queue, paused)
	if err == nil && !paused {
		_, err = c.pool.Exec(ctx, `SELECT pg_notify('spool_jobs', $1)`, queue)
	}
	return interpretError(err)
}

// QueueInfo is one queue's state, depth and limits.
type QueueInfo struct {
	Name   string           `json:"name"`
	Paused bool             `json:"paused"`
	Counts map[Status]int64 `json:"counts"`
	// OldestDueAgeSeconds is how long the oldest due, unclaimed job has waited.
	OldestDueAgeSeconds float64 `json:"oldest_pending_age_seconds"`
	Limit               *Limit  `json:"limit,omitempty"`
}

// Queues lists every queue that has jobs, a pause state or a limit.
func (c *Client) Queues(ctx context.Context) ([]QueueInfo, error) {
	stats, err := c.Stats(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*QueueInfo{}
	get := func(name string) *QueueInfo {
		if q, ok := byName[name]; ok {
			return q
		}
		q := &QueueInfo{Name: name, Counts: map[Status]int64{}}
		byName[name] = q
		return q
	}
	for name, s := range stats {
		q := get(name)
		q.Counts, q.OldestDueAgeSeconds = s.Counts, s.OldestDueAgeSeconds
	}
	rows, err := c.pool.Query(ctx, `SELECT name, paused FROM spool_queues`)
	if err != nil {
		return nil, interpretError(err)
	}
	for rows.Next() {
		var name string
		var paused bool
		if err := rows.Scan(&name, &paused); err != nil {
			return nil, err
		}
		get(name).Paused = paused
	}
	if err := rows.Err(); err != nil {
		return nil, interpretError(err)
	}
	limits, err := c.Limits(ctx)
	if err != nil {
		return nil, err
	}
	for _, l := range limits {
		if l.Scope == ScopeQueue {
			get(l.Name).Limit = &l
		}
	}
	out := make([]QueueInfo, 0, len(byName))
	for _, q := range byName {
		out = append(out, *q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// limitSet is the worker's cached view of the limits.
type limitSet struct {
	queues map[string]*Limit
	types  map[string]*Limit
	loaded time.Time
}

func newLimitSet(ls []Limit) *limitSet {
	s := &limitSet{queues: map[string]*Limit{}, types: map[string]*Limit{}, loaded: time.Now()}
	for i := range ls {
		if ls[i].Scope == ScopeQueue {
			s.queues[ls[i].Name] = &ls[i]
		} else {
			s.types[ls[i].Name] = &ls[i]
		}
	}
	return s
}

// claimLimited claims up to n jobs under limits, holding each limit's
// advisory lock for the transaction so concurrent claimers of the same scope
// queue up instead of overshooting. Besides the jobs it returns when a rate
// limit's next token is due (zero: no rate limit is binding) and whether the
// limits held back due jobs entirely.
func claimLimited(ctx context.Context, db Beginner, queue string, types []string, n int, workerID string,
	lease time.Duration, limits []*Limit) (jobs []*Job, nextToken time.Time, throttled bool, err error) {
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, asyncCommit); err != nil {
			return err
		}
		allowed, refills, err := allowance(ctx, tx, n, limits)
		if err != nil {
			return err
		}
		if allowed > 0 {
			if jobs, err = claimTx(ctx, tx, claimPreciseSQL, queue, types, allowed, workerID, lease); err != nil {
				return err
			}
		} else if throttled, err = dueExists(ctx, tx, queue, types); err != nil {
			return err
		}
		wait, err := debit(ctx, tx, refills, len(jobs))
		if wait > 0 {
			nextToken = time.Now().Add(wait)
		}
		return err
	})
	return jobs, nextToken, throttled, interpretError(err)
}

// allowance locks the limits and works out how many jobs may start now. It
// returns each rate limit's refilled bucket for debit.
func allowance(ctx context.Context, tx pgx.Tx, n int, limits []*Limit) (int, map[*Limit]bucket, error) {
	refills := map[*Limit]bucket{}
	for _, l := range limits {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('spool_limit:' || $1 || ':' || $2, 0))`, l.Scope, l.Name); err != nil {
			return 0, nil, err
		}
	}
	for _, l := range limits {
		if l.MaxRunning != nil {
			var running int
			col := map[string]string{ScopeQueue: "queue", ScopeType: "type"}[l.Scope]
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM spool_jobs WHERE status = 'running' AND `+col+` = $1`, l.Name).Scan(&running); err != nil {
				return 0, nil, err
			}
			n = min(n, max(0, *l.MaxRunning-running))
		}
		if l.RatePerSecond != nil {
			var b bucket
			err := tx.QueryRow(ctx, `SELECT least(burst, tokens + rate_per_second * extract(epoch FROM t.now - tokens_at)), t.now
				FROM spool_limits, (SELECT clock_timestamp() AS now) AS t WHERE scope = $1 AND name = $2`, l.Scope, l.Name).Scan(&b.tokens, &b.at)
			if errors.Is(err, pgx.ErrNoRows) {
				continue // deleted since we loaded it
			}
			if err != nil {
				return 0, nil, err
			}
			refills[l] = b
			n = min(n, int(math.Floor(b.tokens+1e-9)))
		}
	}
	return max(n, 0), refills, nil
}

// bucket is a rate limit's token count at a moment.
type bucket struct {
	tokens float64
	at     time.Time
}

// debit takes the claimed jobs' tokens out of each rate limit's bucket and
// returns how long until every bucket holds a whole token again.
func debit(ctx context.Context, tx pgx.Tx, refills map[*Limit]bucket, used int) (time.Duration, error) {
	var wait time.Duration
	for l, b := range refills {
		left := b.tokens - float64(used)
		// Stamped with the time the tokens were counted, not now: the
		// refill during this transaction belongs to the next claimer.
		if _, err := tx.Exec(ctx, `UPDATE spool_limits SET tokens = $3, tokens_at = $4 WHERE scope = $1 AND name = $2`,
			l.Scope, l.Name, left, b.at); err != nil {
			return 0, err
		}
		if left < 1 {
			wait = max(wait, time.Duration((1-left) / *l.RatePerSecond * float64(time.Second)))
		}
	}
	return wait, nil
}

func dueExists(ctx context.Context, tx pgx.Tx, queue string, types []string) (bool, error) {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM spool_jobs WHERE queue = $1 AND status IN ('pending', 'retrying')
		AND run_at <= now() AND type = ANY($2))`, queue, types).Scan(&ok)
	return ok, err
}
