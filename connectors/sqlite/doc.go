// Package sqlite is the connector that runs a tool's parameterized SQL
// against an SQLite database file (modernc.org/sqlite, pure Go).
//
// Results have the same shape as the postgres connector's, {"rows": [...],
// "row_count": n, "truncated": b}, with keys in SELECT column order; column
// declared types (BOOLEAN, NUMERIC, DATE, TIMESTAMP, JSON) decide how stored
// values are written, so the same tool gives the same JSON on both. A
// read-only target is opened with mode=ro and PRAGMA query_only; a writable
// one uses WAL and a busy timeout.
//
// Arguments are always bound, never spliced into the statement. The
// connector must never write through a read-only target, and its errors
// carry SQLite's message, never the file's contents.
package sqlite
