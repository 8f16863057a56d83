-- 0003: the task list of GET /admin/tasks and the ledger page (issue 16),
-- and the replays and joins each task served.

-- Newest first by keyset ((created_at, id) < the cursor's), so every page
-- is an index range scan however deep it is. created_at changes only when
-- an expired key starts over, never in a heartbeat, so heartbeats stay
-- HOT updates (migration 0002). The second index serves the list of one
-- tenant, the filter operators use most; status and route filters are
-- applied to the rows the index walk returns.
CREATE INDEX tasks_created_idx ON tasks (created_at, id);
CREATE INDEX tasks_tenant_created_idx ON tasks (tenant, created_at, id);

-- What a task served without an upstream call, added every few seconds
-- by each gateway from its in-memory counts (dedupe/served.go). A table of
-- its own, so the flush never rewrites a task row (with its stored body).
-- generation is the task's created_at when counted: a key that expired and
-- started over keeps its row id, and its old counts must not show.
CREATE TABLE task_served (
    task_id    bigint      PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    generation timestamptz NOT NULL,
    replays    bigint      NOT NULL DEFAULT 0,
    joins      bigint      NOT NULL DEFAULT 0
);
