package jobqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnqueueManyFast inserts jobs with COPY, the fastest way into Postgres, in
// its own transaction, and returns how many it wrote. It returns no ids and
// takes no idempotency keys (COPY cannot skip conflicts); the insert
// trigger still wakes workers when it commits.
func (c *Client) EnqueueManyFast(ctx context.Context, ps []EnqueueParams) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var err error
		n, err = c.EnqueueManyFastTx(ctx, tx, ps)
		return err
	})
	return n, interpretError(err)
}

// copyColumns are the columns COPY writes; the rest take their defaults.
var copyColumns = []string{"type", "queue", "priority", "run_at", "max_attempts", "timeout_ms", "backoff_base_ms", "backoff_max_ms", "payload", "request_id"}

// EnqueueManyFastTx is EnqueueManyFast inside a caller's transaction.
func (c *Client) EnqueueManyFastTx(ctx context.Context, tx pgx.Tx, ps []EnqueueParams) (int64, error) {
	rows := make([][]any, len(ps))
	counts := map[string]int{}
	// COPY cannot ask the server for now(); one statement-start timestamp
	// from the server keeps run_at on the database's clock.
	var now time.Time
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return 0, interpretError(err)
	}
	for i, p := range ps {
		if p.IdempotencyKey != "" {
			return 0, fmt.Errorf("enqueue fast: job %d has an idempotency key; use EnqueueMany", i)
		}
		r, err := c.toRow(p)
		if err != nil {
			return 0, err
		}
		runAt := now
		if r.runAt != nil {
			runAt = *r.runAt
		}
		rows[i] = []any{r.typ, r.queue, int16(r.priority), runAt, int32(r.maxAttempts), r.timeoutMs, r.backoffBaseMs, r.backoffMaxMs, r.payload, r.requestID}
		counts[r.typ]++
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"spool_jobs"}, copyColumns, pgx.CopyFromRows(rows))
	if err != nil {
		return 0, interpretError(fmt.Errorf("enqueue fast: %w", err))
	}
	for typ, k := range counts {
		c.metrics.enqueued(typ, k)
	}
	return n, nil
}
