package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/postgres"
	"github.com/toolgate/toolgate/internal/connectortest"
	"github.com/toolgate/toolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// seeded creates a database, runs the seed as its owner and returns the
// password DSN (real credentials, as a deployment would use).
func seeded(t testing.TB, seed []string) string {
	t.Helper()
	pg := testenv.Postgres(t)
	dsn := pg.PasswordDSN(testenv.DBName(pg.CreateDB(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range seed {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("seed %q: %v", s, err)
		}
	}
	return dsn
}

func newConnector(t *testing.T, cfg postgres.Config) *postgres.Connector {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "crm"
	}
	c, err := postgres.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestConformance(t *testing.T) {
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("read_only=%v", ro), func(t *testing.T) {
			connectortest.RunSQL(t, func(t *testing.T, seed []string) broker.Executor {
				return newConnector(t, postgres.Config{DSN: seeded(t, seed), ReadOnly: ro, StatementTimeout: 10 * time.Second})
			})
		})
	}
}

func TestPostgresTypes(t *testing.T) {
	dsn := seeded(t, nil)
	c := newConnector(t, postgres.Config{DSN: dsn})
	out, err := c.Execute(context.Background(), broker.Operation{SQL: &broker.SQLOperation{Statement: `SELECT
		1::int2 AS i2, 2::int4 AS i4, 9007199254740993::int8 AS i8,
		1.5::float4 AS f4, 'NaN'::float8 AS nan, 'Infinity'::float8 AS inf, '-Infinity'::float8 AS ninf,
		123456789012345678901234567890.123456789::numeric AS big, 'NaN'::numeric AS nnan,
		true AS b, 'héllo "q"'::text AS t, 'x'::varchar(3) AS vc,
		'2024-03-04 05:06:07.123456+02'::timestamptz AS tz, '2024-03-04 05:06:07'::timestamp AS ts,
		'2024-03-04'::date AS d, '\xdeadbeef'::bytea AS bin,
		'6ba7b810-9dad-11d1-80b4-00c04fd430c8'::uuid AS u,
		'{"z": 1, "a": [true, null]}'::jsonb AS jb, '{"z":1,"a":2}'::json AS j,
		ARRAY[1,2,3] AS arr, ARRAY['a', NULL] AS tarr, ARRAY['2024-01-01'::date] AS darr,
		'{}'::int[] AS empty, NULL::text AS nothing, '10.1.0.0/16'::cidr AS net`}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"rows":[{"i2":1,"i4":2,"i8":9007199254740993,` +
		`"f4":1.5,"nan":"NaN","inf":"Infinity","ninf":"-Infinity",` +
		`"big":"123456789012345678901234567890.123456789","nnan":"NaN",` +
		`"b":true,"t":"héllo \"q\"","vc":"x",` +
		`"tz":"2024-03-04T03:06:07.123456Z","ts":"2024-03-04T05:06:07Z",` +
		`"d":"2024-03-04","bin":"3q2+7w==",` +
		`"u":"6ba7b810-9dad-11d1-80b4-00c04fd430c8",` +
		`"jb":{"a": [true, null], "z": 1},"j":{"z":1,"a":2},` +
		`"arr":[1,2,3],"tarr":["a",null],"darr":["2024-01-01"],` +
		`"empty":[],"nothing":null,"net":"10.1.0.0/16"}],"row_count":1,"truncated":false}`
	if string(out.Value) != want {
		t.Errorf("types\n got %s\nwant %s", out.Value, want)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  postgres.Config
		want string
	}{
		{"no name", postgres.Config{DSN: "postgres://x@h/db"}, "name is required"},
		{"no dsn", postgres.Config{Name: "crm"}, "dsn is required"},
		{"negative rows", postgres.Config{Name: "crm", DSN: "postgres://x@h/db", MaxRows: -1}, "max_rows"},
		{"negative timeout", postgres.Config{Name: "crm", DSN: "postgres://x@h/db", StatementTimeout: -time.Second}, "statement_timeout"},
		{"sub-ms timeout", postgres.Config{Name: "crm", DSN: "postgres://x@h/db", StatementTimeout: time.Microsecond}, "statement_timeout"},
		{"negative conns", postgres.Config{Name: "crm", DSN: "postgres://x@h/db", MaxConns: -1}, "max_conns"},
		{"negative connect", postgres.Config{Name: "crm", DSN: "postgres://x@h/db", ConnectTimeout: -1}, "connect_timeout"},
		{"bad dsn", postgres.Config{Name: "crm", DSN: "postgres://user:s3cret-pw@h:notaport/db"}, "not a valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Errorf("error leaks the password: %v", err)
			}
			if _, err := postgres.New(context.Background(), tc.cfg, nil); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
	if err := (postgres.Config{Name: "crm", DSN: "host=localhost dbname=x"}).Validate(); err != nil {
		t.Errorf("valid key=value config refused: %v", err)
	}
}

func exec(c broker.Executor, ctx context.Context, stmt string, args ...any) (broker.Output, error) {
	return c.Execute(ctx, broker.Operation{Target: "crm", SQL: &broker.SQLOperation{Statement: stmt, Args: args}})
}

func TestStatementTimeout(t *testing.T) {
	c := newConnector(t, postgres.Config{DSN: seeded(t, nil), StatementTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := exec(c, context.Background(), `SELECT pg_sleep(5)`)
	if code := broker.CodeOf(err); code != broker.CodeTimeout {
		t.Fatalf("code = %s, want timeout (err %v)", code, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %s", d)
	}
	if !strings.Contains(err.Error(), "200ms") {
		t.Errorf("error %q does not name the timeout", err)
	}
	// The session setting is per transaction: a fast call still works.
	if _, err := exec(c, context.Background(), `SELECT 1 AS one`); err != nil {
		t.Fatalf("after a timeout: %v", err)
	}
}

func TestReadOnlyTransaction(t *testing.T) {
	c := newConnector(t, postgres.Config{DSN: seeded(t, connectortest.Seed), ReadOnly: true})
	out, err := exec(c, context.Background(), `SELECT current_setting('transaction_read_only') AS ro`)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"rows":[{"ro":"on"}],"row_count":1,"truncated":false}`; string(out.Value) != want {
		t.Errorf("got %s, want %s", out.Value, want)
	}
	// Even a statement that tries to leave the read-only mode is refused.
	for _, stmt := range []string{
		`UPDATE customers SET name = 'x'`,
		`DELETE FROM orders`,
		`CREATE TABLE evil (id int)`,
		`SELECT set_config('transaction_read_only', 'off', true)`,
	} {
		if _, err := exec(c, context.Background(), stmt); err == nil {
			t.Errorf("read-only target ran %q", stmt)
		}
	}
	out, err = exec(c, context.Background(), `SELECT count(*) AS n FROM customers WHERE name = 'x'`)
	if err != nil || !strings.Contains(string(out.Value), `"n":0`) {
		t.Errorf("the refused UPDATE changed data: %s %v", out.Value, err)
	}
}

// TestSQLCommenter: the statement the server runs carries the operation's
// context and the trace context of ctx (the broker's connector span) as an
// SQLCommenter comment, every value encoded so none can end it.
func TestSQLCommenter(t *testing.T) {
	dsn := seeded(t, nil)
	c := newConnector(t, postgres.Config{DSN: dsn})
	op := broker.Operation{
		SQL: &broker.SQLOperation{Statement: `SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid();`},
		Comment: map[string]string{
			"graph": "support-bot", "node": "triage", "run": "r 1",
			"evil":  "x'*/; DROP TABLE t; /*",
			"empty": "",
		},
	}
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ts, _ := trace.ParseTraceState("congo=t61rcWkgMzE")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts}))
	out, err := c.Execute(ctx, op)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := op.Comment["traceparent"]; ok {
		t.Error("Execute wrote into the operation's comment")
	}
	wantComment := `/*evil='x%27%2A%2F%3B%20DROP%20TABLE%20t%3B%20%2F%2A',graph='support-bot',node='triage',run='r%201',` +
		`traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',tracestate='congo%3Dt61rcWkgMzE'*/`
	want := `{"rows":[{"query":"SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid() ` + wantComment + `;"}],"row_count":1,"truncated":false}`
	if string(out.Value) != want {
		t.Errorf("statement seen by the server\n got %s\nwant %s", out.Value, want)
	}
}

