-- 0003: durable jobs (the outbox of webhooks and card deadlines) and shared key-value pairs.
-- Same conventions as 0001: NOT NULL columns with neutral defaults, 0/1 booleans, JSON as
-- compact UTF-8 text. PostgreSQL: the same table with jsonb and BOOLEAN.

-- One row per job until it is done (deleted). While claimed, due_at_ms is the end of the
-- claim's lease, so a job whose node died is due again when the lease runs out.
-- AUTOINCREMENT: a job id is never reused after its row is deleted (ids name webhook
-- events, which receivers deduplicate by).
CREATE TABLE jobs (
    job_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,
    job_key       TEXT    NOT NULL DEFAULT '',   -- dedupe key, '' = none
    payload       TEXT    NOT NULL DEFAULT '{}',
    due_at_ms     INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,    -- failed tries
    claimed_by    TEXT    NOT NULL DEFAULT '',
    batch         TEXT    NOT NULL DEFAULT '',   -- token of the first claim
    dead          INTEGER NOT NULL DEFAULT 0,    -- 1: its last attempt failed; kept
    last_error    TEXT    NOT NULL DEFAULT '',
    created_at_ms INTEGER NOT NULL DEFAULT 0
);

-- At most one job per (kind, key) while it exists.
CREATE UNIQUE INDEX jobs_key ON jobs (kind, job_key) WHERE job_key <> '';
-- Claims take the earliest due pending jobs of one kind.
CREATE INDEX jobs_due ON jobs (kind, due_at_ms, job_id) WHERE dead = 0;
-- Dead letters are listed by kind.
CREATE INDEX jobs_dead ON jobs (kind, job_id) WHERE dead = 1;

-- Values every node must share, each created once (the card service's secret).
CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
