// Package pgroles is lock 2 of the Postgres passthrough (DESIGN §9): the
// database itself refuses what a grant does not allow. Modelled on
// Teleport's database auto-user provisioning, it keeps one LOGIN role per
// grant node (or, for an API-key session named graph/node, per node
// identity) and target, with exactly the grant's privileges: SELECT on the
// granted tables for read, INSERT/UPDATE/DELETE (and USAGE on their serial
// sequences) for write, column by column where a column is masked with
// action deny; default_transaction_read_only for read-only grants, the
// target's statement_timeout, a CONNECTION LIMIT, VALID UNTIL the grant's
// expiry; a member of no role. connectors/pgwire logs its sessions in as
// that role (UpstreamLogin), so a statement toolgate's own reading got
// wrong still cannot write, read another table, or run anything on the
// database host.
//
// Roles are named RolePrefix plus a hash of database, target and identity
// and carry a COMMENT marker naming them; both are checked before a role is
// changed or dropped, so no other role is ever touched. Their passwords
// are HMAC-SHA256 of the role name under a key every instance shares, so
// instances never race each other, and reach the server only as SCRAM
// verifiers. Every change to a role runs in one transaction under an
// advisory lock keyed by its name. Sweep disables (NOLOGIN, privileges
// revoked, backends terminated) and drops the roles of revoked or expired
// grants and of idle node identities, which also cleans up after a crash.
//
// It must never grant more than the grant allows, never touch a role
// without its marker, never let a session run as a superuser or a member of
// the server-file, server-program or all-data roles unless the operator
// opted out, and never log or return a role's password.
package pgroles
