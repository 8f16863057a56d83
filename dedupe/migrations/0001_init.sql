-- 0001: tasks (one row per idempotency key of a tenant) and their attempt log.
-- Applied once by dedupe.Migrate, inside a transaction, under an advisory lock.

CREATE TABLE tasks (
    id                bigserial   PRIMARY KEY,
    tenant            text        NOT NULL,
    key_hash          text        NOT NULL,
    fingerprint       text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('processing', 'completed', 'failed')),
    -- fence grows by one every time a new leader takes the task; every
    -- write of a leader carries the fence it got, so a stale leader's late
    -- writes match no row.
    fence             bigint      NOT NULL DEFAULT 1,
    lease_owner       text        NOT NULL DEFAULT '',
    lease_until       timestamptz NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- NULL while processing: a processing task never expires, the reaper
    -- reclaims it instead.
    expires_at        timestamptz NULL,
    stream            boolean     NOT NULL DEFAULT false,
    model             text        NOT NULL DEFAULT '',
    prompt_tokens     bigint      NOT NULL DEFAULT 0,
    completion_tokens bigint      NOT NULL DEFAULT 0,
    too_large         boolean     NOT NULL DEFAULT false,
    error             text        NOT NULL DEFAULT '',
    resp_status       integer     NULL,
    resp_content_type text        NULL,
    resp_body         bytea       NULL,
    UNIQUE (tenant, key_hash)
);

-- DeleteExpired walks finished tasks by expiry in small batches.
CREATE INDEX tasks_expires_at_idx ON tasks (expires_at) WHERE status <> 'processing';
-- ReclaimZombies looks for processing tasks whose lease ran out.
CREATE INDEX tasks_lease_until_idx ON tasks (lease_until) WHERE status = 'processing';

CREATE TABLE attempts (
    task_id           bigint      NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    n                 integer     NOT NULL,
    fence             bigint      NOT NULL,
    provider          text        NOT NULL DEFAULT '',
    model             text        NOT NULL DEFAULT '',
    outcome           text        NOT NULL DEFAULT '',
    http_status       integer     NOT NULL DEFAULT 0,
    error             text        NOT NULL DEFAULT '',
    started_at        timestamptz NOT NULL DEFAULT now(),
    duration_ms       bigint      NOT NULL DEFAULT 0,
    prompt_tokens     bigint      NOT NULL DEFAULT 0,
    completion_tokens bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, n)
);
