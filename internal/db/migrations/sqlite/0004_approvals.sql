-- 0004_approvals: durable approval requests and their votes (DESIGN §6).
-- Times are Unix microseconds. Every status change is a conditional UPDATE
-- on (id, status), so a replayed click or a second instance changes nothing twice.
CREATE TABLE approvals (
    id             TEXT PRIMARY KEY,
    status         TEXT NOT NULL,
    principal      TEXT NOT NULL,
    requesters     TEXT NOT NULL,            -- JSON array of names that may never approve
    graph          TEXT NOT NULL DEFAULT '',
    node           TEXT NOT NULL DEFAULT '',
    run_id         TEXT NOT NULL DEFAULT '',
    thread         TEXT NOT NULL DEFAULT '',
    tool           TEXT NOT NULL,
    target         TEXT NOT NULL DEFAULT '',
    args           TEXT NOT NULL,            -- masked canonical arguments, for display
    args_hash      TEXT NOT NULL,
    rule           TEXT NOT NULL DEFAULT '',
    policy_version TEXT NOT NULL DEFAULT '',
    approvers      TEXT NOT NULL,            -- JSON array of principal names
    min_approvals  INTEGER NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    result         TEXT,                     -- masked result of the approved call
    error_code     TEXT NOT NULL DEFAULT '',
    error_message  TEXT NOT NULL DEFAULT '',
    announce_ref   TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    decided_at     INTEGER,
    consumed_at    INTEGER,
    claimed_at     INTEGER                   -- when a call took the approval to run it
);
CREATE INDEX approvals_call ON approvals (graph, node, run_id, tool, args_hash);
CREATE INDEX approvals_status ON approvals (status, expires_at);

CREATE TABLE approval_votes (
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    approver    TEXT NOT NULL,               -- principal subject: one vote per human
    approve     INTEGER NOT NULL,            -- 1 approve, 0 deny
    reason      TEXT NOT NULL DEFAULT '',
    channel     TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (approval_id, approver)
);
