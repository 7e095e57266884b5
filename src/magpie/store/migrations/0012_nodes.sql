-- 0012: node id leases (docs/deployment.md, "Node ids"). One row per node id held by a
-- running node (or by a node that died, until its lease expires). A node claims a row at
-- start, renews it every third of node_lease, and deletes it when it stops; a row whose
-- expires_at_ms has passed is free to claim. The addresses are what /route hands out.
CREATE TABLE nodes (
    node_id       INTEGER PRIMARY KEY,            -- 0..1023, the snowflake's node bits
    instance      TEXT    NOT NULL,               -- host/pid/random of the holding process
    expires_at_ms INTEGER NOT NULL,
    started_at_ms INTEGER NOT NULL DEFAULT 0,
    ws_url        TEXT    NOT NULL DEFAULT '',    -- '' until the node listens
    tcp_addr      TEXT    NOT NULL DEFAULT ''
);
