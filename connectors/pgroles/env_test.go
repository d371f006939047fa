package pgroles_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/connectors/pgroles"
	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const card = "4111111111111111"

// env is a target database with the minimal setup the README documents:
// a non-superuser CREATEROLE admin holding the tables' privileges WITH
// GRANT OPTION, PUBLIC's TEMPORARY and large-object creation revoked.
type env struct {
	pg       *testenv.PG
	su       string // superuser DSN
	db       string
	admin    string // the admin login's name
	adminDSN string
	grants   *auth.SQLGrantStore
	logs     *observer.ObservedLogs
	log      *zap.Logger
	now      time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pg := testenv.Postgres(t)
	su := pg.CreateDB(t)
	name := testenv.DBName(su)
	e := &env{pg: pg, su: su, db: name, admin: "adm_" + name, now: time.Now()}
	if len(e.admin) > 63 {
		e.admin = e.admin[:63]
	}
	e.adminDSN = e.dsn(e.admin, "admin-pw")
	a := pgx.Identifier{e.admin}.Sanitize()
	e.exec(t, `
		CREATE TABLE customers (id serial PRIMARY KEY, name text, card_number text);
		CREATE TABLE notes (id int, secret text);
		CREATE TABLE orders (id serial PRIMARY KEY, customer_id int);
		CREATE SCHEMA sales;
		CREATE TABLE sales.leads (id int, email text);
		CREATE VIEW customer_names AS SELECT id, name FROM customers;
		INSERT INTO customers (name, card_number) VALUES ('Ada', '`+card+`'), ('Bob', NULL);
		INSERT INTO notes VALUES (1, 'the secret note');
		INSERT INTO sales.leads VALUES (1, 'lead@example.com');
		CREATE ROLE `+a+` LOGIN CREATEROLE PASSWORD 'admin-pw';
		GRANT USAGE ON SCHEMA sales TO `+a+` WITH GRANT OPTION;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public, sales TO `+a+` WITH GRANT OPTION;
		GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO `+a+` WITH GRANT OPTION;
		GRANT pg_signal_backend TO `+a+`;
		REVOKE TEMPORARY ON DATABASE `+pgx.Identifier{name}.Sanitize()+` FROM PUBLIC;
		REVOKE EXECUTE ON FUNCTION lo_create(oid), lo_creat(integer), lo_from_bytea(oid, bytea) FROM PUBLIC;`)
	t.Cleanup(func() {
		// Roles are cluster-wide: drop what this test left behind.
		ctx := context.Background()
		c, err := pgx.Connect(ctx, su)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		rows, _ := c.Query(ctx, `SELECT rolname FROM pg_roles WHERE rolname LIKE 'toolgate\_pt\_%' AND shobj_description(oid, 'pg_authid') LIKE '%"db":"`+name+`"%'`)
		names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		_, _ = c.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)
		for _, n := range names {
			dropRole(ctx, c, e.admin, n)
		}
		_, _ = c.Exec(ctx, "DROP OWNED BY "+a)
		_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+a)
	})
	store, err := db.Open(context.Background(), db.Config{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "tg.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if e.grants, err = auth.NewSQLGrantStore(store); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	e.log, e.logs = zap.New(core), logs
	return e
}

// dropRole drops a role the admin granted privileges to (DROP OWNED as
// the superuser leaves those: their grantor is the admin).
func dropRole(ctx context.Context, c *pgx.Conn, admin, role string) {
	q := pgx.Identifier{role}.Sanitize()
	_, _ = c.Exec(ctx, "SET ROLE "+pgx.Identifier{admin}.Sanitize()+"; REVOKE ALL ON ALL TABLES IN SCHEMA public, sales FROM "+q+
		"; REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM "+q+"; REVOKE ALL ON SCHEMA sales FROM "+q+"; RESET ROLE")
	_, _ = c.Exec(ctx, "RESET ROLE")
	_, _ = c.Exec(ctx, "DROP OWNED BY "+q)
	_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+q)
}

func (e *env) dsn(user, password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: "127.0.0.1:" + strconv.Itoa(e.pg.Port()),
		Path: "/" + e.db, RawQuery: "sslmode=disable"}
	return u.String()
}

// exec runs SQL as the superuser.
func (e *env) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.su)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			err = fmt.Errorf("%w (%s)", err, pe.Detail)
		}
		t.Fatalf("%s: %v", sql, err)
	}
}

// query returns the first column of the first row, as the superuser.
func (e *env) query(t *testing.T, sql string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.su)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v *string
	if err := c.QueryRow(ctx, "SELECT ("+sql+")::text", args...).Scan(&v); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return "<no rows>"
		}
		t.Fatalf("%s: %v", sql, err)
	}
	if v == nil {
		return "<null>"
	}
	return *v
}

// grant stores a live grant and returns a caller of its node.
func (e *env) grant(t *testing.T, id string, ttl time.Duration) broker.Caller {
	t.Helper()
	g := auth.Grant{ID: id, Graph: "g", Run: "r1", Nodes: []string{"n"}, CreatedBy: "key:bot", CreatedAt: e.now, ExpiresAt: e.now.Add(ttl).Truncate(time.Second)}
	if err := e.grants.Create(context.Background(), g, map[string]string{"n": auth.HashKey("tg_" + id)}); err != nil {
		t.Fatal(err)
	}
	return broker.Caller{Context: broker.Context{Graph: "g", Node: "n", Run: "r1"}, Binding: &broker.Binding{GrantID: id, Graph: "g", Node: "n", ExpiresAt: g.ExpiresAt}}
}

// provisioner returns a provisioner over the admin login whose policy is
// access for every caller of graph g.
func (e *env) provisioner(t *testing.T, access *pgroles.Access, mod func(*pgroles.Config)) *pgroles.Provisioner {
	t.Helper()
	cfg := pgroles.Config{
		Target: "crm", DSN: e.adminDSN, Key: []byte("a shared role key, 32 bytes long"), StatementTimeout: 5 * time.Second,
		Deny: []string{"customers.card_number"}, Provision: true, Grants: e.grants, Logger: e.log,
		Policy: pgroles.PolicyFunc(func(c broker.Caller) (pgroles.Access, bool) {
			if c.Graph != "g" || access == nil {
				return pgroles.Access{}, false
			}
			return *access, true
		}),
		Now: func() time.Time { return e.now },
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := pgroles.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if _, err := p.Preflight(context.Background()); err != nil {
		t.Fatalf("preflight: %v", err)
	}
	return p
}

// login provisions the caller's role and connects as it.
func (e *env) login(t *testing.T, p *pgroles.Provisioner, c broker.Caller) (*pgx.Conn, string) {
	t.Helper()
	user, pw, release, err := p.UpstreamLogin(context.Background(), c)
	if err != nil {
		t.Fatalf("UpstreamLogin: %v", err)
	}
	conn, err := pgx.Connect(context.Background(), e.dsn(user, pw))
	if err != nil {
		release(err)
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() {
		conn.Close(context.Background())
		release(nil)
	})
	return conn, user
}

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// mustFail runs sql as conn and wants SQLSTATE code.
func mustFail(t *testing.T, conn *pgx.Conn, code, sql string) {
	t.Helper()
	_, err := conn.Exec(context.Background(), sql)
	if got := sqlstate(err); got != code {
		t.Errorf("%s: SQLSTATE %q (%v), want %s", sql, got, err, code)
	}
}

func mustRun(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Errorf("%s: %v", sql, err)
	}
}
