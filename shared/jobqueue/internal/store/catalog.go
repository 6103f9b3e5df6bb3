package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/spooltype"
)

// Statements of spool_kinds (the kind catalog) and spool_workers.

// PublishKinds writes the kinds a worker runs into the catalog: each
// kind's description, payload schema and policy, as this worker declares
// them (the last worker to start wins).
func (s *Store) PublishKinds(ctx context.Context, db DBTX, workerID string, kinds []spooltype.KindInfo) error {
	for _, k := range kinds {
		_, err := db.Exec(ctx, s.sql(`INSERT INTO spool.spool_kinds (name, description, schema, max_attempts, timeout_ms, backoff_base_ms, backoff_max_ms, published_by)
			VALUES ($1, $2, $3::text::jsonb, NULLIF($4, 0), NULLIF($5, 0), NULLIF($6, 0), NULLIF($7, 0), $8)
			ON CONFLICT (name) DO UPDATE SET description = $2, schema = $3::text::jsonb, max_attempts = NULLIF($4, 0),
				timeout_ms = NULLIF($5, 0), backoff_base_ms = NULLIF($6, 0), backoff_max_ms = NULLIF($7, 0),
				published_by = $8, updated_at = now()`),
			k.Name, k.Description, string(k.Schema), k.Policy.MaxAttempts, Millis(k.Policy.Timeout),
			Millis(k.Policy.Backoff.Base), Millis(k.Policy.Backoff.Max), workerID)
		if err != nil {
			return Interpret(fmt.Errorf("publish kind %q: %w", k.Name, err))
		}
	}
	return nil
}

// Kinds lists the catalog, each kind with the live workers that run it.
func (s *Store) Kinds(ctx context.Context, db DBTX, liveWithin time.Duration) ([]spooltype.KindInfo, error) {
	rows, err := db.Query(ctx, s.sql(`SELECT k.name, k.description, k.schema, coalesce(k.max_attempts, 0), k.timeout_ms,
			k.backoff_base_ms, k.backoff_max_ms, k.updated_at,
			coalesce((SELECT array_agg(w.id ORDER BY w.id) FROM spool.spool_workers w
				WHERE k.name = ANY(w.kinds) AND w.stopped_at IS NULL
				AND w.heartbeat_at > now() - $1 * interval '1 millisecond'), '{}')
		FROM spool.spool_kinds k ORDER BY k.name`), liveWithin.Milliseconds())
	if err != nil {
		return nil, Interpret(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (spooltype.KindInfo, error) {
		var k spooltype.KindInfo
		var timeout, bbase, bmax *int32
		err := r.Scan(&k.Name, &k.Description, &k.Schema, &k.Policy.MaxAttempts, &timeout, &bbase, &bmax, &k.UpdatedAt, &k.Workers)
		k.Policy.Timeout, k.Policy.Backoff.Base, k.Policy.Backoff.Max = ms(timeout), ms(bbase), ms(bmax)
		return k, err
	})
	return out, Interpret(err)
}

// ForgetKind removes a kind from the catalog; ErrNotFound if it was not
// there.
func (s *Store) ForgetKind(ctx context.Context, db DBTX, name string) error {
	tag, err := db.Exec(ctx, s.sql(`DELETE FROM spool.spool_kinds WHERE name = $1`), name)
	if err == nil && tag.RowsAffected() == 0 {
		return spooltype.ErrNotFound
	}
	return Interpret(err)
}

// RegisterWorker records a worker at start.
func (s *Store) RegisterWorker(ctx context.Context, db DBTX, w spooltype.WorkerInfo) error {
	queues, err := json.Marshal(w.Queues)
	if err != nil {
		return err
	}
	_, err = db.Exec(ctx, s.sql(`INSERT INTO spool.spool_workers (id, host, version, queues, kinds)
		VALUES ($1, $2, $3, $4::text::jsonb, $5)
		ON CONFLICT (id) DO UPDATE SET host = $2, version = $3, queues = $4::text::jsonb, kinds = $5, running = 0,
			started_at = now(), heartbeat_at = now(), stopped_at = NULL`), w.ID, w.Host, w.Version, string(queues), w.Kinds)
	return Interpret(err)
}

// Heartbeat records that a worker is alive and how many jobs it runs.
func (s *Store) Heartbeat(ctx context.Context, db DBTX, id string, running int) error {
	_, err := db.Exec(ctx, s.sql(`UPDATE spool.spool_workers SET heartbeat_at = now(), running = $2 WHERE id = $1`), id, running)
	return Interpret(err)
}

// StopWorker records a clean stop.
func (s *Store) StopWorker(ctx context.Context, db DBTX, id string) error {
	_, err := db.Exec(ctx, s.sql(`UPDATE spool.spool_workers SET stopped_at = now(), running = 0 WHERE id = $1`), id)
	return Interpret(err)
}

// Workers lists the recorded workers, newest heartbeat first; live means a
// heartbeat within liveWithin and no clean stop.
func (s *Store) Workers(ctx context.Context, db DBTX, liveWithin time.Duration) ([]spooltype.WorkerInfo, error) {
	rows, err := db.Query(ctx, s.sql(`SELECT id, host, version, queues, kinds, running, started_at, heartbeat_at,
			stopped_at IS NULL AND heartbeat_at > now() - $1 * interval '1 millisecond'
		FROM spool.spool_workers ORDER BY heartbeat_at DESC, id`), liveWithin.Milliseconds())
	if err != nil {
		return nil, Interpret(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (spooltype.WorkerInfo, error) {
		var w spooltype.WorkerInfo
		var queues []byte
		if err := r.Scan(&w.ID, &w.Host, &w.Version, &queues, &w.Kinds, &w.Running, &w.StartedAt, &w.HeartbeatAt, &w.Live); err != nil {
			return w, err
		}
		return w, json.Unmarshal(queues, &w.Queues)
	})
	return out, Interpret(err)
}
