package pgwire_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/broker/brokertest"
	"github.com/toolgate/toolgate/connectors/pgwire"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/internal/testenv"
	"github.com/toolgate/toolgate/policy"
	"github.com/toolgate/toolgate/policy/mask"
	"github.com/toolgate/toolgate/tools"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is a real PostgreSQL target behind a real broker and proxy.
type env struct {
	srv      *pgwire.Server
	pipe     *broker.Broker
	rec      *brokertest.Recorder
	grants   *auth.Grants
	key      string
	direct   string // superuser DSN of the target database, for checks
	upstream string
	dbname   string
}

const card = "4111111111111111"

func graphs() map[string]config.Graph {
	return map[string]config.Graph{
		"support-bot": {
			Principals: []string{"key:bot"},
			Nodes: map[string]config.Node{
				"triage": {Passthrough: map[string]config.PassthroughPolicy{"crm": {
					Statements: []string{"read"},
					Tables:     []string{"customers", "orders", "pgbench_*", "pg_catalog.*"},
					Rules: []config.Rule{
						{When: "statement.functions == ['pg_sleep']", Effect: "allow"},
						{When: "statement.command == 'COPY TO'", Effect: "allow"},
						{When: "statement.tables.exists(t, t == 'orders') && statement.class == 'write'", Effect: "deny", Reason: "orders are append-only"},
					},
				}}},
				"writer": {Passthrough: map[string]config.PassthroughPolicy{"crm": {Statements: []string{"read", "write"}, Tables: []string{"customers"}}}},
				"setter": {Passthrough: map[string]config.PassthroughPolicy{"crm": {Statements: []string{"read"}, Tables: []string{"customers"},
					Rules: []config.Rule{{When: "statement.command == 'SET' || 'set_config' in statement.functions", Effect: "allow"}}}}},
				"extended": {Passthrough: map[string]config.PassthroughPolicy{"crm": {Statements: []string{"read"}, Tables: []string{"customers"},
					Functions: []string{"slugify"}}}},
				"nopass": {},
			},
		},
	}
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with the proxy's config changed by adjust.
func newEnvWith(t testing.TB, adjust func(*pgwire.Config)) *env {
	t.Helper()
	ctx := context.Background()
	pg := testenv.Postgres(t)
	direct := pg.CreateDB(t)
	name := testenv.DBName(direct)
	conn, err := pgx.Connect(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `
		CREATE TABLE customers (id int PRIMARY KEY, name text, card_number text);
		CREATE TABLE orders (id int PRIMARY KEY, customer_id int);
		INSERT INTO customers VALUES (1, 'Ada', '`+card+`'), (2, 'Bob', NULL);
		INSERT INTO orders VALUES (10, 1);
		ALTER TABLE customers OWNER TO `+testenv.PasswordUser+`;
		ALTER TABLE orders OWNER TO `+testenv.PasswordUser+`;
		INSERT INTO customers SELECT g, 'n' || g, NULL FROM generate_series(100, 50099) g;`)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}

	store, err := db.Open(ctx, db.Config{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "tg.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	gs, err := auth.NewSQLGrantStore(store)
	if err != nil {
		t.Fatal(err)
	}
	key, sha, _ := auth.NewAPIKey()
	authn, err := auth.New(auth.Config{APIKeys: []auth.APIKey{{Name: "bot", SHA256: sha}}, Grants: gs})
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := tools.NewCatalog()
	pol, err := policy.New(policy.Config{Graphs: graphs(), Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	grants, err := auth.NewGrants(auth.GrantsConfig{Store: gs, Graphs: pol})
	if err != nil {
		t.Fatal(err)
	}
	m, err := mask.New(mask.Config{Targets: map[string]mask.TargetConfig{"crm": {Rules: map[string]string{"customers.card_number": "last4"}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &brokertest.Recorder{}
	b, err := broker.New(broker.Config{Live: broker.Live{Catalog: cat, Policy: pol, Masker: m, Routes: []broker.Route{{Kind: broker.KindSQL, Target: "crm"}}}, Auth: authn, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	cfg := pgwire.Config{Listen: "127.0.0.1:0", Target: "crm", DSN: pg.PasswordDSN(name),
		StartupTimeout: 10 * time.Second, IdentifyEvery: time.Nanosecond, MaxMessageBytes: 1 << 20}
	if adjust != nil {
		adjust(&cfg)
	}
	srv, err := pgwire.New(cfg, b, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &env{srv: srv, pipe: b, rec: rec, grants: grants, key: key, direct: direct, upstream: pg.PasswordDSN(name), dbname: name}
}

func (e *env) dsn(user, password string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=whatever sslmode=disable", e.srv.Addr().(*net.TCPAddr).Port, user, password)
}

func (e *env) connect(t testing.TB, user, password string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), e.dsn(user, password))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func (e *env) customerCount(t *testing.T) int {
	t.Helper()
	c, err := pgx.Connect(context.Background(), e.direct)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM customers").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func itoa(n int) string { return fmt.Sprint(n) }

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
}

func TestProxyPgx(t *testing.T) {
	e := newEnv(t)
	before := runtime.NumGoroutine()
	ctx := context.Background()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			c := e.connect(t, "support-bot/triage", e.key)
			var name, cardOut string
			if err := c.QueryRow(ctx, "SELECT name, card_number FROM customers WHERE id = $1", mode, 1).Scan(&name, &cardOut); err != nil {
				t.Fatal(err)
			}
			if name != "Ada" || cardOut == card || !strings.HasSuffix(cardOut, "1111") {
				t.Fatalf("got %q %q, want Ada and a masked card ending 1111", name, cardOut)
			}
			// An alias does not unmask the column.
			if err := c.QueryRow(ctx, "SELECT card_number AS c FROM customers WHERE id = 1", mode).Scan(&cardOut); err != nil || cardOut == card {
				t.Fatalf("aliased card = %q, %v", cardOut, err)
			}
			_, err := c.Exec(ctx, "DELETE FROM customers WHERE id = $1", mode, 2)
			if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "write statement") {
				t.Fatalf("DELETE: %v, want 42501 naming the write statement", err)
			}
			// The connection is still usable after the refusal.
			var one int
			if err := c.QueryRow(ctx, "SELECT 1", mode).Scan(&one); err != nil || one != 1 {
				t.Fatalf("after refusal: %d, %v", one, err)
			}
			// Transactions stay in sync: the refusal aborts the server's
			// transaction like a real error.
			if _, err := c.Exec(ctx, "BEGIN", mode); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, "UPDATE customers SET name = 'x'", mode); sqlstate(err) != "42501" {
				t.Fatalf("UPDATE in tx: %v", err)
			}
			if _, err := c.Exec(ctx, "ROLLBACK", mode); err != nil {
				t.Fatal(err)
			}
			rows, err := c.Query(ctx, "SELECT id FROM customers", mode)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for rows.Next() {
				n++
			}
			if rows.Err() != nil || n != 50002 {
				t.Fatalf("large select: %d rows, %v", n, rows.Err())
			}
		})
	}
	if got := e.customerCount(t); got != 50002 {
		t.Fatalf("customers = %d after refused writes", got)
	}
	stmts := e.rec.OfKind(broker.EventStatement)
	var denied, done int
	for _, ev := range stmts {
		if ev.Status == broker.StatusDenied {
			denied++
		}

		if strings.Contains(fmt.Sprint(ev.Detail["statement"]), card) {
			t.Fatalf("a recorded statement holds the card number: %+v", ev)
		}
	}
	if denied != 8 {
		t.Fatalf("recorded %d denied statements of %d", denied, len(stmts))
	}
	if len(e.rec.OfKind(broker.EventSessionOpened)) < 4 {
		t.Fatal("sessions were not recorded")
	}
	_ = e.srv.Close()
	checkGoroutines(t, before)
	if len(e.rec.OfKind(broker.EventSessionClosed)) < 4 {
		t.Fatal("session ends were not recorded")
	}
	// Outcomes ride on later records or the session ends.
	for _, ev := range e.rec.Events() {
		done += len(broker.Outcomes(ev))
	}
	if done < 16 {
		t.Fatalf("recorded %d outcomes", done)
	}
}

func TestProxyBypassCorpus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.connect(t, "support-bot/triage", e.key)
	for _, q := range []string{
		"DELETE FROM customers",
		"SELECT E'\\''; DELETE FROM customers; --'",
		"SELECT 1; DELETE FROM customers",
		"WITH x AS (DELETE FROM customers RETURNING *) SELECT * FROM x",
		"MERGE INTO customers c USING orders o ON o.customer_id = c.id WHEN MATCHED THEN DELETE",
		"COPY customers TO STDOUT",
		"EXPLAIN ANALYZE DELETE FROM customers",
		"DO $$BEGIN DELETE FROM customers; END$$",
		"PREPARE p AS DELETE FROM customers",
		"SELECT set_config('search_path', 'evil', false)",
		"SET ROLE postgres",
		"SELECT * FROM customers FOR UPDATE",
		"SELECT * FROM secrets",
		"TRUNCATE customers",
		"DELETE /* nested /* comment */ */ FROM customers",
		"SELEC garbage",
	} {
		_, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
		if sqlstate(err) != "42501" {
			t.Errorf("%s: %v, want 42501", q, err)
		}
	}
	if got := e.customerCount(t); got != 50002 {
		t.Fatalf("customers = %d: a refused statement ran", got)
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("connection unusable after the corpus: %v", err)
	}
}

// TestProxyPipelinedBatch sends a large result followed by many queries in
// one extended-protocol batch: the relay must not stall the server.
func TestProxyPipelinedBatch(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "support-bot/triage", e.key)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue("SELECT id, name FROM customers")
	for i := 0; i < 500; i++ {
		b.Queue("SELECT $1::int", i)
	}
	b.Queue("DELETE FROM customers")
	b.Queue("SELECT 2")
	br := c.SendBatch(ctx, b)
	rows, err := br.Query()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if rows.Err() != nil || n != 50002 {
		t.Fatalf("batch select: %d rows, %v", n, rows.Err())
	}
	for i := 0; i < 500; i++ {
		var v int
		if err := br.QueryRow().Scan(&v); err != nil || v != i {
			t.Fatalf("batch query %d: %d, %v", i, v, err)
		}
	}
	if _, err := br.Exec(); sqlstate(err) != "42501" {
		t.Fatalf("batch DELETE: %v", err)
	}
	_ = br.Close()
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("after batch: %v", err)
	}
	if got := e.customerCount(t); got != 50002 {
		t.Fatalf("customers = %d", got)
	}
}

func TestProxyCopyTo(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "support-bot/triage", e.key)
	var buf strings.Builder
	if _, err := c.PgConn().CopyTo(context.Background(), &buf, "COPY orders TO STDOUT"); err != nil || buf.String() != "10\t1\n" {
		t.Fatalf("COPY orders: %q, %v", buf.String(), err)
	}
	buf.Reset()
	_, err := c.PgConn().CopyTo(context.Background(), &buf, "COPY customers TO STDOUT")
	if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "customers.card_number") || buf.Len() != 0 {
		t.Fatalf("COPY customers: %v (%d bytes)", err, buf.Len())
	}
	buf.Reset()
	_, err = c.PgConn().CopyTo(context.Background(), &buf, "COPY (SELECT card_number FROM customers) TO STDOUT")
	if sqlstate(err) != "42501" || buf.Len() != 0 {
		t.Fatalf("COPY (SELECT card_number ...): %v (%d bytes)", err, buf.Len())
	}
}

func TestProxyAuthRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, user, pw, want string }{
		{"wrong key", "support-bot/triage", "tgk_wrong", "28P01"},
		{"no graph", "triage", e.key, "28P01"},
		{"node without passthrough", "support-bot/nopass", e.key, "42501"},
		{"unknown grant", "gr_nope", "tg_nope", "28P01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pgx.Connect(ctx, e.dsn(tc.user, tc.pw))
			if sqlstate(err) != tc.want {
				t.Fatalf("connect: %v, want %s", err, tc.want)
			}
			if strings.Contains(err.Error(), e.key) {
				t.Fatal("the error echoes the key")
			}
		})
	}
	if n := len(e.rec.OfKind(broker.EventStatement)); n != 0 {
		t.Fatalf("%d statements recorded for refused logins", n)
	}
}

func TestProxyGrantRevokedMidSession(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := broker.Principal{Subject: "key:bot", Method: broker.AuthAPIKey}
	g, err := e.grants.Mint(ctx, p, auth.MintRequest{Graph: "support-bot", RunID: "run-1", Nodes: []string{"triage"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := e.connect(t, g.GrantID, g.Tokens["triage"])
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := e.grants.Revoke(ctx, p, g.GrantID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("statement ran after the grant was revoked")
	}
	if !c.IsClosed() {
		// The server ended the session; the next use fails too.
		if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
			t.Fatal("session survived revocation")
		}
	}
	// The grant token of another grant id is refused.
	if _, err := pgx.Connect(ctx, e.dsn("gr_other", g.Tokens["triage"])); err == nil {
		t.Fatal("a grant token logged in under another grant id")
	}
}

func TestProxyAuditDownFailsClosed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.connect(t, "support-bot/writer", e.key)
	reader := e.connect(t, "support-bot/triage", e.key)
	e.rec.SetFail(true)
	// A read's audit write overlaps its execution, but its rows are
	// withheld until the record is durable: none arrive.
	var name string
	if err := reader.QueryRow(ctx, "SELECT name FROM customers WHERE id = 1", pgx.QueryExecModeSimpleProtocol).Scan(&name); err == nil || name != "" {
		t.Fatalf("read answered %q while the audit store was down (%v)", name, err)
	}
	_, err := c.Exec(ctx, "DELETE FROM customers WHERE id = 2")
	if err == nil {
		t.Fatal("statement ran while the audit store was down")
	}
	e.rec.SetFail(false)
	if got := e.customerCount(t); got != 50002 {
		t.Fatalf("customers = %d: the statement ran unrecorded", got)
	}
}

func TestProxyStartupTimeoutAndMalformed(t *testing.T) {
	e := newEnvWith(t, func(c *pgwire.Config) { c.StartupTimeout = 500 * time.Millisecond })
	addr := e.srv.Addr().String()
	// A client that never finishes startup is dropped.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("idle client: %v after %s", err, time.Since(start))
	}
	// A startup packet with an absurd length is refused.
	c2, _ := net.Dial("tcp", addr)
	defer c2.Close()
	_, _ = c2.Write([]byte{0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0})
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("oversized startup packet was answered")
	}
	// An oversized query after login ends the session with 54000.
	conn := e.connect(t, "support-bot/triage", e.key)
	_, err = conn.Exec(context.Background(), "SELECT '"+strings.Repeat("x", 2<<20)+"'", pgx.QueryExecModeSimpleProtocol)
	if err == nil {
		t.Fatal("oversized query was accepted")
	}
}

