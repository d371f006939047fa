-- 0002_budgets: policy budget counters (package policy/counters), shared by
-- every broker instance on the store. The policy engine names each counter
-- with a key that already holds the run or the time window it counts.
-- Times are Unix nanoseconds (UTC).
CREATE TABLE budget_counters (
    key        TEXT    PRIMARY KEY,
    n          INTEGER NOT NULL,
    expires_ns INTEGER NOT NULL DEFAULT 0, -- windowed counters: when they may be forgotten; 0 for run counters
    updated_ns INTEGER NOT NULL
);
CREATE INDEX budget_counters_expires ON budget_counters (expires_ns);
CREATE INDEX budget_counters_updated ON budget_counters (updated_ns);
