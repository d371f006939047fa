// Package pgwire is toolgate's PostgreSQL wire-protocol passthrough proxy
// (DESIGN §9). psql, psycopg and pgx connect to it as if it were the
// database; it authenticates them with a grant token or an API key,
// connects to the real server as the login Config.Login names for the
// session (lock 2: a per-grant role, connectors/pgroles; never shown to
// the client), and hands every statement, classified with the real
// PostgreSQL parser (pganalyze/pg_query_go), to the broker's pipeline
// before the server sees it (lock 1). DataRows are masked by column on
// the way back.
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
package pgwire
