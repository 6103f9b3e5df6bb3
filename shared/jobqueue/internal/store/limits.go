package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/spooltype"
)

// Statements of spool_limits and spool_queues.

// SetLimit creates or replaces a limit; the token bucket starts full (or
// keeps what it has, if that is less).
func (s *Store) SetLimit(ctx context.Context, db DBTX, l spooltype.Limit) error {
	_, err := db.Exec(ctx, s.sql(`INSERT INTO spool.spool_limits (scope, name, max_running, rate_per_second, burst, tokens)
		VALUES ($1, $2, $3, $4, $5::int, $5::int)
		ON CONFLICT (scope, name) DO UPDATE SET max_running = $3, rate_per_second = $4, burst = $5::int,
			tokens = least(spool_limits.tokens, $5::int), updated_at = now()`), l.Scope, l.Name, l.MaxRunning, l.RatePerSecond, l.Burst)
	return Interpret(err)
}

// DeleteLimit removes a limit; ErrNotFound if there was none.
func (s *Store) DeleteLimit(ctx context.Context, db DBTX, scope, name string) error {
	tag, err := db.Exec(ctx, s.sql(`DELETE FROM spool.spool_limits WHERE scope = $1 AND name = $2`), scope, name)
	if err == nil && tag.RowsAffected() == 0 {
		return spooltype.ErrNotFound
	}
	return Interpret(err)
}

// CountLimits counts the limits, to bound how many can exist.
func (s *Store) CountLimits(ctx context.Context, db DBTX) (int, error) {
	var n int
	err := db.QueryRow(ctx, s.sql(`SELECT count(*) FROM spool.spool_limits`)).Scan(&n)
	return n, Interpret(err)
}

// Limits lists every limit.
func (s *Store) Limits(ctx context.Context, db DBTX) ([]spooltype.Limit, error) {
	rows, err := db.Query(ctx, s.sql(`SELECT scope, name, max_running, rate_per_second, burst FROM spool.spool_limits ORDER BY scope, name`))
	if err != nil {
		return nil, Interpret(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (spooltype.Limit, error) {
		var l spooltype.Limit
		return l, r.Scan(&l.Scope, &l.Name, &l.MaxRunning, &l.RatePerSecond, &l.Burst)
	})
	return out, Interpret(err)
}

// SetPaused pauses or resumes a queue; resuming wakes its workers.
func (s *Store) SetPaused(ctx context.Context, db DBTX, queue string, paused bool) error {
	_, err := db.Exec(ctx, s.sql(`INSERT INTO spool.spool_queues (name, paused) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET paused = $2, updated_at = now()`), queue, paused)
	if err == nil && !paused {
		_, err = db.Exec(ctx, s.sql(`SELECT pg_notify('spool:jobs', $1)`), queue)
	}
	return Interpret(err)
}

// QueueStates returns every queue with a row of its own and whether it is
// paused.
func (s *Store) QueueStates(ctx context.Context, db DBTX) (map[string]bool, error) {
	rows, err := db.Query(ctx, s.sql(`SELECT name, paused FROM spool.spool_queues`))
	if err != nil {
		return nil, Interpret(err)
	}
	out := map[string]bool{}
	var name string
	var paused bool
	_, err = pgx.ForEachRow(rows, []any{&name, &paused}, func() error {
		out[name] = paused
		return nil
	})
	return out, Interpret(err)
}

// Bucket is a rate limit's token count at a moment.
type Bucket struct {
	Tokens float64
	At     time.Time
}

// LockLimit takes a limit's transaction advisory lock, so concurrent
// claimers of one scope take turns instead of overshooting it.
func (s *Store) LockLimit(ctx context.Context, tx DBTX, l *spooltype.Limit) error {
	_, err := tx.Exec(ctx, s.sql(`SELECT pg_advisory_xact_lock(hashtextextended('spool.limit:' || $1 || ':' || $2, 0))`), l.Scope, l.Name)
	return err
}

// Running counts the running jobs a limit's scope covers.
func (s *Store) Running(ctx context.Context, tx DBTX, l *spooltype.Limit) (int, error) {
	col := "queue"
	if l.Scope == spooltype.ScopeKind {
		col = "type"
	}
	var n int
	err := tx.QueryRow(ctx, s.sql(`SELECT count(*) FROM spool.spool_jobs WHERE status = 'running' AND `+col+` = $1`), l.Name).Scan(&n)
	return n, err
}

// Refill reads a rate limit's bucket refilled up to now; ok is false when
// the limit was deleted meanwhile.
func (s *Store) Refill(ctx context.Context, tx DBTX, l *spooltype.Limit) (b Bucket, ok bool, err error) {
	err = tx.QueryRow(ctx, s.sql(`SELECT least(burst, tokens + rate_per_second * extract(epoch FROM t.now - tokens_at)), t.now
		FROM spool.spool_limits, (SELECT clock_timestamp() AS now) AS t WHERE scope = $1 AND name = $2`), l.Scope, l.Name).Scan(&b.Tokens, &b.At)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, false, nil
	}
	return b, err == nil, err
}

// Debit stores a bucket's tokens as of the time they were counted.
func (s *Store) Debit(ctx context.Context, tx DBTX, l *spooltype.Limit, tokens float64, at time.Time) error {
	_, err := tx.Exec(ctx, s.sql(`UPDATE spool.spool_limits SET tokens = $3, tokens_at = $4 WHERE scope = $1 AND name = $2`),
		l.Scope, l.Name, tokens, at)
	return err
}

// TakeToken takes one token from a rate limit's bucket in one statement:
// the row lock serialises concurrent takers across processes, and the
// bucket is refilled from the time elapsed by the same rule the claim-time
// limits use (Refill). It returns limited false when there is no such rate
// limit; else taken, or how long until a whole token will be there.
func (s *Store) TakeToken(ctx context.Context, db DBTX, scope, name string) (limited, taken bool, wait time.Duration, err error) {
	var refilled, left, rate float64
	// c.t is read before the row lock may be waited for, so it can be older
	// than a concurrent taker's stamp: elapsed time is never negative and
	// the stamp never goes back.
	err = db.QueryRow(ctx, s.sql(`WITH c AS (SELECT clock_timestamp() AS t),
		cur AS (SELECT l.scope, l.name, l.rate_per_second AS rate, greatest(l.tokens_at, c.t) AS at,
				least(l.burst, l.tokens + l.rate_per_second * greatest(0, extract(epoch FROM c.t - l.tokens_at))) AS refilled
			FROM spool.spool_limits AS l, c
			WHERE l.scope = $1 AND l.name = $2 AND l.rate_per_second IS NOT NULL
			FOR UPDATE OF l)
		UPDATE spool.spool_limits AS l
		SET tokens = cur.refilled - CASE WHEN cur.refilled >= 1 - 1e-9 THEN 1 ELSE 0 END, tokens_at = cur.at
		FROM cur WHERE l.scope = cur.scope AND l.name = cur.name
		RETURNING cur.refilled, l.tokens, cur.rate`), scope, name).Scan(&refilled, &left, &rate)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, 0, nil
	}
	if err != nil {
		return false, false, 0, Interpret(err)
	}
	if refilled >= 1-1e-9 {
		return true, true, 0, nil
	}
	return true, false, time.Duration((1 - left) / rate * float64(time.Second)), nil
}
