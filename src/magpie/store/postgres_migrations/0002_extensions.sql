-- 0002: message extensions (ARCHITECTURE I6), and a token-digest index. The same tables as
-- the SQLite migration of the same number; JSON columns are jsonb, and content_edit is NULL
-- for "none" (SQLite: '').

-- One row per message whose extension was ever changed. channel_id/channel_type/message_seq
-- repeat the message's (immutable) values so a sync reads this table alone.
CREATE TABLE message_ext (
    message_id     BIGINT  PRIMARY KEY REFERENCES messages (message_id),
    channel_id     TEXT    NOT NULL,
    channel_type   INTEGER NOT NULL,
    message_seq    BIGINT  NOT NULL,
    status         TEXT    NOT NULL DEFAULT '',
    extra          JSONB   NOT NULL DEFAULT '{}',
    revoke         BOOLEAN NOT NULL DEFAULT FALSE,
    revoker        TEXT    NOT NULL DEFAULT '',
    content_edit   JSONB,
    edited_at      BIGINT  NOT NULL DEFAULT 0,
    readed_count   BIGINT  NOT NULL DEFAULT 0,
    version        BIGINT  NOT NULL,            -- +1 per accepted change
    extra_version  BIGINT  NOT NULL,            -- from ext_channel_clock, per channel
    updated_at     BIGINT  NOT NULL,            -- hybrid logical clock value
    updated_uid    TEXT    NOT NULL DEFAULT '',
    updated_device TEXT    NOT NULL DEFAULT '',
    last_op_id     BIGINT  NOT NULL             -- message_ext_ops row of the last change
);

-- A sync reads only the rows changed after its cursor; unique because each change takes a
-- new value from the channel's counter.
CREATE UNIQUE INDEX message_ext_sync ON message_ext (channel_id, channel_type, extra_version);

-- The per-channel extra_version counter, bumped in the change's transaction.
CREATE TABLE ext_channel_clock (
    channel_id         TEXT    NOT NULL,
    channel_type       INTEGER NOT NULL,
    last_extra_version BIGINT  NOT NULL,
    PRIMARY KEY (channel_id, channel_type)
);

-- The append-only operation log: one row per attempted change, applied or rejected.
CREATE TABLE message_ext_ops (
    op_id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id    BIGINT  NOT NULL REFERENCES messages (message_id),
    action_id     TEXT    NOT NULL,
    actor_uid     TEXT    NOT NULL DEFAULT '',
    actor_device  TEXT    NOT NULL DEFAULT '',
    operation     TEXT    NOT NULL,
    patch         JSONB   NOT NULL DEFAULT '{}',
    base_version  BIGINT  NOT NULL,
    status_before TEXT    NOT NULL DEFAULT '',
    status_after  TEXT    NOT NULL DEFAULT '',
    version_after BIGINT  NOT NULL,
    result        TEXT    NOT NULL
        CHECK (result IN ('applied', 'conflict', 'forbidden', 'invalid', 'stale')),
    detail        TEXT    NOT NULL DEFAULT '',
    created_at    BIGINT  NOT NULL,             -- unix milliseconds
    UNIQUE (message_id, action_id)              -- idempotency by action id
);

CREATE INDEX message_ext_ops_by_message ON message_ext_ops (message_id, op_id);

-- A user token presented without a uid (/message/extra/sync) is found by its digest.
CREATE INDEX tokens_by_hash ON tokens (token_hash);
