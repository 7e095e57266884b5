-- 0001: the initial schema (PostgreSQL). Same tables, columns and constraints as the SQLite
-- migration of the same number; only types differ: BIGINT for ids, seqs and times, BOOLEAN
-- for flags, BYTEA for payloads and digests.
--
-- Conventions: every column is NOT NULL with a neutral default; seqs and versions start at 1
-- (0 means "none"). schema_migrations itself is created by the migration runner, not here.

-- The store's incarnation id (I7). One row, written once when the store is created.
CREATE TABLE meta (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch TEXT    NOT NULL
);

-- A user's token per device flag; only a hash of the token is stored.
CREATE TABLE tokens (
    uid          TEXT    NOT NULL,
    device_flag  INTEGER NOT NULL,
    token_hash   BYTEA   NOT NULL,
    device_level INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (uid, device_flag)
);

CREATE TABLE channels (
    channel_id   TEXT    NOT NULL,
    channel_type INTEGER NOT NULL,
    large        BOOLEAN NOT NULL DEFAULT FALSE,
    ban          BOOLEAN NOT NULL DEFAULT FALSE,
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

-- The per-channel message_seq counter, bumped in the message insert's transaction (I3): the
-- row lock of the UPDATE serialises the inserts of one channel across every node, so the
-- committed seqs are gap-free. Independent of `channels`: person channels have no channel row.
CREATE TABLE channel_seq (
    channel_id   TEXT    NOT NULL,
    channel_type INTEGER NOT NULL,
    last_seq     BIGINT  NOT NULL,
    PRIMARY KEY (channel_id, channel_type)
);

-- Channel-log messages have message_seq >= 1; sync-once commands (user queues) have 0.
CREATE TABLE messages (
    message_id    BIGINT  PRIMARY KEY,
    message_seq   BIGINT  NOT NULL DEFAULT 0,
    client_msg_no TEXT    NOT NULL,
    from_uid      TEXT    NOT NULL,
    channel_id    TEXT    NOT NULL,
    channel_type  INTEGER NOT NULL,
    timestamp     BIGINT  NOT NULL,
    payload       BYTEA   NOT NULL,
    flags         INTEGER NOT NULL DEFAULT 0,
    setting       INTEGER NOT NULL DEFAULT 0,
    topic         TEXT    NOT NULL DEFAULT '',
    expire        BIGINT  NOT NULL DEFAULT 0,
    CONSTRAINT messages_dedupe UNIQUE (from_uid, client_msg_no)   -- I2: idempotent send
);

-- I3 as a constraint, and the index for range reads of a channel log. Queries repeat
-- "message_seq > 0" literally so the planner uses the partial index.
CREATE UNIQUE INDEX messages_channel_seq
    ON messages (channel_id, channel_type, message_seq) WHERE message_seq > 0;

-- One row per (user, channel) in the user's conversation list.
CREATE TABLE conversations (
    uid                TEXT    NOT NULL,
    channel_id         TEXT    NOT NULL,
    channel_type       INTEGER NOT NULL,
    unread             BIGINT  NOT NULL DEFAULT 0,
    last_msg_seq       BIGINT  NOT NULL DEFAULT 0,
    last_client_msg_no TEXT    NOT NULL DEFAULT '',
    readed_to_msg_seq  BIGINT  NOT NULL DEFAULT 0,
    timestamp          BIGINT  NOT NULL DEFAULT 0,
    version            BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (uid, channel_id, channel_type)
);

-- The per-user counter that gives conversations.version: bumped once per transaction that
-- changes any of the user's conversations, so versions never repeat or go backwards, even
-- after a conversation is deleted. Its row lock orders a user's conversation changes in
-- commit order across nodes.
CREATE TABLE conversation_clock (
    uid          TEXT   NOT NULL PRIMARY KEY,
    last_version BIGINT NOT NULL
);

-- Per-user offline queues of sync-once commands (message_seq 0 rows of `messages`).
CREATE TABLE user_queue (
    uid        TEXT   NOT NULL,
    queue_seq  BIGINT NOT NULL,
    message_id BIGINT NOT NULL REFERENCES messages (message_id),
    PRIMARY KEY (uid, queue_seq)
);

CREATE INDEX user_queue_by_message ON user_queue (uid, message_id);

-- last_seq: the user's last queued seq; ack_seq: the last acknowledged one (<= last_seq).
CREATE TABLE queue_counter (
    uid      TEXT   NOT NULL PRIMARY KEY,
    last_seq BIGINT NOT NULL DEFAULT 0,
    ack_seq  BIGINT NOT NULL DEFAULT 0
);
