-- Workflows: a DAG of jobs declared at enqueue. A step waits as 'blocked'
-- until all its parents completed; the transaction that finishes a step also
-- unblocks its children, so a crash never strands a successor.
CREATE TABLE spool_workflows (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 128),
    status             text        NOT NULL DEFAULT 'running'
                       CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
    -- A job enqueued in the same transaction that fails the workflow, to undo
    -- what its completed steps did (refund, restock).
    on_failure_type    text,
    on_failure_payload jsonb,
    request_id         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz
);
CREATE INDEX spool_workflows_finished_idx ON spool_workflows (finished_at) WHERE finished_at IS NOT NULL;

ALTER TABLE spool_jobs
    ADD COLUMN workflow_id         bigint,
    ADD COLUMN step                text,
    ADD COLUMN parents             bigint[],
    -- When this step dies, its dependants run anyway instead of being cancelled.
    ADD COLUMN continue_on_failure boolean NOT NULL DEFAULT false,
    -- The failed step whose death cancelled this one; retrying it revives this.
    ADD COLUMN cancelled_by        bigint,
    -- The API request that enqueued the job, to trace a job to its request.
    ADD COLUMN request_id          text;

CREATE INDEX spool_jobs_workflow_idx ON spool_jobs (workflow_id) WHERE workflow_id IS NOT NULL;
