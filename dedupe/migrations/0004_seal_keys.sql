-- 0004: one row per encryption key that has sealed records
-- (store.encryption_keys, issue 13). canary is a fixed value sealed with
-- the key, so that a start-up with a wrong or missing key fails at once
-- instead of a request meeting a record it cannot open. written_at is
-- when a gateway last sealed with the key; records sealed with it live at
-- most key_ttl (plus max_processing) longer.
CREATE TABLE seal_keys (
    key_id     text PRIMARY KEY,
    canary     bytea NOT NULL,
    written_at timestamptz NOT NULL
);
