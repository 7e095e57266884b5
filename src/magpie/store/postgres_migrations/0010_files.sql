-- 0010: uploaded files (magpie.files): one row per upload, naming the content-addressed bytes
-- (sha256) and the channel whose members may download them.
CREATE TABLE files (
    file_id      TEXT    PRIMARY KEY,
    sha256       TEXT    NOT NULL,
    size         BIGINT  NOT NULL,
    content_type TEXT    NOT NULL,
    name         TEXT    NOT NULL DEFAULT '',
    width        INTEGER NOT NULL DEFAULT 0,
    height       INTEGER NOT NULL DEFAULT 0,
    channel_id   TEXT    NOT NULL,
    channel_type INTEGER NOT NULL,
    uploader     TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL                -- unix milliseconds
);
