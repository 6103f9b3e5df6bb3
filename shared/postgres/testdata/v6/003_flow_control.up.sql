-- Queue state shared by every worker: a paused queue is never claimed from.
CREATE TABLE spool_queues (
    name       text        PRIMARY KEY CHECK (name ~ '^[a-z0-9_.-]{1,64}$'),
    paused     boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Cluster-wide limits per queue or job type. Workers serialise claims of a
-- limited scope with a transaction advisory lock, so the limit holds however
-- many replicas run. The rate limit is a token bucket kept in the row.
CREATE TABLE spool_limits (
    scope           text             NOT NULL CHECK (scope IN ('queue', 'type')),
    name            text             NOT NULL CHECK (char_length(name) BETWEEN 1 AND 128),
    max_running     integer          CHECK (max_running > 0),
    rate_per_second double precision CHECK (rate_per_second > 0),
    burst           integer          NOT NULL DEFAULT 1 CHECK (burst >= 1),
    tokens          double precision NOT NULL DEFAULT 1,
    tokens_at       timestamptz      NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, name),
    CHECK (max_running IS NOT NULL OR rate_per_second IS NOT NULL)
);

-- Recurring jobs. last_tick is claimed with a conditional UPDATE in the same
-- transaction as the enqueue, so exactly one worker enqueues each tick.
CREATE TABLE spool_schedules (
    name       text        PRIMARY KEY CHECK (name ~ '^[a-zA-Z0-9_.-]{1,128}$'),
    spec       text        NOT NULL,
    timezone   text        NOT NULL DEFAULT 'UTC',
    type       text        NOT NULL,
    payload    jsonb       NOT NULL DEFAULT '{}',
    queue      text        NOT NULL DEFAULT 'default',
    priority   smallint    NOT NULL DEFAULT 0,
    catch_up   boolean     NOT NULL DEFAULT false,
    source     text        NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'file')),
    last_tick  timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Counting running jobs per type for concurrency limits.
CREATE INDEX spool_jobs_running_type_idx ON spool_jobs (type) WHERE status = 'running';

-- The next due time of a queue, so an idle worker sleeps exactly until then.
CREATE INDEX spool_jobs_next_due_idx ON spool_jobs (queue, run_at) WHERE status IN ('pending', 'retrying');
