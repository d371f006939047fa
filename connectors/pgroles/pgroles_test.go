package pgroles_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/pgroles"
	"github.com/toolgate/toolgate/internal/config"
)

func TestRolePrefixIsReservedInConfig(t *testing.T) {
	if pgroles.RolePrefix != config.ReservedRolePrefix {
		t.Fatalf("pgroles.RolePrefix %q != config.ReservedRolePrefix %q", pgroles.RolePrefix, config.ReservedRolePrefix)
	}
}

// TestReadGrantRole: a read grant's role reads exactly its tables, not the
// deny column, writes nothing and reaches nothing server-side, with the
// settings and attributes the grant implies. The admin is a non-superuser
// CREATEROLE login (the README's minimal setup).
func TestReadGrantRole(t *testing.T) {
	e := newEnv(t)
	p := e.provisioner(t, &pgroles.Access{Read: true, Tables: []string{"customers", "sales.*"}}, nil)
	c := e.grant(t, "gr_read", time.Hour)
	conn, role := e.login(t, p, c)
	ctx := context.Background()

	var name string
	if err := conn.QueryRow(ctx, "SELECT name FROM customers WHERE id = 1").Scan(&name); err != nil || name != "Ada" {
		t.Fatalf("granted read: %q, %v", name, err)
	}
	mustRun(t, conn, "SELECT count(*) FROM customers")
	mustRun(t, conn, "SELECT email FROM sales.leads")
	for _, sql := range []string{
		"SELECT card_number FROM customers", "SELECT * FROM customers", "SELECT reverse(card_number) FROM customers",
		"SELECT substr(card_number, 1, 4) FROM customers", "SELECT id FROM customers WHERE card_number LIKE '4%'",
		"SELECT to_jsonb(c) FROM customers c", "SELECT * FROM notes", "SELECT * FROM customer_names", "SELECT * FROM orders",
		"SELECT * FROM pg_authid", "SELECT pg_read_file('/etc/passwd')", "COPY (SELECT 1) TO PROGRAM 'true'",
		"COPY customers (id) TO '/tmp/toolgate-out'", "SELECT ts_stat('SELECT to_tsvector(secret) FROM notes')",
	} {
		mustFail(t, conn, "42501", sql)
	}
	// Writes fail on privileges even with the read-only default switched off.
	mustRun(t, conn, "SET default_transaction_read_only = off")
	for _, sql := range []string{"UPDATE customers SET name = 'x'", "INSERT INTO customers (name) VALUES ('x')", "DELETE FROM customers",
		"TRUNCATE customers", "CREATE TABLE public.x (a int)", "SELECT nextval('customers_id_seq')", "SELECT id FROM customers FOR UPDATE"} {
		mustFail(t, conn, "42501", sql)
	}
	mustFail(t, conn, "42501", "SET ROLE "+pgx.Identifier{e.admin}.Sanitize())
	mustFail(t, conn, "42501", "SET SESSION AUTHORIZATION postgres")
	if got := e.query(t, "SELECT count(*) FROM customers WHERE name = 'Ada'"); got != "1" {
		t.Errorf("customers changed: %s", got)
	}

	fresh, _ := e.login(t, p, c)
	var ro, timeout string
	if err := fresh.QueryRow(ctx, "SELECT current_setting('default_transaction_read_only'), current_setting('statement_timeout')").Scan(&ro, &timeout); err != nil {
		t.Fatal(err)
	}
	if ro != "on" || timeout != "5s" {
		t.Errorf("role settings: read only %q, statement_timeout %q", ro, timeout)
	}
	attrs := e.query(t, `SELECT concat_ws(',', rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolconnlimit,
		rolvaliduntil = $2::timestamptz, (SELECT count(*) FROM pg_auth_members WHERE member = r.oid)) FROM pg_roles r WHERE rolname = $1`, role, c.Binding.ExpiresAt)
	if attrs != "f,f,f,f,f,f,10,t,0" {
		t.Errorf("role attributes = %s", attrs)
	}
	if m := e.query(t, "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", role); !strings.Contains(m, `"grant":"gr_read"`) {
		t.Errorf("marker = %s", m)
	}
}

