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
// The proxy decides nothing itself: policy, approvals and recording live
// behind the Pipeline interface, implemented by *broker.Broker. It must
// never forward a statement the pipeline did not allow, never show the
// client the target's credentials, and never log a password or a token.
package pgwire
