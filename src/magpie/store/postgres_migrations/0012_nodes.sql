-- 0012: node id leases (docs/deployment.md, "Node ids"); the same table as the SQLite
-- migration of the same number. Expiry times are the database server's clock (every node
-- compares against the same clock, whatever the skew between their own).
CREATE TABLE nodes (
    node_id       INTEGER PRIMARY KEY CHECK (node_id BETWEEN 0 AND 1023),
    instance      TEXT    NOT NULL,
    expires_at_ms BIGINT  NOT NULL,
    started_at_ms BIGINT  NOT NULL DEFAULT 0,
    ws_url        TEXT    NOT NULL DEFAULT '',
    tcp_addr      TEXT    NOT NULL DEFAULT ''
);
