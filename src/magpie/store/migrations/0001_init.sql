-- 0001: the initial schema (SQLite). The PostgreSQL backend keeps its own file with the same
-- number and the same tables, columns and constraints; only types differ (BLOB -> BYTEA, ...).
--
-- Conventions: every column is NOT NULL with a neutral default; booleans are 0/1 integers;
-- seqs and versions start at 1 (0 means "none"). schema_migrations itself is created by the
-- migration runner, not here.

-- The store's incarnation id (I7). One row, written once when the store is created.
CREATE TABLE meta (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch TEXT    NOT NULL
);

-- A user's token per device flag; only a hash of the token is stored.
CREATE TABLE tokens (
    uid          TEXT    NOT NULL,
    device_flag  INTEGER NOT NULL,
    token_hash   BLOB    NOT NULL,
    device_level INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (uid, device_flag)
);

CREATE TABLE channels (
    channel_id   TEXT    NOT NULL,
    channel_type INTEGER NOT NULL,
    large        INTEGER NOT NULL DEFAULT 0,
    ban          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel_id, channel_type)
);

-- Deleting a channel deletes its subscribers (not its messages).
CREATE TABLE subscribers (
    channel_id   TEXT    NOT NULL,
    channel_type INTEGER NOT NULL,
    uid          TEXT    NOT NULL,
    PRIMARY KEY (channel_id, channel_type, uid),
    FOREIGN KEY (channel_id, channel_type)
        REFERENCES channels (channel_id, channel_type) ON DELETE CASCADE
);

CREATE INDEX subscribers_by_uid ON subscribers (uid);

-- The per-channel message_seq counter, bumped in the message insert's transaction (I3).
-- Independent of `channels`: person channels have a log without a channel row.
CREATE TABLE channel_seq (
    channel_id   TEXT    NOT NULL,
    channel_type INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL,
    PRIMARY KEY (channel_id, channel_type)
);

-- Channel-log messages have message_seq >= 1; sync-once commands (user queues) have 0.
CREATE TABLE messages (
    message_id    INTEGER PRIMARY KEY,
    message_seq   INTEGER NOT NULL DEFAULT 0,
    client_msg_no TEXT    NOT NULL,
    from_uid      TEXT    NOT NULL,
    channel_id    TEXT    NOT NULL,
    channel_type  INTEGER NOT NULL,
    timestamp     INTEGER NOT NULL,
    payload       BLOB    NOT NULL,
    flags         INTEGER NOT NULL DEFAULT 0,
    setting       INTEGER NOT NULL DEFAULT 0,
    topic         TEXT    NOT NULL DEFAULT '',
    expire        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (from_uid, client_msg_no)                      -- I2: idempotent send
);

-- I3 as a constraint, and the index for range reads of a channel log. Queries must repeat
-- "message_seq > 0" literally for the planner to use a partial index.
CREATE UNIQUE INDEX messages_channel_seq
    ON messages (channel_id, channel_type, message_seq) WHERE message_seq > 0;

-- One row per (user, channel) in the user's conversation list.
CREATE TABLE conversations (
    uid                TEXT    NOT NULL,
    channel_id         TEXT    NOT NULL,
    channel_type       INTEGER NOT NULL,
    unread             INTEGER NOT NULL DEFAULT 0,
    last_msg_seq       INTEGER NOT NULL DEFAULT 0,
    last_client_msg_no TEXT    NOT NULL DEFAULT '',
    readed_to_msg_seq  INTEGER NOT NULL DEFAULT 0,
    timestamp          INTEGER NOT NULL DEFAULT 0,
    version            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (uid, channel_id, channel_type)
);

-- The per-user counter that gives conversations.version: bumped once per transaction that
-- changes any of the user's conversations, so versions never repeat or go backwards, even
-- after a conversation is deleted.
CREATE TABLE conversation_clock (
    uid          TEXT    NOT NULL PRIMARY KEY,
    last_version INTEGER NOT NULL
);

-- Per-user offline queues of sync-once commands (message_seq 0 rows of `messages`).
CREATE TABLE user_queue (
    uid        TEXT    NOT NULL,
    queue_seq  INTEGER NOT NULL,
    message_id INTEGER NOT NULL REFERENCES messages (message_id),
    PRIMARY KEY (uid, queue_seq)
);

CREATE INDEX user_queue_by_message ON user_queue (uid, message_id);

-- last_seq: the user's last queued seq; ack_seq: the last acknowledged one (<= last_seq).
CREATE TABLE queue_counter (
    uid      TEXT    NOT NULL PRIMARY KEY,
    last_seq INTEGER NOT NULL DEFAULT 0,
    ack_seq  INTEGER NOT NULL DEFAULT 0
);
