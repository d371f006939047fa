-- 0001: audit recordings (package recordings). One row per event, one hash
-- chain per broker instance. Filter columns copy fields of the canonical
-- event JSON in the event column; new event fields go in the JSON, new
-- filter columns get a new migration. Text columns use the "C" collation:
-- ids and names need byte order, not linguistic order, and C compares
-- fastest when indexes are maintained at audit write rates.
CREATE TABLE audit_events (
    chain     TEXT COLLATE "C" NOT NULL,            -- instance id; one chain per instance
    seq       BIGINT  NOT NULL,            -- 1, 2, 3, ... per chain
    id        TEXT COLLATE "C" NOT NULL,
    time_ns   BIGINT  NOT NULL,            -- event time, Unix nanoseconds UTC
    kind      TEXT COLLATE "C" NOT NULL,
    principal TEXT COLLATE "C" NOT NULL DEFAULT '',
    graph     TEXT COLLATE "C" NOT NULL DEFAULT '',
    node      TEXT COLLATE "C" NOT NULL DEFAULT '',
    run       TEXT COLLATE "C" NOT NULL DEFAULT '',
    thread    TEXT COLLATE "C" NOT NULL DEFAULT '',
    tool      TEXT COLLATE "C" NOT NULL DEFAULT '',
    status    TEXT COLLATE "C" NOT NULL DEFAULT '',
    event     TEXT    NOT NULL,            -- canonical JSON, the hashed bytes (TEXT, not JSONB: bytes must not change)
    prev_hash TEXT    NOT NULL,            -- hex SHA-256 of the previous record, or of the checkpoint
    hash      TEXT    NOT NULL,            -- hex SHA-256(prev_hash || chain || event)
    PRIMARY KEY (chain, seq)
);
-- Indexes cost every audit write a B-tree insert, so there are only the
-- ones export, trace and verify need. Ids are time-ordered (a time prefix,
-- then random bytes: see broker.NewID), so the unique id index grows at
-- its right edge like the time index instead of splitting random pages.
-- Filters on tool, principal, kind or status scan the time range.
CREATE UNIQUE INDEX audit_events_id ON audit_events (id);
CREATE INDEX audit_events_time ON audit_events (time_ns);
CREATE INDEX audit_events_run ON audit_events (run, time_ns);
CREATE INDEX audit_events_graph_node ON audit_events (graph, node, time_ns);

-- One checkpoint per chain, written by retention: the seq and hash of the
-- last purged record, so verification starts there.
CREATE TABLE audit_checkpoints (
    chain      TEXT COLLATE "C" PRIMARY KEY,
    seq        BIGINT  NOT NULL,
    hash       TEXT    NOT NULL,
    before_ns  BIGINT  NOT NULL,           -- the purge boundary
    created_ns BIGINT  NOT NULL,
    mac        TEXT    NOT NULL DEFAULT '' -- hex HMAC-SHA256 over chain, seq, hash, before_ns; empty when unsigned
);