// TestWriteGrantRole: write adds INSERT/UPDATE/DELETE (and the serial's
// sequence), still never on the deny column, still not on other tables.
func TestWriteGrantRole(t *testing.T) {
	e := newEnv(t)
	p := e.provisioner(t, &pgroles.Access{Read: true, Write: true, Tables: []string{"customers"}}, nil)
	conn, _ := e.login(t, p, e.grant(t, "gr_write", time.Hour))
	mustRun(t, conn, "INSERT INTO customers (name) VALUES ('Cy')")
	mustRun(t, conn, "UPDATE customers SET name = 'Ady' WHERE id = 1")
	mustRun(t, conn, "DELETE FROM customers WHERE name = 'Cy'")
	mustFail(t, conn, "42501", "UPDATE customers SET card_number = '1' WHERE id = 2")
	mustFail(t, conn, "42501", "INSERT INTO customers (name, card_number) VALUES ('x', '1')")
	mustFail(t, conn, "42501", "DELETE FROM customers WHERE card_number LIKE '4%'")
	mustFail(t, conn, "42501", "INSERT INTO notes VALUES (2, 'x')")
	if got := e.query(t, "SELECT current_setting('default_transaction_read_only')"); got != "off" {
		t.Logf("(superuser's own setting: %s)", got)
	}
	var ro string
	if err := conn.QueryRow(context.Background(), "SELECT current_setting('default_transaction_read_only')").Scan(&ro); err != nil || ro != "off" {
		t.Errorf("a write grant's role is read-only by default: %q %v", ro, err)
	}
}

// TestReadOnlyTargetWithholdsWrites: a read_only target's roles never
// write, whatever the grant says.
func TestReadOnlyTargetWithholdsWrites(t *testing.T) {
	e := newEnv(t)
	p := e.provisioner(t, &pgroles.Access{Read: true, Write: true, Tables: []string{"customers"}}, func(c *pgroles.Config) { c.ReadOnly = true })
	conn, _ := e.login(t, p, e.grant(t, "gr_ro", time.Hour))
	mustRun(t, conn, "SET default_transaction_read_only = off")
	mustFail(t, conn, "42501", "UPDATE customers SET name = 'x'")
}

// TestTablesOmitted: no tables list grants every table of the non-system
// schemas, and still nothing of the system catalogs PUBLIC cannot read.
func TestTablesOmitted(t *testing.T) {
	e := newEnv(t)
	p := e.provisioner(t, &pgroles.Access{Read: true}, func(c *pgroles.Config) { c.Deny = nil })
	conn, _ := e.login(t, p, broker.Caller{Context: broker.Context{Graph: "g", Node: "api"}})
	for _, sql := range []string{"SELECT * FROM customers", "SELECT * FROM notes", "SELECT * FROM sales.leads", "SELECT * FROM customer_names"} {
		mustRun(t, conn, sql)
	}
	mustFail(t, conn, "42501", "SELECT * FROM pg_authid")
}

// TestRoleSharedAndCached: sessions of one grant node share one role,
// provisioned once; another node of the same grant gets its own.
func TestRoleSharedAndCached(t *testing.T) {
	e := newEnv(t)
	p := e.provisioner(t, &pgroles.Access{Read: true, Tables: []string{"customers"}}, nil)
	c := e.grant(t, "gr_shared", time.Hour)
	_, r1 := e.login(t, p, c)
	// A change behind toolgate's back is not undone while the role is
	// cached: proof that the second login provisions nothing.
	e.exec(t, "ALTER ROLE "+pgx.Identifier{r1}.Sanitize()+" CONNECTION LIMIT 3")
	_, r2 := e.login(t, p, c)
	if r1 != r2 {
		t.Fatalf("two sessions of one grant node got roles %s and %s", r1, r2)
	}
	if got := e.query(t, "SELECT rolconnlimit FROM pg_roles WHERE rolname = $1", r1); got != "3" {
		t.Errorf("the second session provisioned the role again (connlimit %s)", got)
	}
	other := c
	other.Node = "m"
	if _, r3 := e.login(t, p, other); r3 == r1 {
		t.Errorf("another node of the grant shares role %s", r3)
	}
}

// TestSweepRetiresRevokedGrant: within one sweep of a revocation the role
// can log in no more, holds no privilege, its open session is ended, and
// the role is dropped.
func TestSweepRetiresRevokedGrant(t *testing.T) {
	e := newEnv(t)
	p := e.provisioner(t, &pgroles.Access{Read: true, Tables: []string{"customers"}}, nil)
	c := e.grant(t, "gr_revoked", time.Hour)
	conn, role := e.login(t, p, c)
	keep, _ := e.login(t, p, e.grant(t, "gr_kept", time.Hour))
	if err := e.grants.Revoke(context.Background(), "gr_revoked", e.now); err != nil {
		t.Fatal(err)
	}
	if err := p.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), "SELECT name FROM customers"); err == nil {
		t.Error("the revoked grant's open session still reads")
	}
	waitDropped(t, e, p, role)
	mustRun(t, keep, "SELECT name FROM customers")
}