func TestProxyCancel(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t, "support-bot/triage", e.key)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("pg_sleep: %v after %s", err, time.Since(start))
	}
	// pgx closes a connection whose query was cancelled by context; a new
	// one works, and the server's backend is no longer sleeping.
	d, err := pgx.Connect(context.Background(), e.direct)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		_ = d.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active'").Scan(&n)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the upstream pg_sleep was not cancelled")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestProxyRawCancelKeyIsToolgates(t *testing.T) {
	e := newEnv(t)
	// An unknown cancel key is ignored and the connection closed.
	c, err := net.Dial("tcp", e.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pkt := binary.BigEndian.AppendUint32(nil, 16)
	pkt = binary.BigEndian.AppendUint32(pkt, 80877102)
	pkt = binary.BigEndian.AppendUint32(pkt, 1)
	pkt = binary.BigEndian.AppendUint32(pkt, 2)
	_, _ = c.Write(pkt)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, _ := c.Read(make([]byte, 1)); n != 0 {
		t.Fatal("cancel request was answered")
	}
}

func TestProxyPsqlAndPgbench(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql is not installed")
	}
	e := newEnv(t)
	port := fmt.Sprint(e.srv.Addr().(*net.TCPAddr).Port)
	cmd := exec.Command(psql, "-X", "-A", "-t", "-h", "127.0.0.1", "-p", port, "-U", "support-bot/triage", "-d", "x",
		"-c", "SELECT name, card_number FROM customers WHERE id = 1", "-c", "DELETE FROM customers", "-c", "SELECT count(*) FROM orders")
	cmd.Env = append(cmd.Environ(), "PGPASSWORD="+e.key, "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "Ada|") || strings.Contains(s, card) || !strings.Contains(s, "ERROR:  policy") || !strings.HasSuffix(strings.TrimSpace(s), "1") {
		t.Fatalf("psql output:\n%s", s)
	}

	pgbench, err := exec.LookPath("pgbench")
	if err != nil {
		t.Skip("pgbench is not installed")
	}
	init := exec.Command(pgbench, "-i", "-s", "1", "-q", e.upstream)
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	run := exec.Command(pgbench, "-n", "-S", "-c", "4", "-t", "50", "-h", "127.0.0.1", "-p", port, "-U", "support-bot/triage", "x")
	run.Env = append(run.Environ(), "PGPASSWORD="+e.key, "PGSSLMODE=disable")
	out, err = run.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "number of transactions actually processed: 200/200") {
		t.Fatalf("pgbench through the proxy: %v\n%s", err, out)
	}
}

func testLogger(t testing.TB) *zap.Logger {
	if os.Getenv("PGWIRE_DEBUG") == "" {
		return nil
	}
	return zaptest.NewLogger(t)
}
