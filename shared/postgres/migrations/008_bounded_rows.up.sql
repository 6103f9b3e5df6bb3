-- Bounded rows: a job's error history keeps its first and newest entries
-- (the library's store.HistoryFirst and HistoryKept) and counts the ones
-- it drops, so a job failing often with long messages no longer grows its
-- row, and the WAL of each update, without limit.
ALTER TABLE spool.spool_jobs ADD COLUMN errors_dropped integer NOT NULL DEFAULT 0;

-- Histories written before are cut to the same shape once: the first 3
-- entries and the newest 17.
UPDATE spool.spool_jobs
SET errors_dropped = jsonb_array_length(errors) - 20,
    errors = (SELECT jsonb_agg(e ORDER BY i)
              FROM jsonb_array_elements(errors) WITH ORDINALITY AS x(e, i)
              WHERE i <= 3 OR i > jsonb_array_length(errors) - 17)
WHERE jsonb_array_length(errors) > 20;
