-- Limits keyed by destination host (scope 'host'): the http kind takes a
-- token from the host's bucket just before it sends, so a rate limit holds
-- for a partner however many workers send to it. A host limit is a rate
-- only; max_running is refused by the library.
ALTER TABLE spool.spool_limits DROP CONSTRAINT spool_limits_scope_check;
ALTER TABLE spool.spool_limits ADD CONSTRAINT spool_limits_scope_check CHECK (scope IN ('queue', 'type', 'host'));
