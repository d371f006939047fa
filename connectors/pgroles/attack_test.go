package pgroles_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/pgroles"
)

// TestAttackDeclaredCreateRoleGrantsItselfServerPrograms: on PostgreSQL
// 15 and older a CREATEROLE login may grant membership in any
// non-superuser role, the predefined ones included. A declared
// passthrough login with CREATEROLE but no privileged membership passed
// the privileged-login check, yet one statement (GRANT
// pg_execute_server_program TO CURRENT_USER, which a fooled lock 1 lets
// through) makes it able to run programs on the database host: lock 2 did
// not hold alone. Such a login is refused like a privileged one, at start
// and at its first session, naming the fix; on 16 and later CREATEROLE
// cannot grant predefined roles and the login is accepted.
func TestAttackDeclaredCreateRoleGrantsItselfServerPrograms(t *testing.T) {
	e := newEnv(t)
	cr := "cr_" + e.db[len(e.db)-6:]
	e.exec(t, "CREATE ROLE "+cr+" LOGIN CREATEROLE PASSWORD 'pw'")
	t.Cleanup(func() { e.exec(t, "DROP ROLE IF EXISTS "+cr) })
	version, _ := strconv.Atoi(e.query(t, "SELECT current_setting('server_version_num')"))

	// What the login itself can do once lock 1 is fooled.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dsn(cr, "pw"))
	if err != nil {
		t.Fatal(err)
	}
	_, grantErr := conn.Exec(ctx, "GRANT pg_execute_server_program TO CURRENT_USER")
	conn.Close(ctx)
	e.exec(t, "REVOKE pg_execute_server_program FROM "+cr)

	p, err := pgroles.New(pgroles.Config{Target: "crm", DSN: e.adminDSN, Provision: true, Grants: e.grants, Logger: e.log,
		Declared: []pgroles.Login{{User: cr, Password: "pw"}},
		Policy:   pgroles.PolicyFunc(func(broker.Caller) (pgroles.Access, bool) { return pgroles.Access{}, false })})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Preflight(ctx)
	if version >= 160000 {
		if grantErr == nil {
			t.Fatalf("PostgreSQL %d let a CREATEROLE login grant itself pg_execute_server_program", version)
		}
		if err != nil {
			t.Fatalf("a CREATEROLE login on PostgreSQL %d refused: %v", version, err)
		}
		return
	}
	if grantErr != nil {
		t.Fatalf("the escalation this test guards against did not work on PostgreSQL %d: %v", version, grantErr)
	}
	if err == nil || !strings.Contains(err.Error(), "CREATEROLE") || !strings.Contains(err.Error(), `ALTER ROLE "`+cr+`" NOCREATEROLE`) {
		t.Fatalf("a declared CREATEROLE login on PostgreSQL %d: Preflight = %v, want a refusal naming NOCREATEROLE", version, err)
	}
	sp := e.provisioner(t, &pgroles.Access{Read: true, Declared: &pgroles.Login{User: cr, Password: "pw"}}, nil)
	user, _, _, err := sp.UpstreamLogin(ctx, broker.Caller{Context: broker.Context{Graph: "g", Node: "n"}})
	if broker.CodeOf(err) != broker.CodeForbidden || !strings.Contains(err.Error(), "CREATEROLE") || user != "" {
		t.Fatalf("session as the CREATEROLE login: %q, %v", user, err)
	}
}

