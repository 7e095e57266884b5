-- 0011: search (docs/conversation.md, item 8). The text of every channel-log message that is not
-- a command (its "content" when a string, and a file's "name") is indexed as a 'simple'
-- tsvector (GIN) by triggers in the insert's transaction; an edit replaces the text, a revoke
-- removes it. Words match as prefixes (to_tsquery 'word:*'), as in the SQLite store's FTS5.
CREATE TABLE message_search (
    message_id   BIGINT   PRIMARY KEY REFERENCES messages (message_id),
    channel_id   TEXT     NOT NULL,
    channel_type INTEGER  NOT NULL,
    tsv          tsvector NOT NULL
);

CREATE INDEX message_search_text ON message_search USING gin (tsv);

-- The searchable text of a content: "content" when a string, then "name" when a string.
CREATE FUNCTION magpie_search_text(doc jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT trim(
        CASE WHEN jsonb_typeof(doc -> 'content') = 'string' THEN doc ->> 'content' ELSE '' END
        || ' ' ||
        CASE WHEN jsonb_typeof(doc -> 'name') = 'string' THEN doc ->> 'name' ELSE '' END)
$$;

-- A payload as JSON; NULL when it is not UTF-8 JSON.
CREATE FUNCTION magpie_payload_doc(payload bytea) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN convert_from(payload, 'UTF8')::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

CREATE FUNCTION magpie_index_text() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    doc jsonb;
    words text;
BEGIN
    doc := magpie_payload_doc(NEW.payload);
    IF doc IS NULL OR jsonb_typeof(doc) <> 'object' OR doc ->> 'type' = '99' THEN
        RETURN NEW;
    END IF;
    words := magpie_search_text(doc);
    IF words <> '' THEN
        INSERT INTO message_search (message_id, channel_id, channel_type, tsv)
        VALUES (NEW.message_id, NEW.channel_id, NEW.channel_type,
            to_tsvector('simple', words))
        ON CONFLICT (message_id) DO NOTHING;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER messages_index_text AFTER INSERT ON messages
FOR EACH ROW WHEN (NEW.message_seq > 0)
EXECUTE FUNCTION magpie_index_text();

-- An extension row written: a revoked message leaves the index, an edited one is re-indexed.
CREATE FUNCTION magpie_reindex_text() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    words text;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.revoke = OLD.revoke
        AND NEW.content_edit IS NOT DISTINCT FROM OLD.content_edit THEN
        RETURN NEW;
    END IF;
    IF NOT NEW.revoke AND NEW.content_edit IS NULL THEN
        RETURN NEW;
    END IF;
    DELETE FROM message_search WHERE message_id = NEW.message_id;
    IF NOT NEW.revoke AND jsonb_typeof(NEW.content_edit) = 'object' THEN
        words := magpie_search_text(NEW.content_edit);
        IF words <> '' THEN
            INSERT INTO message_search (message_id, channel_id, channel_type, tsv)
            VALUES (NEW.message_id, NEW.channel_id, NEW.channel_type,
                to_tsvector('simple', words));
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER message_ext_index_text AFTER INSERT OR UPDATE ON message_ext
FOR EACH ROW EXECUTE FUNCTION magpie_reindex_text();

-- Messages stored before this migration.
INSERT INTO message_search (message_id, channel_id, channel_type, tsv)
SELECT message_id, channel_id, channel_type, to_tsvector('simple', words) FROM (
    SELECT message_id, channel_id, channel_type, magpie_search_text(doc) AS words FROM (
        SELECT m.message_id, m.channel_id, m.channel_type, magpie_payload_doc(m.payload) AS doc
        FROM messages AS m
        WHERE m.message_seq > 0
            AND NOT EXISTS (SELECT 1 FROM message_ext AS e WHERE e.message_id = m.message_id
                AND e.revoke)
    ) AS d
    WHERE jsonb_typeof(doc) = 'object' AND doc ->> 'type' IS DISTINCT FROM '99'
) AS t
WHERE words <> '';
