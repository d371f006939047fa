package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/postgres"
	"github.com/toolgate/toolgate/internal/connectortest"
)

// TestSessionCannotBeLoosened: a declared statement that tries to turn a
// read-only target writable, or to lift the statement timeout, for the
// calls after it fails to: the next call on the same (single) connection
// is still read-only and still bounded.
func TestSessionCannotBeLoosened(t *testing.T) {
	seed := append([]string{}, connectortest.Seed...)
	seed = append(seed,
		// A function in the target database that loosens its caller's
		// session: the statement that calls it looks like a plain SELECT.
		`CREATE FUNCTION loosen() RETURNS text LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM set_config('default_transaction_read_only', 'off', false);
			RETURN 'loosened';
		END $$`)
	dsn := seeded(t, seed)
	for _, stmt := range []string{
		`SELECT set_config('default_transaction_read_only', 'off', false)`,
		`select pg_catalog.SET_CONFIG('default_transaction_read_only', 'off', false) AS x`,
		`SET default_transaction_read_only = off`,
		`SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE`,
		`/* a comment */ set statement_timeout = 0`,
		`SELECT set_config('statement_timeout', '0', false)`,
		`RESET ALL`,
		`SELECT loosen()`,
		`(SELECT loosen())`,
	} {
		t.Run(stmt, func(t *testing.T) {
			c := newConnector(t, postgres.Config{DSN: dsn, ReadOnly: true, StatementTimeout: 300 * time.Millisecond, MaxConns: 1})
			ctx := context.Background()
			// Warm the one connection, then let the statement try.
			if _, err := exec(c, ctx, `SELECT 1 AS one`); err != nil {
				t.Fatal(err)
			}
			_, _ = exec(c, ctx, stmt)
			for _, write := range []string{
				`UPDATE customers SET name = 'x'`,
				`INSERT INTO orders VALUES (999, 1, 'evil')`,
			} {
				_, err := exec(c, ctx, write)
				if code := broker.CodeOf(err); code != broker.CodeForbidden {
					t.Errorf("after %q, %q: code %s, want forbidden (err %v)", stmt, write, code, err)
				}
			}
			out, err := exec(c, ctx, `SELECT current_setting('transaction_read_only') AS ro, current_setting('statement_timeout') AS st`)
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"rows":[{"ro":"on","st":"300ms"}],"row_count":1,"truncated":false}`; string(out.Value) != want {
				t.Errorf("after %q: session %s, want %s", stmt, out.Value, want)
			}
			start := time.Now()
			_, err = exec(c, ctx, `SELECT pg_sleep(5)`)
			if code := broker.CodeOf(err); code != broker.CodeTimeout || time.Since(start) > 3*time.Second {
				t.Errorf("after %q: pg_sleep(5) gave %s after %s, want timeout at 300ms", stmt, code, time.Since(start))
			}
			out, err = exec(c, ctx, `SELECT count(*) AS n FROM customers WHERE name = 'x'`)
			if err != nil || !strings.Contains(string(out.Value), `"n":0`) {
				t.Errorf("a refused write changed data: %s %v", out.Value, err)
			}
		})
	}
}

func TestSessionSafe(t *testing.T) {
	for stmt, want := range map[string]bool{
		`SELECT 1`:                                   true,
		`  /* c /* nested */ */ (select 1)`:          true,
		"-- c\nWITH x AS (SELECT 1) SELECT * FROM x": true,
		`insert into t values (1)`:                   true,
		`VALUES (1)`:                                 true,
		`SET statement_timeout = 0`:                  false,
		`RESET ALL`:                                  false,
		`DISCARD ALL`:                                false,
		`CALL p()`:                                   false,
		`SELECT set_config('a', 'b', false)`:         false,
		`SELECT "SET_CONFIG"('a', 'b', false)`:       false,
		`SELECT U&"\0073et_config"('a', 'b', false)`: false,
		`-- only a comment`:                          false,
		`/* unterminated`:                            false,
		``:                                           false,
	} {
		if got := postgres.SessionSafe(stmt); got != want {
			t.Errorf("sessionSafe(%q) = %v, want %v", stmt, got, want)
		}
	}
}