// TestAttackPublicPrivilegesReachProvisionedRoles: what PUBLIC may do,
// every provisioned role may do, whatever its grant: read a table granted
// to PUBLIC (or one of its columns), and run a SECURITY DEFINER function
// as its owner, which PostgreSQL lets PUBLIC execute by default and which
// a session reaches through attribute notation or an operator that lock 1
// cannot see; with the read-only default switched off, such a function
// writes. Preflight said nothing of it. It now warns of each, with the
// statement that removes it, and once those ran the role can do neither.
func TestAttackPublicPrivilegesReachProvisionedRoles(t *testing.T) {
	e := newEnv(t)
	e.exec(t, `CREATE TABLE pub (x text); INSERT INTO pub VALUES ('public row'); GRANT SELECT ON pub TO PUBLIC;
		CREATE TABLE pubcol (x text, y text); INSERT INTO pubcol VALUES ('col row', 'hidden'); GRANT SELECT (x) ON pubcol TO PUBLIC;
		CREATE FUNCTION touch(customers) RETURNS int LANGUAGE sql SECURITY DEFINER AS 'UPDATE notes SET secret = ''overwritten''; SELECT 1';
		ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO PUBLIC;`)
	p := e.provisioner(t, &pgroles.Access{Read: true, Tables: []string{"customers"}}, func(c *pgroles.Config) { c.Deny = nil })
	conn, _ := e.login(t, p, e.grant(t, "gr_pub", time.Hour))
	ctx := context.Background()

	mustRun(t, conn, "SELECT x FROM pub")
	mustRun(t, conn, "SELECT x FROM pubcol")
	mustRun(t, conn, "SET default_transaction_read_only = off")
	mustRun(t, conn, "SELECT c.touch FROM customers c") // attribute notation: no function call for lock 1
	if got := e.query(t, "SELECT secret FROM notes"); got != "overwritten" {
		t.Fatalf("the attack this test guards against did not write: notes = %q", got)
	}

	w, err := p.Preflight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(w, "\n")
	var fixes []string
	for _, want := range []string{"REVOKE ALL ON pub FROM PUBLIC", "REVOKE ALL (x) ON pubcol FROM PUBLIC",
		"REVOKE EXECUTE ON FUNCTION touch(customers) FROM PUBLIC",
		"ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public REVOKE ALL ON TABLES FROM PUBLIC"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
		fixes = append(fixes, want)
	}
	e.exec(t, strings.Join(fixes, "; "))
	if w, err := p.Preflight(ctx); err != nil || len(w) != 1 {
		t.Fatalf("after the fixes: warnings %v, %v", w, err)
	}
	e.exec(t, "UPDATE notes SET secret = 'the secret note'")
	fresh, _ := e.login(t, p, e.grant(t, "gr_pub2", time.Hour))
	mustFail(t, fresh, "42501", "SELECT x FROM pub")
	mustFail(t, fresh, "42501", "SELECT x FROM pubcol")
	mustRun(t, fresh, "SET default_transaction_read_only = off")
	mustFail(t, fresh, "42501", "SELECT c.touch FROM customers c")
	if got := e.query(t, "SELECT secret FROM notes"); got != "the secret note" {
		t.Fatalf("notes = %q", got)
	}
}

// TestAttackDenyColumnThroughView: a view runs with its owner's
// privileges, so a read grant whose tables glob (or an omitted tables
// list) also named a view over the table read the deny column through it
// (SELECT card_number FROM card_view), and lock 1 masks by the column's
// table, which is then the view. No view or materialized view that reads a
// table with a deny column, directly or through another view, is granted;
// views over other tables still are.
func TestAttackDenyColumnThroughView(t *testing.T) {
	e := newEnv(t)
	a := pgx.Identifier{e.admin}.Sanitize()
	e.exec(t, `CREATE VIEW card_view AS SELECT id, card_number FROM customers;
		CREATE VIEW card_rows AS SELECT to_jsonb(c) AS doc FROM customers c;
		CREATE VIEW card_nested AS SELECT * FROM card_view;
		CREATE MATERIALIZED VIEW card_mat AS SELECT id, card_number FROM customers;
		CREATE VIEW notes_view AS SELECT secret FROM notes;
		GRANT SELECT ON card_view, card_rows, card_nested, card_mat, notes_view TO `+a+` WITH GRANT OPTION;`)
	for _, tables := range [][]string{nil, {"customers", "card_*", "notes_view"}} {
		p := e.provisioner(t, &pgroles.Access{Read: true, Tables: tables}, nil)
		conn, _ := e.login(t, p, e.grant(t, "gr_view_"+strconv.Itoa(len(tables)), time.Hour))
		for _, sql := range []string{"SELECT card_number FROM card_view", "SELECT doc FROM card_rows", "SELECT card_number FROM card_nested",
			"SELECT card_number FROM card_mat", "SELECT card_number FROM customers"} {
			mustFail(t, conn, "42501", sql)
		}
		mustRun(t, conn, "SELECT name FROM customers")
		mustRun(t, conn, "SELECT secret FROM notes_view")
	}
}

