-- The W3C traceparent of the span that enqueued a job (OpenTelemetry), so
-- the worker's span around the handler continues the enqueuer's trace.
-- NULL when the enqueuer was not traced.
ALTER TABLE spool.spool_jobs ADD COLUMN trace_parent text;
