-- 0009: replies (magpie.domain.replies). Every channel-log message whose payload quotes another
-- (reply.message_id, a decimal string or a number) is indexed here by the trigger below, in
-- the insert's transaction, for the thread view (/message/replies). The send flow checked the
-- reply (same channel) before storing the message.
CREATE TABLE message_replies (
    message_id   INTEGER PRIMARY KEY REFERENCES messages (message_id),
    reply_to     INTEGER NOT NULL,
    channel_id   TEXT    NOT NULL,
    channel_type INTEGER NOT NULL,
    message_seq  INTEGER NOT NULL
);

CREATE INDEX message_replies_thread ON message_replies (reply_to, message_seq);

CREATE TRIGGER messages_index_replies AFTER INSERT ON messages
WHEN NEW.message_seq > 0 AND instr(NEW.payload, '"reply"') > 0
    AND json_valid(CAST(NEW.payload AS TEXT))
    AND json_type(CAST(NEW.payload AS TEXT), '$.reply.message_id') IN ('text', 'integer')
BEGIN
    INSERT OR IGNORE INTO message_replies (message_id, reply_to, channel_id, channel_type,
        message_seq)
    VALUES (NEW.message_id,
        CAST(json_extract(CAST(NEW.payload AS TEXT), '$.reply.message_id') AS INTEGER),
        NEW.channel_id, NEW.channel_type, NEW.message_seq);
END;
