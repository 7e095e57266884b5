-- 0009: replies (magpie.domain.replies). Every channel-log message whose payload quotes another
-- (reply.message_id, a decimal string or a number) is indexed here by the trigger below, in
-- the insert's transaction, for the thread view (/message/replies). The send flow checked the
-- reply (same channel) before storing the message.
CREATE TABLE message_replies (
    message_id   BIGINT  PRIMARY KEY REFERENCES messages (message_id),
    reply_to     BIGINT  NOT NULL,
    channel_id   TEXT    NOT NULL,
    channel_type INTEGER NOT NULL,
    message_seq  BIGINT  NOT NULL
);

CREATE INDEX message_replies_thread ON message_replies (reply_to, message_seq);

CREATE FUNCTION magpie_index_reply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    doc jsonb;
    target text;
BEGIN
    BEGIN
        doc := convert_from(NEW.payload, 'UTF8')::jsonb;
    EXCEPTION WHEN others THEN
        RETURN NEW;  -- not JSON: nothing to index
    END;
    IF jsonb_typeof(doc) = 'object' THEN
        target := doc #>> '{reply,message_id}';
        -- at most 19 digits, and within bigint (9223372036854775807)
        IF target ~ '^[0-9]{1,19}$' AND target::numeric <= 9223372036854775807 THEN
            INSERT INTO message_replies (message_id, reply_to, channel_id, channel_type,
                message_seq)
            VALUES (NEW.message_id, target::bigint, NEW.channel_id, NEW.channel_type,
                NEW.message_seq)
            ON CONFLICT (message_id) DO NOTHING;
        END IF;
    END IF;
    RETURN NEW;
END $$;

-- '"reply"' in the payload's bytes: the JSON is parsed only for messages that may quote.
CREATE TRIGGER messages_index_replies AFTER INSERT ON messages
FOR EACH ROW
WHEN (NEW.message_seq > 0 AND position('\x227265706c7922'::bytea IN NEW.payload) > 0)
EXECUTE FUNCTION magpie_index_reply();
