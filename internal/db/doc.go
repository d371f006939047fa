// Package db opens toolgate's own store (SQLite by default, PostgreSQL when
// several broker instances share state) and applies the embedded schema
// migrations before anything uses it.
//
// Every package that keeps durable state (recordings, budgets, grants,
// approvals) receives a *DB from cmd/toolgate and writes portable SQL through
// it, using Rebind for placeholders. Migrations live in
// migrations/{sqlite,postgres}/NNNN_name.sql; numbers are reserved per
// feature: 0001 recordings, 0002 budgets and counters, 0003 grants,
// 0004 approvals.
//
// OpenReadOnly opens an existing, migrated store for verbs that must never
// change it (policy backtest): SQLite connections are query_only and
// PostgreSQL transactions read-only, and it creates and migrates nothing.
//
// SQLite runs in WAL mode with synchronous=NORMAL: a committed transaction
// survives the death of the process (kill -9), because the WAL is written
// before the commit returns and is replayed on the next open; only an
// operating-system crash or power loss can lose the last transactions
// (FULL fsyncs every commit; on the 2-core development machine it halved
// group-committed audit writes, 6,900 against 12,800 records/s in the same
// minute). Where power-loss durability matters, use the PostgreSQL store,
// which fsyncs each commit.
//
// Package db must never log or return a DSN (it holds a password), must
// never start when a migration fails, and must never run a migration
// twice, even when two instances start together against one PostgreSQL
// database (migrations run under pg_advisory_lock).
package db
