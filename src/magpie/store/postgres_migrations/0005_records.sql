-- 0005: per-user records of a message (a card's ballots and answers) and business-defined
-- card types. The same tables as the SQLite migration of the same number; JSON is jsonb,
-- and keys use the "C" collation, so they order bytewise as on SQLite (a prefix is a range).

CREATE TABLE message_ext_records (
    message_id BIGINT  NOT NULL REFERENCES messages (message_id),
    key        TEXT    COLLATE "C" NOT NULL,
    value      JSONB   NOT NULL,
    version    BIGINT  NOT NULL,
    PRIMARY KEY (message_id, key)
);

CREATE TABLE card_types (
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    spec       JSONB   NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (name, version)
);
