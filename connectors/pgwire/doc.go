// Package pgwire is toolgate's PostgreSQL wire-protocol passthrough proxy
// (DESIGN §9). psql, psycopg and pgx connect to it as if it were the
// database; it authenticates them with a grant token or an API key,
// connects to the real server as the login Config.Login names for the
// session (lock 2: a per-grant role, connectors/pgroles; never shown to
// the client), and hands every statement, classified with the real
// PostgreSQL parser (pganalyze/pg_query_go), to the broker's pipeline
// before the server sees it (lock 1). DataRows are masked by column on
// the way back. A write held for approval is previewed for its approvers
// (preview.go) on a connection of the session's own login, never the
// admin's, in a transaction that is always rolled back.
//
// Classification (Classify) describes what a statement is: its class
// (read, write, ddl, other; two-phase commit and READ WRITE transaction
// modes are not reads), the relations it names (CTE names hide a table
// only where PostgreSQL sees them), and every function, cast and operator
// it calls that is not on the built-in lists of functions.go (functions
// that read only their arguments, a clock or a random source). A change
// of client encoding or of the session's role is refused here, whatever
// policy says.
//
// The proxy decides nothing itself: policy, approvals and recording live
// behind the Pipeline interface, implemented by *broker.Broker. It must
// never forward a statement the pipeline did not allow, never show the
// client the target's credentials, and never log a password or a token.
//
// Lock 1, the proxy's own reading of the stream, holds only if it reads
// exactly what the server executes:
//
//   - Bytes: the upstream session is pinned to client_encoding UTF8 and
//     standard_conforming_strings on, the settings pg_query lexes with
//     (params.go). A client asking for another encoding is refused; a
//     ParameterStatus showing either changed ends the session. A statement
//     that may change settings (class other, or a function off the list) is a
//     barrier: nothing after it is forwarded before its answers, so the
//     change is seen before the server reads another byte.
//   - Statements: tracker models the extended protocol as the server runs
//     it, fed by both relays. A name's statement is what the server
//     accepted, errors skip to Sync, portals end with their transaction.
//     An Execute is decided with the statement of the portal the server
//     will run; when that depends on a message of an earlier batch still
//     unanswered (a Parse the server may refuse), the client relay waits
//     for its answer before it decides.
//   - Values: the masker reads text. Bind's result formats are rewritten to
//     text; columns the client wanted in binary are converted from the
//     masked text (convert.go), and a type toolgate cannot convert is
//     refused at Bind, naming the column.
//   - Sizes: messages, rows and values over their limits are refused
//     without being read into memory (limits.go).
//
// Cost: a result's columns are analysed once, at its row description
// (results.go): each column's masking is resolved once, and a result no
// cell of which can change (no rule, no detector that could match, no
// format to convert) is relayed as the server sent it, each DataRow
// checked but not decoded. Each statement's decision record is durable
// before its results reach the client; its outcome rides in the session's
// next record (session.go), so a busy session writes one record per
// statement.
package pgwire
