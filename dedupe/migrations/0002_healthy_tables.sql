-- 0002: a task table that stays healthy for months under a queue-like load
-- (issue 10). Rows are inserted, updated a few times (heartbeats, the
-- outcome) and deleted after key_ttl.

-- Heartbeats change lease_until and updated_at only. With neither indexed
-- and free room on the row's page, Postgres updates the row in place (a
-- HOT update): no new index entries, and the old version is pruned from
-- the page without waiting for vacuum. lease_until was indexed for
-- ReclaimZombies; the index below serves it instead, on a column that
-- only a new leader changes. Processing tasks are as many as requests in
-- flight, so scanning them all for an expired lease stays cheap.
DROP INDEX tasks_lease_until_idx;
CREATE INDEX tasks_processing_started_idx ON tasks (started_at) WHERE status = 'processing';

-- fillfactor leaves 30% of each page free for the heartbeat and outcome
-- versions of its rows (it applies to pages written from now on).
-- Autovacuum runs after 1% of the rows (plus 1000) died instead of the
-- default 20%, so dead rows of a large table never pile up to millions
-- before the first pass; inserts alone also trigger it (visibility map,
-- freezing) after 5%.
ALTER TABLE tasks SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    toast.autovacuum_vacuum_scale_factor = 0.01,
    toast.autovacuum_vacuum_threshold = 1000
);

-- An attempt row is written when its call leaves (outcome started) and
-- updated once when it ends: leave room for that one version.
ALTER TABLE attempts SET (
    fillfactor = 85,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02
);
