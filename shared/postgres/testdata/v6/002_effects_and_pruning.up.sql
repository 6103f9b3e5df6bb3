-- The effect ledger: a handler records "effect K happened" in the same
-- transaction as the effect's own record, so a job re-run after a crash
-- finds K and does not repeat the effect (no second email, no second charge).
CREATE TABLE spool_effects (
    key        text        PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 255),
    job_id     bigint,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX spool_effects_created_idx ON spool_effects (created_at);

-- The pruner deletes finished jobs by age, oldest first, per status.
CREATE INDEX spool_jobs_finished_idx ON spool_jobs (status, finished_at) WHERE finished_at IS NOT NULL;

-- The simulated mail provider's outbox: one row per email actually sent.
CREATE TABLE sim_emails (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    effect_key text        NOT NULL,
    job_id     bigint      NOT NULL,
    recipient  text        NOT NULL,
    subject    text        NOT NULL,
    sent_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sim_emails_job_idx ON sim_emails (job_id);