func TestComment(t *testing.T) {
	for _, tc := range []struct {
		in   map[string]string
		want string
	}{
		{nil, ""},
		{map[string]string{"graph": ""}, ""},
		{map[string]string{"node": "triage", "graph": "support-bot"}, `graph='support-bot',node='triage'`},
		{map[string]string{"node": "supervisor/research"}, `node='supervisor%2Fresearch'`},
		{map[string]string{"n": "*/"}, `n='%2A%2F'`},
		{map[string]string{"n": `a\'b`}, `n='a%5C%27b'`},
		{map[string]string{"n": "é"}, `n='%C3%A9'`},
		{map[string]string{"k y": "v"}, `k%20y='v'`},
	} {
		if got := postgres.Comment(tc.in); got != tc.want {
			t.Errorf("Comment(%v) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(postgres.Comment(tc.in), "*/") {
			t.Errorf("Comment(%v) can close the comment", tc.in)
		}
	}
}

func TestCommentAfterLineComment(t *testing.T) {
	c := newConnector(t, postgres.Config{DSN: seeded(t, nil)})
	op := broker.Operation{
		SQL:     &broker.SQLOperation{Statement: "SELECT 1 AS one -- trailing note"},
		Comment: map[string]string{"graph": "g"},
	}
	out, err := c.Execute(context.Background(), op)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"rows":[{"one":1}],"row_count":1,"truncated":false}`; string(out.Value) != want {
		t.Errorf("got %s", out.Value)
	}
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestTargetDown(t *testing.T) {
	const secret = "s3cret-Passw0rd"
	for _, tc := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"closed port", func(t *testing.T) string {
			return fmt.Sprintf("postgres://app:%s@127.0.0.1:%d/crm?sslmode=disable", secret, closedPort(t))
		}},
		{"blackhole address", func(t *testing.T) string {
			// TEST-NET-1 never answers: the connect timeout must fire.
			return fmt.Sprintf("postgres://app:%s@192.0.2.1:5432/crm?sslmode=disable", secret)
		}},
		{"wrong password", func(t *testing.T) string {
			pg := testenv.Postgres(t)
			return strings.Replace(pg.PasswordDSN(testenv.DBName(pg.CreateDB(t))), pg.Password(), secret, 1)
		}},
		{"no such database", func(t *testing.T) string {
			return strings.Replace(testenv.Postgres(t).PasswordDSN("no_such_db"), testenv.Postgres(t).Password(), secret, 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			const connectTimeout = time.Second
			c, err := postgres.New(context.Background(), postgres.Config{Name: "crm", DSN: tc.dsn(t), ConnectTimeout: connectTimeout}, zap.New(core))
			if err != nil {
				t.Fatalf("New must not fail while the target is down: %v", err)
			}
			defer c.Close()
			start := time.Now()
			_, err = exec(c, context.Background(), `SELECT 1`)
			elapsed := time.Since(start)
			if code := broker.CodeOf(err); code != broker.CodeTargetUnavailable {
				t.Fatalf("code = %s, want target_unavailable (err %v)", code, err)
			}
			if err.Error() != "target_unavailable: target crm is unavailable" {
				t.Errorf("error = %q", err)
			}
			if elapsed > connectTimeout+time.Second {
				t.Errorf("took %s, want at most ConnectTimeout+1s", elapsed)
			}
			for _, e := range logs.All() {
				if line := fmt.Sprint(e.Message, e.ContextMap()); strings.Contains(line, secret) {
					t.Errorf("log leaks the password: %s", line)
				}
			}
		})
	}
}

func TestServerStopsAndRestarts(t *testing.T) {
	pg := testenv.NewPostgres(t)
	c := newConnector(t, postgres.Config{DSN: pg.DSN("postgres"), ConnectTimeout: time.Second})
	if _, err := exec(c, context.Background(), `SELECT 1 AS one`); err != nil {
		t.Fatal(err)
	}
	pg.Stop()
	start := time.Now()
	_, err := exec(c, context.Background(), `SELECT 1 AS one`)
	if code := broker.CodeOf(err); code != broker.CodeTargetUnavailable {
		t.Fatalf("code = %s, want target_unavailable (err %v)", code, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestPoolExhausted(t *testing.T) {
	c := newConnector(t, postgres.Config{DSN: seeded(t, nil), MaxConns: 1, ConnectTimeout: 500 * time.Millisecond})
	conn, err := c.Pool().Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	start := time.Now()
	_, err = exec(c, context.Background(), `SELECT 1`)
	if code := broker.CodeOf(err); code != broker.CodeTargetUnavailable {
		t.Fatalf("code = %s, want target_unavailable (err %v)", code, err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("took %s", d)
	}
}

func TestErrorsNeverCarryCredentials(t *testing.T) {
	pg := testenv.Postgres(t)
	dsn := seeded(t, connectortest.Seed)
	c := newConnector(t, postgres.Config{DSN: dsn})
	for _, stmt := range []string{`SELEC 1`, `SELECT * FROM nope`, `SELECT 1/0`, `INSERT INTO customers (id, name) VALUES (1, 'dup')`} {
		_, err := exec(c, context.Background(), stmt)
		if err == nil {
			t.Fatalf("%q: no error", stmt)
		}
		var be *broker.Error
		if !errors.As(err, &be) || be.Code != broker.CodeTargetError {
			t.Errorf("%q: err = %v, want target_error", stmt, err)
		}
		for _, s := range []string{pg.Password(), dsn, testenv.PasswordUser, "127.0.0.1"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%q: error %q contains %q", stmt, err, s)
			}
		}
	}
}

func TestNotSQL(t *testing.T) {
	c := newConnector(t, postgres.Config{DSN: "postgres://x@127.0.0.1:1/db"})
	_, err := c.Execute(context.Background(), broker.Operation{})
	if code := broker.CodeOf(err); code != broker.CodeInvalidRequest {
		t.Errorf("code = %s, want invalid_request", code)
	}
}

// A statement whose text is the same on every call is prepared once per
// connection; one whose comment names a run is not. When a table it reads
// changes shape, the next call still answers, with the new columns.
func TestStableStatementsArePrepared(t *testing.T) {
	dsn := seeded(t, []string{`CREATE TABLE t (a int)`, `INSERT INTO t VALUES (1)`})
	c := newConnector(t, postgres.Config{DSN: dsn, MaxConns: 1})
	ctx := context.Background()
	call := func(stmt, run string, args ...any) string {
		t.Helper()
		out, err := c.Execute(ctx, broker.Operation{Target: "crm", Comment: map[string]string{"graph": "g", "node": "n", "run": run},
			SQL: &broker.SQLOperation{Statement: stmt, Args: args}})
		if err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
		return string(out.Value)
	}
	prepared := func(like string) string {
		return call(`SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE $1`, "", like)
	}
	for range 3 {
		call(`SELECT * FROM t WHERE a = $1`, "", 1)
		call(`SELECT a + 1 AS b FROM t WHERE a = $1`, "run-7", 1)
	}
	if got := prepared("SELECT * FROM t WHERE%"); !strings.Contains(got, `"n":1`) {
		t.Errorf("the stable statement is prepared %s times, want once", got)
	}
	if got := prepared("SELECT a + 1%"); !strings.Contains(got, `"n":0`) {
		t.Errorf("a statement naming a run was prepared: %s", got)
	}

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER TABLE t ADD COLUMN c text DEFAULT 'new'`); err != nil {
		t.Fatal(err)
	}
	if got := call(`SELECT * FROM t WHERE a = $1`, "", 1); !strings.Contains(got, `"c":"new"`) {
		t.Fatalf("after the table changed: %s, want the new column", got)
	}
}
