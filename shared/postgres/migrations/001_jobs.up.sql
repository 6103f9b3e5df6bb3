-- Spool's job table. One row per job; finished rows stay until the pruner
-- removes them, so the hot claim index is partial and never sees them.
CREATE TABLE spool.spool_jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type            text        NOT NULL CHECK (char_length(type) BETWEEN 1 AND 128),
    queue           text        NOT NULL DEFAULT 'default' CHECK (char_length(queue) BETWEEN 1 AND 128),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'retrying', 'completed', 'dead', 'cancelled', 'blocked')),
    priority        smallint    NOT NULL DEFAULT 0,
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer     NOT NULL DEFAULT 10 CHECK (max_attempts >= 1),
    run_at          timestamptz NOT NULL DEFAULT now(),
    timeout_ms      integer     CHECK (timeout_ms > 0),
    backoff_base_ms integer     CHECK (backoff_base_ms > 0),
    backoff_max_ms  integer     CHECK (backoff_max_ms > 0),
    idempotency_key text        CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    worker_id       text,
    lease_until     timestamptz,
    last_error      text,
    errors          jsonb       NOT NULL DEFAULT '[]',
    payload         jsonb       NOT NULL DEFAULT '{}',
    result          jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    CHECK ((status = 'running') = (lease_until IS NOT NULL))
) WITH (fillfactor = 80);

-- The claim path: due jobs of one queue in priority order. Partial, so
-- finished and running rows never enter it.
CREATE INDEX spool_jobs_claim_idx ON spool.spool_jobs (queue, priority DESC, run_at, id)
    WHERE status IN ('pending', 'retrying');

-- The rescuer looks only at running rows by lease deadline.
CREATE INDEX spool_jobs_lease_idx ON spool.spool_jobs (lease_until) WHERE status = 'running';

-- Listing and pruning by status, newest first (keyset on id).
CREATE INDEX spool_jobs_status_idx ON spool.spool_jobs (status, id);

-- An idempotency key names at most one job while that job exists.
CREATE UNIQUE INDEX spool_jobs_idempotency_key_idx ON spool.spool_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Frequent updates of short-lived rows: vacuum early.
ALTER TABLE spool.spool_jobs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

-- Wake idle workers in the enqueueing transaction itself, whatever the
-- insert path (single row, multi-row, COPY). One notification per queue per
-- statement; Postgres folds duplicates within a transaction.
CREATE FUNCTION spool.spool_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('spool:jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM new_rows WHERE status IN ('pending', 'retrying')) AS q;
    RETURN NULL;
END
$$;

CREATE TRIGGER spool_jobs_notify_insert AFTER INSERT ON spool.spool_jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION spool.spool_notify_insert();
