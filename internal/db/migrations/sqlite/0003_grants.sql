-- 0003_grants: just-in-time grants (DESIGN §5) and their per-node tokens.
-- Times are Unix milliseconds (UTC) so SQLite and Postgres share one code
-- path. Tokens are stored only as the hex SHA-256 of the token.
CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    graph       TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    thread_id   TEXT NOT NULL DEFAULT '',
    nodes       TEXT NOT NULL,   -- JSON array of node paths
    scope       TEXT NOT NULL,   -- JSON object, validated against scope_schema
    created_by  TEXT NOT NULL,   -- principal subject that minted the grant
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX grants_graph_run ON grants (graph, run_id);
CREATE INDEX grants_expires_at ON grants (expires_at);

CREATE TABLE grant_tokens (
    token_sha256 TEXT PRIMARY KEY,
    grant_id     TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    node         TEXT NOT NULL,
    UNIQUE (grant_id, node)
);
