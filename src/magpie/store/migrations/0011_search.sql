-- 0011: search (docs/conversation.md, item 8). The text of every channel-log message that is not
-- a command (its "content" when a string, and a file's "name") is indexed in FTS5 by triggers
-- in the insert's transaction; an edit replaces the text, a revoke removes it. The rowid is
-- the message id.
CREATE VIRTUAL TABLE message_search USING fts5(
    text, tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_index_text AFTER INSERT ON messages
WHEN NEW.message_seq > 0 AND json_valid(CAST(NEW.payload AS TEXT))
    AND json_type(CAST(NEW.payload AS TEXT)) = 'object'
    AND json_extract(CAST(NEW.payload AS TEXT), '$.type') IS NOT 99
BEGIN
    INSERT INTO message_search (rowid, text)
    SELECT NEW.message_id, t FROM (
        SELECT trim(
            CASE WHEN json_type(CAST(NEW.payload AS TEXT), '$.content') = 'text'
                THEN json_extract(CAST(NEW.payload AS TEXT), '$.content') ELSE '' END
            || ' ' ||
            CASE WHEN json_type(CAST(NEW.payload AS TEXT), '$.name') = 'text'
                THEN json_extract(CAST(NEW.payload AS TEXT), '$.name') ELSE '' END
        ) AS t
    ) WHERE t <> '';
END;

-- An extension row written: a revoked message leaves the index, an edited one is re-indexed.
CREATE TRIGGER message_ext_index_insert AFTER INSERT ON message_ext
WHEN NEW.revoke <> 0 OR NEW.content_edit <> ''
BEGIN
    DELETE FROM message_search WHERE rowid = NEW.message_id;
    INSERT INTO message_search (rowid, text)
    SELECT NEW.message_id, t FROM (
        SELECT trim(
            CASE WHEN json_type(NEW.content_edit, '$.content') = 'text'
                THEN json_extract(NEW.content_edit, '$.content') ELSE '' END
            || ' ' ||
            CASE WHEN json_type(NEW.content_edit, '$.name') = 'text'
                THEN json_extract(NEW.content_edit, '$.name') ELSE '' END
        ) AS t
    ) WHERE NEW.revoke = 0 AND json_valid(NEW.content_edit) AND t <> '';
END;

CREATE TRIGGER message_ext_index_update AFTER UPDATE OF revoke, content_edit ON message_ext
WHEN NEW.revoke <> OLD.revoke OR NEW.content_edit <> OLD.content_edit
BEGIN
    DELETE FROM message_search WHERE rowid = NEW.message_id;
    INSERT INTO message_search (rowid, text)
    SELECT NEW.message_id, t FROM (
        SELECT trim(
            CASE WHEN json_type(NEW.content_edit, '$.content') = 'text'
                THEN json_extract(NEW.content_edit, '$.content') ELSE '' END
            || ' ' ||
            CASE WHEN json_type(NEW.content_edit, '$.name') = 'text'
                THEN json_extract(NEW.content_edit, '$.name') ELSE '' END
        ) AS t
    ) WHERE NEW.revoke = 0 AND json_valid(NEW.content_edit) AND t <> '';
END;

-- Messages stored before this migration.
INSERT INTO message_search (rowid, text)
SELECT message_id, t FROM (
    SELECT message_id, trim(
        CASE WHEN json_type(CAST(payload AS TEXT), '$.content') = 'text'
            THEN json_extract(CAST(payload AS TEXT), '$.content') ELSE '' END
        || ' ' ||
        CASE WHEN json_type(CAST(payload AS TEXT), '$.name') = 'text'
            THEN json_extract(CAST(payload AS TEXT), '$.name') ELSE '' END
    ) AS t
    FROM messages
    WHERE message_seq > 0 AND json_valid(CAST(payload AS TEXT))
        AND json_type(CAST(payload AS TEXT)) = 'object'
        AND json_extract(CAST(payload AS TEXT), '$.type') IS NOT 99
        AND message_id NOT IN (SELECT message_id FROM message_ext WHERE revoke <> 0)
) WHERE t <> '';
