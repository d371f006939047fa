// Package connectortest is the conformance suite every SQL connector runs
// from its own tests, in the manner of litestream's RunWithReplicaClient:
// the same seeded tables, the same calls and the same expected JSON,
// whatever the database.
//
// RunSQL checks result shape and key order, type mapping, NULLs, max_rows
// truncation, bound arguments against SQL injection, read-only refusal,
// error codes and cancellation. It is test code: production code must never
// import it.
package connectortest
