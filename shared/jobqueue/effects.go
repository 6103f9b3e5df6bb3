package jobqueue

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Beginner starts transactions; *pgxpool.Pool is one.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Once performs an effect at most once per key, however often the job that
// asks for it is retried or re-run after a crash. It records key in the
// effect ledger and runs fn in the same transaction: either both the ledger
// entry and fn's writes commit, or neither does. It reports whether fn ran
// (false: the effect had already happened).
//
// fn must make the effect durable through tx (write the email to the outbox,
// the charge to the payments table). For a call to an outside service,
// pass key to the service as its idempotency key instead.
func Once(ctx context.Context, db Beginner, key string, jobID int64, fn func(pgx.Tx) error) (bool, error) {
	ran := false
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO spool_effects (key, job_id) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, key, jobID)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		ran = true
		return fn(tx)
	})
	if err != nil {
		return false, interpretError(fmt.Errorf("effect %q: %w", key, err))
	}
	return ran, nil
}

// EffectKey is the default key of a job's effect: one per job and effect
// name, stable across attempts.
func EffectKey(job *Job, effect string) string {
	return fmt.Sprintf("%s:%d:%s", job.Type, job.ID, effect)
}