// TestAttackDenyColumnThroughPartitionOrChild: PostgreSQL checks the
// privileges of the relation a statement names, and a partition or an
// inheritance child holds the parent's columns as its own. A deny on
// customers.card_number became column grants on customers only, while a
// tables glob (or an omitted tables list) that also named a partition or a
// child granted it whole: SELECT card_number FROM customers_eu showed the
// raw card. The deny now follows the column into every descendant, and into
// the parents of a table with a deny column, which show its rows.
func TestAttackDenyColumnThroughPartitionOrChild(t *testing.T) {
	e := newEnv(t)
	a := pgx.Identifier{e.admin}.Sanitize()
	e.exec(t, `CREATE TABLE customers_eu () INHERITS (customers);
		INSERT INTO customers_eu (name, card_number) VALUES ('Eve', '`+card+`');
		CREATE TABLE cards (id int, card_number text) PARTITION BY RANGE (id);
		CREATE TABLE cards_1 PARTITION OF cards FOR VALUES FROM (0) TO (100) PARTITION BY RANGE (id);
		CREATE TABLE cards_1a PARTITION OF cards_1 FOR VALUES FROM (0) TO (50);
		INSERT INTO cards VALUES (1, '`+card+`');
		CREATE TABLE vault (id int, pan text) PARTITION BY LIST (id);
		CREATE TABLE vault_1 PARTITION OF vault FOR VALUES IN (1);
		INSERT INTO vault VALUES (1, '`+card+`');
		GRANT SELECT ON customers_eu, cards, cards_1, cards_1a, vault, vault_1 TO `+a+` WITH GRANT OPTION;`)
	deny := []string{"customers.card_number", "cards.card_number", "vault_1.pan"}
	for _, tables := range [][]string{nil, {"customers*", "cards*", "vault*"}} {
		p := e.provisioner(t, &pgroles.Access{Read: true, Tables: tables}, func(c *pgroles.Config) { c.Deny = deny })
		conn, _ := e.login(t, p, e.grant(t, "gr_inh_"+strconv.Itoa(len(tables)), time.Hour))
		for _, sql := range []string{"SELECT card_number FROM customers_eu", "SELECT * FROM customers_eu", "SELECT card_number FROM cards_1",
			"SELECT card_number FROM cards_1a", "SELECT card_number FROM cards", "SELECT pan FROM vault_1", "SELECT pan FROM vault",
			"SELECT card_number FROM customers"} {
			mustFail(t, conn, "42501", sql)
		}
		for _, sql := range []string{"SELECT name FROM customers_eu", "SELECT id FROM cards_1a", "SELECT id FROM vault"} {
			mustRun(t, conn, sql)
		}
	}
}

// TestAttackTableGlobCaseFolded: provisioning matched the grant's table
// globs without case, while policy (lock 1) matches names as the parser
// gives them, case and all: tables [notes] granted SELECT on "Notes" and
// "NOTES" too, so with lock 1 fooled a read grant read other tables. Globs
// now match the catalog's names exactly.
func TestAttackTableGlobCaseFolded(t *testing.T) {
	e := newEnv(t)
	a := pgx.Identifier{e.admin}.Sanitize()
	e.exec(t, `CREATE TABLE "Notes" (secret text); INSERT INTO "Notes" VALUES ('case secret');
		CREATE TABLE "SALES_LEADS" (email text);
		CREATE SCHEMA "Sales"; CREATE TABLE "Sales".leads (email text);
		GRANT USAGE ON SCHEMA "Sales" TO `+a+` WITH GRANT OPTION;
		GRANT SELECT ON "Notes", "SALES_LEADS", "Sales".leads TO `+a+` WITH GRANT OPTION;`)
	p := e.provisioner(t, &pgroles.Access{Read: true, Tables: []string{"notes", "sales_*", "sales.*"}}, func(c *pgroles.Config) { c.Deny = nil })
	conn, _ := e.login(t, p, e.grant(t, "gr_case", time.Hour))
	mustRun(t, conn, "SELECT secret FROM notes")
	mustRun(t, conn, "SELECT email FROM sales.leads")
	mustFail(t, conn, "42501", `SELECT secret FROM "Notes"`)
	mustFail(t, conn, "42501", `SELECT email FROM "SALES_LEADS"`)
	mustFail(t, conn, "42501", `SELECT email FROM "Sales".leads`)
	// A glob spelled with the table's case names it.
	p2 := e.provisioner(t, &pgroles.Access{Read: true, Tables: []string{"Notes"}}, func(c *pgroles.Config) { c.Deny = nil })
	conn2, _ := e.login(t, p2, e.grant(t, "gr_case2", time.Hour))
	mustRun(t, conn2, `SELECT secret FROM "Notes"`)
	mustFail(t, conn2, "42501", "SELECT secret FROM notes")
}
