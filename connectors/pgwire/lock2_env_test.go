package pgwire_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/broker/brokertest"
	"github.com/toolgate/toolgate/connectors/pgroles"
	"github.com/toolgate/toolgate/connectors/pgwire"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/internal/testenv"
	"github.com/toolgate/toolgate/policy"
	"github.com/toolgate/toolgate/policy/mask"
	"github.com/toolgate/toolgate/tools"
)

// canaryCards are the card numbers of the canary rows; no byte of a
// passthrough result or error may carry them, reversed or in halves.
var canaryCards = []string{"4539148803436467", "5425233430109903"}

// lock2Env is a target with the README's minimal lock-2 setup (a
// non-superuser CREATEROLE admin holding the tables WITH GRANT OPTION,
// PUBLIC's TEMPORARY and large-object creation revoked), a real broker,
// policy, masker and grant store, and a proxy whose sessions run as
// per-grant roles.
type lock2Env struct {
	pg       *testenv.PG
	su, db   string
	adminDSN string
	srv      *pgwire.Server
	grantID  string
	token    string
	marker   string // a folder the server's OS user may write to
	roles    *pgroles.Provisioner
}

func lock2Graphs() map[string]config.Graph {
	return map[string]config.Graph{"shop": {
		Principals: []string{"key:bot"},
		Nodes: map[string]config.Node{
			"reader": {Passthrough: map[string]config.PassthroughPolicy{"crm": {Statements: []string{"read"}, Tables: []string{"customers"}}}},
		},
	}}
}

const lock2Schema = `
CREATE TABLE customers (id serial PRIMARY KEY, name text, card_number text);
CREATE TABLE notes (id int PRIMARY KEY, secret text);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int, total numeric);
CREATE SCHEMA sales;
CREATE TABLE sales.leads (id int PRIMARY KEY, email text);
CREATE VIEW customer_names AS SELECT id, name FROM customers;
CREATE FUNCTION touch_notes() RETURNS int LANGUAGE sql AS 'UPDATE notes SET secret = secret RETURNING 1';
INSERT INTO customers (name, card_number) VALUES ('Ada', '%s'), ('Bob', '%s'), ('Cy', NULL);
INSERT INTO notes VALUES (1, 'the secret note'), (2, 'another secret');
INSERT INTO orders (customer_id, total) VALUES (1, 10), (2, 20);
INSERT INTO sales.leads VALUES (1, 'lead@example.com');
ALTER TABLE customers SET (autovacuum_enabled = off);
ALTER TABLE notes SET (autovacuum_enabled = off);
ALTER TABLE orders SET (autovacuum_enabled = off);
ALTER TABLE sales.leads SET (autovacuum_enabled = off);
CREATE ROLE %[3]s LOGIN CREATEROLE PASSWORD 'admin-pw';
GRANT USAGE ON SCHEMA sales TO %[3]s WITH GRANT OPTION;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public, sales TO %[3]s WITH GRANT OPTION;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %[3]s WITH GRANT OPTION;
GRANT pg_signal_backend TO %[3]s;
REVOKE TEMPORARY ON DATABASE %[4]s FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION lo_create(oid), lo_creat(integer), lo_from_bytea(oid, bytea) FROM PUBLIC;`

