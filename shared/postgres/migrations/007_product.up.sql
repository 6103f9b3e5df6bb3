-- Spool as a product: its own schema (the migrator creates it, and moves
-- the tables of installs made before, when they lived in public), fenced
-- leases, the kind catalog, the worker registry, failure jobs stored with
-- their policy, and the library's input rules stated as CHECKs.

-- Notifications name their schema, so two Spool installs in one database
-- (two schemas) never wake each other's workers.
CREATE OR REPLACE FUNCTION spool.spool_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('spool:jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM new_rows WHERE status IN ('pending', 'retrying')) AS q;
    RETURN NULL;
END
$$;

-- A running job's attempt is identified by the lease token of its claim;
-- every write that ends an attempt matches it, and every end clears it, so
-- a stale attempt can never write over a newer one. Jobs running when this
-- migration runs belong to workers of the previous version: token 0, which
-- no claim uses, so they are rescued when their leases run out.
ALTER TABLE spool.spool_jobs ADD COLUMN lease_token bigint;
UPDATE spool.spool_jobs SET lease_token = 0 WHERE status = 'running';
ALTER TABLE spool.spool_jobs
    ADD CONSTRAINT spool_jobs_lease_token_check CHECK ((status = 'running') = (lease_token IS NOT NULL)),
    -- The library's bounds on names (jobqueue: CheckQueueName, CheckKindName)
    -- as lengths: the characters are checked by the library only, because a
    -- regular expression evaluated on every insert and every update of a job
    -- halved insert and drain throughput (measured, A/B pairs). NOT VALID:
    -- rows written before are not re-checked.
    DROP CONSTRAINT spool_jobs_queue_check,
    ADD CONSTRAINT spool_jobs_queue_check CHECK (char_length(queue) BETWEEN 1 AND 64) NOT VALID;
ALTER TABLE spool.spool_schedules
    ADD CONSTRAINT spool_schedules_queue_name_check CHECK (queue ~ '^[a-z0-9_.-]{1,64}$') NOT VALID,
    ADD CONSTRAINT spool_schedules_kind_name_check CHECK (type ~ '^[A-Za-z0-9_.:-]{1,128}$') NOT VALID;

-- A workflow's failure job, with its kind's policy resolved when the
-- workflow was created (the worker that fails the workflow may not know
-- that kind).
ALTER TABLE spool.spool_workflows ADD COLUMN on_failure jsonb;
UPDATE spool.spool_workflows SET on_failure = jsonb_build_object('type', on_failure_type, 'queue', 'default',
    'max_attempts', 10, 'payload', coalesce(on_failure_payload, '{}'::jsonb)::text)
    WHERE on_failure_type IS NOT NULL;
ALTER TABLE spool.spool_workflows DROP COLUMN on_failure_type, DROP COLUMN on_failure_payload;

-- The kind catalog: every worker publishes the kinds it runs when it
-- starts, with the JSON Schema of the payload (derived from the Go type)
-- and the kind's policy. The API validates enqueues against it.
CREATE TABLE spool.spool_kinds (
    name            text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    description     text        NOT NULL DEFAULT '' CHECK (char_length(description) <= 1024),
    schema          jsonb       NOT NULL,
    max_attempts    integer     CHECK (max_attempts BETWEEN 1 AND 1000),
    timeout_ms      integer     CHECK (timeout_ms > 0),
    backoff_base_ms integer     CHECK (backoff_base_ms > 0),
    backoff_max_ms  integer     CHECK (backoff_max_ms > 0),
    published_by    text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Workers as they last reported themselves: a row at start, a heartbeat
-- every few seconds, a stop mark on a clean exit. A worker whose heartbeat
-- is old is lost; the kinds of live workers are the kinds being served.
CREATE TABLE spool.spool_workers (
    id           text        PRIMARY KEY CHECK (char_length(id) BETWEEN 1 AND 255),
    host         text        NOT NULL DEFAULT '',
    version      text        NOT NULL DEFAULT '',
    queues       jsonb       NOT NULL DEFAULT '{}',
    kinds        text[]      NOT NULL DEFAULT '{}',
    running      integer     NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz
);
