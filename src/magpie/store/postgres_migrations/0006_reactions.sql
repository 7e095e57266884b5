-- 0006: reactions (magpie.domain.reactions): one row per (message, uid, emoji), its current
-- state (deleted = a tombstone after a remove), and the channel's reaction seq of its last
-- change, from reaction_clock (bumped in the change's transaction).
CREATE TABLE message_reactions (
    message_id   BIGINT  NOT NULL REFERENCES messages (message_id),
    uid          TEXT    NOT NULL,
    emoji        TEXT    NOT NULL,
    channel_id   TEXT    NOT NULL,
    channel_type INTEGER NOT NULL,
    seq          BIGINT  NOT NULL,
    deleted      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT  NOT NULL,                  -- unix seconds of the last change
    PRIMARY KEY (message_id, uid, emoji)
);

-- A sync reads only the rows changed after its cursor.
CREATE UNIQUE INDEX message_reactions_sync ON message_reactions (channel_id, channel_type, seq);

CREATE TABLE reaction_clock (
    channel_id   TEXT    NOT NULL,
    channel_type INTEGER NOT NULL,
    last_seq     BIGINT  NOT NULL,
    PRIMARY KEY (channel_id, channel_type)
);