// newLock2Env builds the target and the proxy. lock1 false switches the
// proxy's classifier off (every statement an allowed read); lock2 false
// runs sessions as the superuser, as passthrough did before lock 2 (the
// control that shows the observer can see a breach).
func newLock2Env(t *testing.T, lock1, lock2 bool) *lock2Env {
	t.Helper()
	ctx := context.Background()
	pg := testenv.Postgres(t)
	su := pg.CreateDB(t)
	e := &lock2Env{pg: pg, su: su, db: testenv.DBName(su), marker: pg.SocketDir()}
	e.seed(t)
	b, pol, gs := e.pipeline(t)
	roles, err := pgroles.New(pgroles.Config{Target: "crm", DSN: e.adminDSN, Key: []byte("lock2 test role key, 32 bytes.."),
		StatementTimeout: 3 * time.Second, Deny: []string{"customers.card_number"}, Provision: true,
		Policy: accessOf(pol, "crm"), Grants: gs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(roles.Close)
	// The test server allows prepared transactions, so that warning is
	// the only one expected (the sweeper rolls them back: see the corpus).
	if w, err := roles.Preflight(ctx); err != nil || len(w) != 1 || !strings.Contains(w[0], "max_prepared_transactions") {
		t.Fatalf("preflight: %v %v", w, err)
	}
	e.roles = roles
	pc := pgwire.Config{Listen: "127.0.0.1:0", Target: "crm", DSN: e.adminDSN, Login: roles, StartupTimeout: 5 * time.Second, MaxMessageBytes: 1 << 20}
	if !lock2 {
		pc.DSN, pc.Login = su, nil
	}
	srv, err := pgwire.New(pc, b, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if !lock1 {
		pgwire.SwitchOffLock1(srv)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	e.srv = srv
	return e
}

// accessOf is the policy's passthrough entry as the provisioner reads it
// (cmd/toolgate wires the same).
func accessOf(pol *policy.Engine, target string) pgroles.PolicyFunc {
	return func(c broker.Caller) (pgroles.Access, bool) {
		pa, ok := pol.PassthroughAccess(c, target)
		if !ok {
			return pgroles.Access{}, false
		}
		return pgroles.ClassAccess(pa.Statements, pa.Tables), true
	}
}

// seed creates the tables, canary rows and the non-superuser admin.
func (e *lock2Env) seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	admin := "adm_" + e.db
	if len(admin) > 63 {
		admin = admin[:63]
	}
	e.adminDSN = (&url.URL{Scheme: "postgres", User: url.UserPassword(admin, "admin-pw"), Host: "127.0.0.1:" + strconv.Itoa(e.pg.Port()),
		Path: "/" + e.db, RawQuery: "sslmode=disable"}).String()
	conn, err := pgx.Connect(ctx, e.su)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, fmt.Sprintf(lock2Schema, canaryCards[0], canaryCards[1], pgx.Identifier{admin}.Sanitize(), pgx.Identifier{e.db}.Sanitize()))
	if err != nil {
		t.Fatal(err)
	}
	// dblink when the contrib package is installed: its attacks then meet
	// the real function.
	_, _ = conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS dblink")
}

// pipeline is the real broker (SQLite grant store, policy, deny mask) with
// a read grant minted for node reader.
func (e *lock2Env) pipeline(t *testing.T) (*broker.Broker, *policy.Engine, *auth.SQLGrantStore) {
	t.Helper()
	ctx := context.Background()
	store, err := db.Open(ctx, db.Config{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "tg.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	gs, err := auth.NewSQLGrantStore(store)
	if err != nil {
		t.Fatal(err)
	}
	authn, err := auth.New(auth.Config{Grants: gs})
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := tools.NewCatalog()
	pol, err := policy.New(policy.Config{Graphs: lock2Graphs(), Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	grants, err := auth.NewGrants(auth.GrantsConfig{Store: gs, Graphs: pol})
	if err != nil {
		t.Fatal(err)
	}
	g, err := grants.Mint(ctx, broker.Principal{Subject: "key:bot", Method: broker.AuthAPIKey},
		auth.MintRequest{Graph: "shop", RunID: "run-1", Nodes: []string{"reader"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.grantID, e.token = g.GrantID, g.Tokens["reader"]
	m, err := mask.New(mask.Config{Targets: map[string]mask.TargetConfig{"crm": {Rules: map[string]string{"customers.card_number": mask.ActionDeny}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Live: broker.Live{Catalog: cat, Policy: pol, Masker: m, Routes: []broker.Route{{Kind: broker.KindSQL, Target: "crm"}}}, Auth: authn, Recorder: &brokertest.Recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	return b, pol, gs
}

func (e *lock2Env) addr() string { return e.srv.Addr().(*net.TCPAddr).String() }
