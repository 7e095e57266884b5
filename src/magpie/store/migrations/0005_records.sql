-- 0005: per-user records of a message (a card's ballots and answers) and business-defined
-- card types. Same conventions as 0001/0002.

-- A record: one keyed row of a message's state beside its extension (docs/cards.md, "cards
-- at the size of real groups"). Written only in an extension change's transaction; version
-- is the extension version of that change. Keys are compared bytewise (BINARY), so a prefix
-- is a range of the primary key.
CREATE TABLE message_ext_records (
    message_id INTEGER NOT NULL REFERENCES messages (message_id),
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,                -- compact JSON object
    version    INTEGER NOT NULL,
    PRIMARY KEY (message_id, key)
) WITHOUT ROWID;

-- Card types registered by business servers: name@version, immutable once stored.
CREATE TABLE card_types (
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    spec       TEXT    NOT NULL,                -- compact JSON: the normalised registration
    created_at INTEGER NOT NULL,                -- unix milliseconds
    PRIMARY KEY (name, version)
);
