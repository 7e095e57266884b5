-- 0008: reminders (magpie.domain.reminders): "@you" rows of a user about a message, created in
-- the message's transaction. version comes from the user's conversation_clock (bumped by that
-- transaction, and again when the reminder is done), so a user's versions only grow.
CREATE TABLE reminders (
    reminder_id   INTEGER PRIMARY KEY,
    uid           TEXT    NOT NULL,
    channel_id    TEXT    NOT NULL,
    channel_type  INTEGER NOT NULL,
    message_id    INTEGER NOT NULL REFERENCES messages (message_id),
    message_seq   INTEGER NOT NULL,
    reminder_type INTEGER NOT NULL,
    publisher     TEXT    NOT NULL DEFAULT '',
    text          TEXT    NOT NULL DEFAULT '',
    version       INTEGER NOT NULL,
    done          INTEGER NOT NULL DEFAULT 0,
    UNIQUE (uid, message_id, reminder_type)
);

-- A sync reads only the user's rows changed after its cursor.
CREATE UNIQUE INDEX reminders_sync ON reminders (uid, version);
