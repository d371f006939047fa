// Package postgres is the connector that runs a tool's parameterized SQL
// against a PostgreSQL target (pgx/v5, pgxpool).
//
// Each Execute runs in its own transaction, pipelined in one round trip:
// BEGIN READ ONLY for a read-only target, SET LOCAL statement_timeout when
// one is configured, the statement, COMMIT. Rows are
// written as JSON in SELECT column order ({"rows": [...], "row_count": n,
// "truncated": b}); at most max_rows+1 rows are read, the extra one only to
// report truncation. When the operation carries context (graph, node, run),
// an SQLCommenter comment is appended to the statement so the target's own
// logs and pg_stat_activity name the caller.
//
// Statements use the extended protocol with bound arguments and are never
// built by splicing values into text. The connector must never return or log
// the DSN, the password or other credentials: a target that cannot be
// reached is reported as "target <name> is unavailable", and database errors
// carry only the server's message. The pool connects lazily, so New succeeds
// while the target is down and calls then fail with target_unavailable.
package postgres
