package pgwire_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// seedAttacks adds what the attack tests read and witness with: a view
// notes whose every read logs a row in canary_log (so a query run by
// ts_stat leaves a trace), a table outside the grant, a user function and
// the grants the proxy's login needs.
func seedAttacks(t *testing.T, e *env) {
	t.Helper()
	e.direct1(t, `
		CREATE TABLE canary_log (at timestamptz);
		CREATE FUNCTION canary() RETURNS tsvector LANGUAGE plpgsql SECURITY DEFINER
			AS $$BEGIN INSERT INTO canary_log VALUES (now()); RETURN to_tsvector('simple', 'secret words'); END$$;
		CREATE VIEW notes AS SELECT canary() AS body;
		CREATE TABLE secrets (v text);
		INSERT INTO secrets VALUES ('s3cr3t');
		CREATE FUNCTION slugify(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT lower(replace($1, ' ', '-'))$$;
		GRANT SELECT ON notes, secrets TO toolgate_app;`)
}

// superuser runs f on a connection to the target as the superuser, for
// setup and checks, and closes it.
func (e *env) superuser(t *testing.T, f func(c *pgx.Conn) error) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), e.direct)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := f(c); err != nil {
		t.Fatal(err)
	}
}

// direct1 runs SQL on the target as the superuser, failing the test on
// error.
func (e *env) direct1(t *testing.T, sql string) {
	t.Helper()
	e.superuser(t, func(c *pgx.Conn) error {
		_, err := c.Exec(context.Background(), sql)
		return err
	})
}

// scalar runs a one-value query on the target as the superuser.
func (e *env) scalar(t *testing.T, sql string) string {
	t.Helper()
	var v any
	e.superuser(t, func(c *pgx.Conn) error { return c.QueryRow(context.Background(), sql).Scan(&v) })
	return fmt.Sprint(v)
}

// serverSaw reports whether any backend's current or last statement
// holds marker: a statement toolgate refused never reaches the server
// (toolgate raises the refusal itself, in a DO block that does not
// contain the statement).
func (e *env) serverSaw(t *testing.T, marker string) bool {
	t.Helper()
	return e.scalar(t, "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%"+marker+"%'") != "0"
}

// refused runs sql (simple protocol) and fails unless toolgate refused it
// with 42501 naming want, and the server never saw it.
func refused(t *testing.T, e *env, c *pgx.Conn, sql, want string) {
	t.Helper()
	sum := sha256.Sum256([]byte(sql))
	marker := fmt.Sprintf("probe_%x", sum[:8])
	_, err := c.Exec(context.Background(), sql+" /* "+marker+" */", pgx.QueryExecModeSimpleProtocol)
	if sqlstate(err) != "42501" || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: %v, want 42501 naming %q", sql, err, want)
	}
	if e.serverSaw(t, marker) {
		t.Fatalf("%s reached the server", sql)
	}
}

// TestProxyFunctionsByAllowlist: a read grant calls only functions on the
// built-in list (or the node's functions); ts_stat, which runs SQL over a
// relation outside the grant, the transaction-id, snapshot, statistics and
// file functions, catalog casts and user functions are refused by name
// and never reach the server; the canary shows ts_stat's query never ran.
func TestProxyFunctionsByAllowlist(t *testing.T) {
	e := newEnv(t)
	seedAttacks(t, e)
	c := e.connect(t, "support-bot/triage", e.key)
	for sql, want := range map[string]string{
		"SELECT * FROM ts_stat('SELECT body FROM notes')":              "it calls ts_stat, which toolgate does not know to be free of side effects",
		"SELECT ts_rewrite('a'::tsquery, 'SELECT body FROM notes')":    "ts_rewrite",
		"SELECT txid_current()":                                        "txid_current",
		"SELECT pg_current_xact_id()":                                  "pg_current_xact_id",
		"SELECT pg_export_snapshot()":                                  "pg_export_snapshot",
		"SELECT pg_stat_reset()":                                       "pg_stat_reset",
		"SELECT * FROM pg_stat_get_activity(NULL)":                     "pg_stat_get_activity",
		"SELECT * FROM pg_catalog.pg_hba_file_rules()":                 "pg_catalog.pg_hba_file_rules",
		"SELECT * FROM pg_show_all_file_settings()":                    "pg_show_all_file_settings",
		"SELECT 'pg_authid'::regclass":                                 "regclass",
		"SELECT query_to_xml('SELECT * FROM secrets', true, true, '')": "query_to_xml",
		"SELECT slugify(name) FROM customers":                          "slugify",
		`SELECT "LOWER"(name) FROM customers`:                          `"LOWER"`,
	} {
		refused(t, e, c, sql, want)
	}
	if n := e.scalar(t, "SELECT count(*) FROM canary_log"); n != "0" {
		t.Fatalf("canary_log has %s rows: a refused ts_stat query ran", n)
	}
	// The built-in list covers ordinary reads.
	var out string
	if err := c.QueryRow(context.Background(), "SELECT upper(name) || ':' || to_char(now(), 'YYYY') || ':' || length(coalesce(card_number, '')) FROM customers WHERE id = 1").Scan(&out); err != nil || !strings.HasPrefix(out, "ADA:") {
		t.Fatalf("built-in functions: %q, %v", out, err)
	}
	// A node whose functions list slugify calls it.
	ext := e.connect(t, "support-bot/extended", e.key)
	if err := ext.QueryRow(context.Background(), "SELECT slugify(name || ' X') FROM customers WHERE id = 1").Scan(&out); err != nil || out != "ada-x" {
		t.Fatalf("slugify through functions: %q, %v", out, err)
	}
	// The witness works: the same ts_stat query run directly logs a read.
	up, err := pgx.Connect(context.Background(), e.upstream)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close(context.Background())
	if _, err := up.Exec(context.Background(), "SELECT * FROM ts_stat('SELECT body FROM notes')"); err != nil {
		t.Fatal(err)
	}
	if n := e.scalar(t, "SELECT count(*) FROM canary_log"); n != "1" {
		t.Fatalf("canary_log has %s rows after a direct ts_stat, want 1", n)
	}
}

