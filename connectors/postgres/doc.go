// Package postgres is the connector that runs a tool's parameterized SQL
// against a PostgreSQL target (pgx/v5, pgxpool).
//
// Each Execute runs in its own transaction, pipelined in one round trip:
// BEGIN READ ONLY for a read-only target, SET LOCAL statement_timeout when
// one is configured, the statement, COMMIT. Rows are
// written as JSON in SELECT column order ({"rows": [...], "row_count": n,
// "truncated": b}); at most max_rows+1 rows are read, the extra one only to
// report truncation. When the operation carries context (graph, node, run)
// or ctx carries a trace context (the broker's connector span), an
// SQLCommenter comment is appended to the statement so the target's own
// logs and pg_stat_activity name the caller and the trace (traceparent,
// tracestate).
//
// Effect previews (Preview, PreviewConn) run a held write inside a
// transaction that is always rolled back, never committed: BEGIN, SET
// LOCAL statement_timeout and lock_timeout, the statement with RETURNING *
// added by the PostgreSQL parser (pg_query), ROLLBACK. They return the
// affected rows (after-image for INSERT and UPDATE, before-image for
// DELETE) up to a cap, and the count. A declared preview query (a SELECT)
// runs READ ONLY instead. Statements whose effect a rollback does not undo
// (nextval, setval, dblink, session advisory locks, ...) or that change
// data inside a WITH clause are not run at all. A caller that goes away
// mid-preview gets a cancel request sent to the server session, and the
// rollback finishes before Preview returns, so no row lock outlives it.
// ExecuteExpecting runs an approved write in a transaction whose COMMIT is
// sent only when the row count matches the preview; otherwise it rolls
// back and answers approval_stale.
//
// Statements use the extended protocol with bound arguments and are never
// built by splicing values into text. The connector must never return or log
// the DSN, the password or other credentials: a target that cannot be
// reached is reported as "target <name> is unavailable", and database errors
// carry only the server's message. The pool connects lazily, so New succeeds
// while the target is down and calls then fail with target_unavailable.
package postgres
