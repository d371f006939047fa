// Package testenv starts the real components that toolgate's tests run
// against, beginning with a throwaway PostgreSQL server.
//
// Postgres runs initdb into a temporary folder and starts one server per test
// binary, listening on 127.0.0.1 on a free port and on a unix socket inside
// that folder, with fsync off. Tests take a fresh database each with
// PG.CreateDB. The superuser ("postgres") is trusted on loopback; every
// other role, PasswordUser and those tests create, authenticates with SCRAM
// over TCP, so tests exercise real credentials (PG.PasswordDSN).
//
// Packages that use Postgres call Main from their TestMain, so the server
// stops when the test binary ends. The server must never outlive the test
// process: it is started with a parent-death signal on Linux and killed on
// SIGINT/SIGTERM. When the binaries are missing, Postgres skips the test,
// unless TOOLGATE_REQUIRE_POSTGRES=1 (CI), in which case it fails it.
//
// testenv is for tests only. It must never be imported by production code,
// and it keeps the one piece of package-level state the rest of toolgate
// forbids: the shared server of the test binary, which exists precisely to
// be shared across the tests of one process.
package testenv
