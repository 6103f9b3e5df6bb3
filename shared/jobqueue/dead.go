package jobqueue

import (
	"context"

	"github.com/jackc/pgx/v5"
	"strconv"
	"strings"
)

// DeadFilter selects dead jobs for bulk retry or deletion. Empty fields match
// everything.
type DeadFilter struct {
	ID    int64 // one job; 0: any
	Type  string
	Queue string
}

func (f DeadFilter) where() (string, []any) {
	conds, args := []string{"status = 'dead'"}, []any{}
	if f.ID != 0 {
		args = append(args, f.ID)
		conds = append(conds, "id = $"+strconv.Itoa(len(args)))
	}
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
// history kept), reviving the workflows they failed, and returns how many.
func (c *Client) RetryDead(ctx context.Context, f DeadFilter) (int64, error) {
	where, args := f.where()
	var n int64
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE spool_jobs SET status = 'pending', attempts = 0, run_at = now(), finished_at = NULL,
				started_at = NULL, worker_id = NULL, cancelled_by = NULL
			WHERE `+where+` RETURNING id, queue, workflow_id IS NOT NULL`, args...)
		if err != nil {
			return err
		}
		queues := map[string]bool{}
		var steps []int64
		for rows.Next() {
			var id int64
			var queue string
			var inWorkflow bool
			if err := rows.Scan(&id, &queue, &inWorkflow); err != nil {
				return err
			}
			n++
			queues[queue] = true
			if inWorkflow {
				steps = append(steps, id)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for q := range queues {
			if _, err := tx.Exec(ctx, `SELECT pg_notify('spool_jobs', $1)`, q); err != nil {
				return err
			}
		}
		if len(steps) > 0 {
			return revive(ctx, tx, steps)
		}
		return nil
	})
	return n, interpretError(err)
}

// DeleteDead deletes every dead job matching f and returns how many.
func (c *Client) DeleteDead(ctx context.Context, f DeadFilter) (int64, error) {
	where, args := f.where()
	tag, err := c.pool.Exec(ctx, `DELETE FROM spool_jobs WHERE `+where, args...)
	return tag.RowsAffected(), interpretError(err)
}
