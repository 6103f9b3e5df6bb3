package producer

import (
	"context"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/jobqueue/internal/store"
	"github.com/spoolq/spool/shared/spooltype"
)

// LimitSet is a worker's cached view of the cluster-wide limits.
type LimitSet struct {
	queues map[string]*spooltype.Limit
	kinds  map[string]*spooltype.Limit
}

// NewLimitSet indexes limits by scope.
func NewLimitSet(ls []spooltype.Limit) *LimitSet {
	s := &LimitSet{queues: map[string]*spooltype.Limit{}, kinds: map[string]*spooltype.Limit{}}
	for i := range ls {
		switch ls[i].Scope {
		case spooltype.ScopeQueue:
			s.queues[ls[i].Name] = &ls[i]
		case spooltype.ScopeKind:
			s.kinds[ls[i].Name] = &ls[i]
		} // ScopeHost: taken by the handler before sending, not at claim
	}
	return s
}

// claimLimited claims up to p.Limit jobs under limits, holding each
// limit's advisory lock for the transaction so concurrent claimers of the
// same scope queue up instead of overshooting. Besides the jobs it returns
// when a rate limit's next token is due (zero: no rate limit is binding)
// and whether the limits held back due jobs entirely.
func (p *Producer) claimLimited(ctx context.Context, cp store.ClaimParams, limits []*spooltype.Limit) (
	jobs []*store.Job, nextToken time.Time, throttled bool, err error) {
	err = pgx.BeginFunc(ctx, p.DB, func(tx pgx.Tx) error {
		allowed, refills, err := p.allowance(ctx, tx, cp.Limit, limits)
		if err != nil {
			return err
		}
		if allowed > 0 {
			cp.Limit = allowed
			if jobs, err = p.Store.ClaimTx(ctx, tx, cp); err != nil {
				return err
			}
		} else if throttled, err = p.Store.DueExists(ctx, tx, cp.Queue, cp.Kinds); err != nil {
			return err
		}
		wait, err := p.debit(ctx, tx, refills, len(jobs))
		if wait > 0 {
			nextToken = time.Now().Add(wait)
		}
		return err
	})
	return jobs, nextToken, throttled, store.Interpret(err)
}

// allowance locks the limits and works out how many jobs may start now. It
// returns each rate limit's refilled bucket for debit.
func (p *Producer) allowance(ctx context.Context, tx pgx.Tx, n int, limits []*spooltype.Limit) (int, map[*spooltype.Limit]store.Bucket, error) {
	refills := map[*spooltype.Limit]store.Bucket{}
	for _, l := range limits {
		if err := p.Store.LockLimit(ctx, tx, l); err != nil {
			return 0, nil, err
		}
	}
	for _, l := range limits {
		if l.MaxRunning != nil {
			running, err := p.Store.Running(ctx, tx, l)
			if err != nil {
				return 0, nil, err
			}
			n = min(n, max(0, *l.MaxRunning-running))
		}
		if l.RatePerSecond != nil {
			b, ok, err := p.Store.Refill(ctx, tx, l)
			if err != nil {
				return 0, nil, err
			}
			if !ok {
				continue // deleted since we loaded it
			}
			refills[l] = b
			n = min(n, int(math.Floor(b.Tokens+1e-9)))
		}
	}
	return max(n, 0), refills, nil
}

// debit takes the claimed jobs' tokens out of each rate limit's bucket and
// returns how long until every bucket holds a whole token again.
func (p *Producer) debit(ctx context.Context, tx pgx.Tx, refills map[*spooltype.Limit]store.Bucket, used int) (time.Duration, error) {
	var wait time.Duration
	for l, b := range refills {
		left := b.Tokens - float64(used)
		// Stamped with the time the tokens were counted, not now: the
		// refill during this transaction belongs to the next claimer.
		if err := p.Store.Debit(ctx, tx, l, left, b.At); err != nil {
			return 0, err
		}
		if left < 1 {
			wait = max(wait, time.Duration((1-left) / *l.RatePerSecond * float64(time.Second)))
		}
	}
	return wait, nil
}