func waitDropped(t *testing.T, e *env, p *pgroles.Provisioner, role string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.query(t, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role) != "0" {
		if time.Now().After(deadline) {
			t.Fatalf("role %s not dropped: %s", role, e.query(t, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role))
		}
		time.Sleep(50 * time.Millisecond)
		if err := p.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSweepRetiresExpiredGrant: the sweeper's clock decides expiry.
func TestSweepRetiresExpiredGrant(t *testing.T) {
	e := newEnv(t)
	p := e.provisioner(t, &pgroles.Access{Read: true, Tables: []string{"customers"}}, nil)
	user, pw, release, err := p.UpstreamLogin(context.Background(), e.grant(t, "gr_exp", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	release(nil)
	if err := p.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.query(t, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", user); got != "true" {
		t.Fatalf("a live grant's role was retired: %s", got)
	}
	e.now = e.now.Add(2 * time.Minute)
	waitDropped(t, e, p, user)
	if _, err := pgx.Connect(context.Background(), e.dsn(user, pw)); err == nil {
		t.Error("the expired grant's role still logs in")
	}
}

// TestSweepAfterCrash: a new instance (no memory of the roles) cleans up
// what a crashed one left: a revoked grant's role and an idle node
// identity's role; a live grant's role stays.
func TestSweepAfterCrash(t *testing.T) {
	e := newEnv(t)
	acc := &pgroles.Access{Read: true, Tables: []string{"customers"}}
	crashed := e.provisioner(t, acc, nil)
	var roles []string
	for _, c := range []broker.Caller{e.grant(t, "gr_gone", time.Hour), {Context: broker.Context{Graph: "g", Node: "api"}}, e.grant(t, "gr_live", time.Hour)} {
		user, _, _, err := crashed.UpstreamLogin(context.Background(), c) // never released
		if err != nil {
			t.Fatal(err)
		}
		roles = append(roles, user)
	}
	if err := e.grants.Revoke(context.Background(), "gr_gone", e.now); err != nil {
		t.Fatal(err)
	}
	fresh := e.provisioner(t, acc, nil)
	waitDropped(t, e, fresh, roles[0])
	waitDropped(t, e, fresh, roles[1])
	if got := e.query(t, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", roles[2]); got != "true" {
		t.Errorf("the live grant's role: %s", got)
	}
}

// TestSweepNeverTouchesOtherRoles: roles without toolgate's marker, with a
// forged one, or provisioned for another target survive every sweep, and
// a provisioned name already taken by a foreign role is refused.
func TestSweepNeverTouchesOtherRoles(t *testing.T) {
	e := newEnv(t)
	suffix := e.db[len(e.db)-6:]
	plain, forged, other := "toolgate_pt_plain"+suffix, "toolgate_pt_forged"+suffix, "app_"+suffix
	e.exec(t, "CREATE ROLE "+plain+" LOGIN; CREATE ROLE "+forged+" NOLOGIN; CREATE ROLE "+other+" NOLOGIN")
	e.exec(t, "COMMENT ON ROLE "+forged+` IS 'toolgate passthrough role v1 {"target":"crm","db":"`+e.db+`","graph":"g","node":"n"}'`)
	t.Cleanup(func() { e.exec(t, "DROP ROLE IF EXISTS "+plain+", "+forged+", "+other) })
	p := e.provisioner(t, &pgroles.Access{Read: true}, nil)
	otherTarget := e.provisioner(t, &pgroles.Access{Read: true}, func(c *pgroles.Config) { c.Target = "billing" })
	_, _, _, err := otherTarget.UpstreamLogin(context.Background(), broker.Caller{Context: broker.Context{Graph: "g", Node: "api"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := p.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.query(t, "SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2, $3) OR shobj_description(oid, 'pg_authid') LIKE '%\"target\":\"billing\"%'", plain, forged, other); got != "4" {
		t.Errorf("a sweep touched a role that is not this target's: %s of 4 left", got)
	}

	// A foreign role squatting a provisioned name is never taken over.
	c := e.grant(t, "gr_squat", time.Hour)
	user, _, release, err := p.UpstreamLogin(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	release(nil)
	su, err := pgx.Connect(context.Background(), e.su)
	if err != nil {
		t.Fatal(err)
	}
	dropRole(context.Background(), su, e.admin, user)
	su.Close(context.Background())
	e.exec(t, "CREATE ROLE "+user+" LOGIN")
	fresh := e.provisioner(t, &pgroles.Access{Read: true}, nil)
	if _, _, _, err := fresh.UpstreamLogin(context.Background(), c); err == nil || broker.CodeOf(err) != broker.CodeTargetUnavailable {
		t.Errorf("a foreign role of the same name was provisioned over: %v", err)
	}
	if got := e.query(t, "SELECT count(*) FROM pg_roles WHERE rolname = $1 AND shobj_description(oid, 'pg_authid') IS NULL", user); got != "1" {
		t.Errorf("the foreign role was changed")
	}
}

// TestForeignPrivilegesFailClosed: a privilege or membership someone else
// gave a provisioned role, which the admin cannot take back, makes
// provisioning fail rather than run a session with it.
func TestForeignPrivilegesFailClosed(t *testing.T) {
	e := newEnv(t)
	acc := &pgroles.Access{Read: true, Tables: []string{"customers"}}
	p := e.provisioner(t, acc, nil)
	c := e.grant(t, "gr_foreign", time.Hour)
	user, _, release, err := p.UpstreamLogin(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	release(nil)
	for _, sql := range []string{"GRANT SELECT ON notes TO " + user, "GRANT pg_read_server_files TO " + user} {
		e.exec(t, sql)
		fresh := e.provisioner(t, acc, nil)
		_, _, _, err := fresh.UpstreamLogin(context.Background(), c)
		// Either the admin could take it back (PG < 16 lets CREATEROLE
		// revoke memberships) or provisioning refuses.
		held := e.query(t, `SELECT has_table_privilege($1, 'notes', 'SELECT') OR pg_has_role($1, 'pg_read_server_files', 'MEMBER')`, user)
		if err == nil && held == "true" {
			t.Errorf("after %q provisioning succeeded and the role keeps it", sql)
		}
		e.exec(t, "REVOKE SELECT ON notes FROM "+user+"; REVOKE pg_read_server_files FROM "+user)
	}
}

// TestPolicyChangeReprovisions: a reloaded policy reaches the role of an
// open session at the next sweep.
func TestPolicyChangeReprovisions(t *testing.T) {
	e := newEnv(t)
	acc := &pgroles.Access{Read: true, Tables: []string{"customers"}}
	p := e.provisioner(t, acc, nil)
	conn, _ := e.login(t, p, e.grant(t, "gr_reload", time.Hour))
	mustFail(t, conn, "42501", "SELECT * FROM notes")
	*acc = pgroles.Access{Read: true, Tables: []string{"notes"}}
	if err := p.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustRun(t, conn, "SELECT * FROM notes")
	mustFail(t, conn, "42501", "SELECT name FROM customers")
}

// TestInstancesShareRoles: two instances with the same role key provision
// and log in to one grant's role concurrently without a failure.
func TestInstancesShareRoles(t *testing.T) {
	e := newEnv(t)
	acc := &pgroles.Access{Read: true, Tables: []string{"customers"}}
	a, b := e.provisioner(t, acc, nil), e.provisioner(t, acc, nil)
	c := e.grant(t, "gr_race", time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 8; i++ {
		for _, p := range []*pgroles.Provisioner{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				user, pw, release, err := p.UpstreamLogin(context.Background(), c)
				if err != nil {
					errs <- err
					return
				}
				conn, err := pgx.Connect(context.Background(), e.dsn(user, pw))
				release(err)
				if err != nil {
					errs <- err
					return
				}
				conn.Close(context.Background())
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestPasswordsNeverLogged: nothing logged while provisioning, logging in
// and sweeping carries a role's password.
func TestPasswordsNeverLogged(t *testing.T) {
	e := newEnv(t)
	p := e.provisioner(t, &pgroles.Access{Read: true, Tables: []string{"customers"}}, nil)
	c := e.grant(t, "gr_logs", time.Hour)
	_, pw, release, err := p.UpstreamLogin(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	release(nil)
	_ = e.grants.Revoke(context.Background(), "gr_logs", e.now)
	_ = p.Sweep(context.Background())
	for _, entry := range e.logs.All() {
		if strings.Contains(entry.Message, pw) || strings.Contains(strings.Join(fieldsOf(entry.ContextMap()), " "), pw) {
			t.Errorf("a log entry holds the password: %s", entry.Message)
		}
	}
	if len(e.logs.All()) == 0 {
		t.Error("nothing was logged; the check proves nothing")
	}
}

func fieldsOf(m map[string]any) []string {
	var out []string
	for k, v := range m {
		out = append(out, k, strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(toString(v), "\n", " "), "\t", " ")))
	}
	return out
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if e, ok := v.(error); ok {
		return e.Error()
	}
	return ""
}
