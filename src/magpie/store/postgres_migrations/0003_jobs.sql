-- 0003: durable jobs (the outbox of webhooks and card deadlines) and shared key-value pairs.
-- Same table as the SQLite migration of the same number; BIGINT times, jsonb payloads.

-- One row per job until it is done (deleted). While claimed, due_at_ms is the end of the
-- claim's lease, so a job whose node died is due again when the lease runs out. Claims use
-- FOR UPDATE SKIP LOCKED, so nodes claiming at once never take the same job. The identity
-- sequence never hands out an id twice (ids name webhook events).
CREATE TABLE jobs (
    job_id        BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT    NOT NULL,
    job_key       TEXT    NOT NULL DEFAULT '',   -- dedupe key, '' = none
    payload       JSONB   NOT NULL DEFAULT '{}',
    due_at_ms     BIGINT  NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,    -- failed tries
    claimed_by    TEXT    NOT NULL DEFAULT '',
    batch         TEXT    NOT NULL DEFAULT '',   -- token of the first claim
    dead          BOOLEAN NOT NULL DEFAULT FALSE, -- its last attempt failed; kept
    last_error    TEXT    NOT NULL DEFAULT '',
    created_at_ms BIGINT  NOT NULL DEFAULT 0
);

-- At most one job per (kind, key) while it exists.
CREATE UNIQUE INDEX jobs_key ON jobs (kind, job_key) WHERE job_key <> '';
-- Claims take the earliest due pending jobs of one kind.
CREATE INDEX jobs_due ON jobs (kind, due_at_ms, job_id) WHERE NOT dead;
-- Dead letters are listed by kind.
CREATE INDEX jobs_dead ON jobs (kind, job_id) WHERE dead;

-- Values every node must share, each created once (the card service's secret).
CREATE TABLE kv (
    key   TEXT  PRIMARY KEY,
    value BYTEA NOT NULL
);