// TestProxyTwoPhaseCommitNotRead: COMMIT PREPARED, ROLLBACK PREPARED and
// PREPARE TRANSACTION are not reads. A transaction another session
// prepared stays prepared and its insert stays invisible.
func TestProxyTwoPhaseCommitNotRead(t *testing.T) {
	e := newEnv(t)
	e.direct1(t, "BEGIN; INSERT INTO customers VALUES (9, 'Eve', NULL); PREPARE TRANSACTION 'tg_evil'")
	t.Cleanup(func() { e.direct1(t, "ROLLBACK PREPARED 'tg_evil'") })
	c := e.connect(t, "support-bot/triage", e.key)
	refused(t, e, c, "COMMIT PREPARED 'tg_evil'", "other statements are not in statements [read]")
	refused(t, e, c, "ROLLBACK PREPARED 'tg_evil'", "other statements")
	if _, err := c.Exec(context.Background(), "BEGIN"); err != nil {
		t.Fatal(err)
	}
	refused(t, e, c, "PREPARE TRANSACTION 'tg_mine'", "other statements")
	if _, err := c.Exec(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	refused(t, e, c, "BEGIN READ WRITE", "write statements")
	refused(t, e, c, "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "write statements")
	if got := e.scalar(t, "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'tg_evil'"); got != "1" {
		t.Fatalf("prepared transaction tg_evil: %s, want still prepared", got)
	}
	if got := e.customerCount(t); got != 50002 {
		t.Fatalf("customers = %d: the prepared insert was committed", got)
	}
	// Plain transaction control stays a read.
	for _, sql := range []string{"BEGIN", "SAVEPOINT a", "ROLLBACK TO SAVEPOINT a", "RELEASE SAVEPOINT a", "COMMIT", "BEGIN READ ONLY", "ROLLBACK"} {
		if _, err := c.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// TestProxyEncodingAndRoleRefused: a change of client encoding or role is
// refused at classification, even for a node whose rule allows every SET
// and set_config; the session keeps UTF8.
func TestProxyEncodingAndRoleRefused(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "support-bot/setter", e.key)
	for sql, want := range map[string]string{
		"SET client_encoding = 'SJIS'": "client encoding",
		"SET NAMES 'BIG5'":             "client encoding",
		"RESET client_encoding":        "client encoding",
		"RESET ALL":                    "client encoding",
		"DISCARD ALL":                  "RESET ALL",
		"SELECT set_config('client_encoding', 'GBK', false)":        "client encoding",
		"SELECT set_config(lower('CLIENT_ENCODING'), 'GBK', false)": "not a constant",
		"SET ROLE postgres":                            "role",
		"SET SESSION AUTHORIZATION postgres":           "role",
		"RESET ROLE":                                   "role",
		"SELECT set_config('role', 'postgres', false)": "role",
	} {
		refused(t, e, c, sql, want)
	}
	// The rule does admit what it names.
	if _, err := c.Exec(context.Background(), "SET search_path = public", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("SET search_path under the allow rule: %v", err)
	}
	var enc, user string
	if err := c.QueryRow(context.Background(), "SELECT current_setting('client_encoding'), current_user", pgx.QueryExecModeSimpleProtocol).Scan(&enc, &user); err != nil || enc != "UTF8" || user != "toolgate_app" {
		t.Fatalf("session: encoding %q user %q, %v", enc, user, err)
	}
}

// TestProxyCTEDoesNotHideTable: a CTE's name hides a table only inside
// the query that defines it, so a table outside the grant cannot pass as
// a CTE reference.
func TestProxyCTEDoesNotHideTable(t *testing.T) {
	e := newEnv(t)
	seedAttacks(t, e)
	c := e.connect(t, "support-bot/triage", e.key)
	refused(t, e, c, "SELECT * FROM (WITH secrets AS (SELECT 1) SELECT * FROM secrets) a, secrets", "table secrets")
	refused(t, e, c, "WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets", "table secrets")
}

// TestProxyDetectorsFindGluedCards: a card glued to letters, formatted,
// aggregated with another or echoed in a database error is masked.
func TestProxyDetectorsFindGluedCards(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "support-bot/triage", e.key)
	ctx := context.Background()
	for sql, want := range map[string]string{
		"SELECT 'a' || card_number FROM customers WHERE id = 1":                                                                                               "a************1111",
		"SELECT format('card:%s;', card_number) FROM customers WHERE id = 1":                                                                                  "card:************1111;",
		"SELECT card_number || 'x' || card_number FROM customers WHERE id = 1":                                                                                "************1111x************1111",
		"SELECT string_agg(card_number, '') FROM (SELECT card_number FROM customers WHERE id = 1 UNION ALL SELECT card_number FROM customers WHERE id = 1) s": "************1111************1111",
	} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			var got string
			if err := c.QueryRow(ctx, sql, mode).Scan(&got); err != nil || got != want {
				t.Fatalf("%s (%v): %q, %v; want %q", sql, mode, got, err, want)
			}
		}
	}
	_, err := c.Exec(ctx, "SELECT ('x' || card_number)::int FROM customers WHERE id = 1")
	if err == nil || strings.Contains(err.Error(), card) || !strings.Contains(err.Error(), "x************1111") {
		t.Fatalf("error text: %v", err)
	}
}
