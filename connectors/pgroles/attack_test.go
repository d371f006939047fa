package pgroles_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

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
