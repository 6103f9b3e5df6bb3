package jobqueue

import (
	"context"
	"strconv"
	"strings"
)

// DeadFilter selects dead jobs for bulk retry or deletion. Empty fields match
// everything.
type DeadFilter struct {
	Type  string
	Queue string
}

func (f DeadFilter) where() (string, []any) {
	conds, args := []string{"status = 'dead'"}, []any{}
	if f.Type != "" {
		args = append(args, f.Type)
		conds = append(conds, "type = $"+strconv.Itoa(len(args)))
	}
	if f.Queue != "" {
		args = append(args, f.Queue)
		conds = append(conds, "queue = $"+strconv.Itoa(len(args)))
	}
	return strings.Join(conds, " AND "), args
}

// RetryDead puts every dead job matching f back to pending (attempts reset,
// history kept) and returns how many.
func (c *Client) RetryDead(ctx context.Context, f DeadFilter) (int64, error) {
	where, args := f.where()
	var n int64
	err := c.pool.QueryRow(ctx, `WITH r AS (
			UPDATE spool_jobs SET status = 'pending', attempts = 0, run_at = now(), finished_at = NULL,
				started_at = NULL, worker_id = NULL
			WHERE `+where+` RETURNING queue),
		q AS (SELECT queue, count(*) AS n FROM r GROUP BY queue)
		SELECT coalesce(sum(q.n), 0) FROM q, LATERAL (SELECT pg_notify('spool_jobs', q.queue)) AS notified`, args...).Scan(&n)
	return n, interpretError(err)
}

// DeleteDead deletes every dead job matching f and returns how many.
func (c *Client) DeleteDead(ctx context.Context, f DeadFilter) (int64, error) {
	where, args := f.where()
	tag, err := c.pool.Exec(ctx, `DELETE FROM spool_jobs WHERE `+where, args...)
	return tag.RowsAffected(), interpretError(err)
}
