package pgroles_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/pgroles"
)

// TestPreflightRefusals: a listener whose sessions would run as a
// privileged login, or that must provision roles with an admin that
// cannot, refuses to start with an error that names the fix; the opt-out
// turns the privileged refusal into a warning.
func TestPreflightRefusals(t *testing.T) {
	e := newEnv(t)
	s := e.db[len(e.db)-6:]
	lim, su, mid, rd := "lim_"+s, "su_"+s, "mid_"+s, "rd_"+s
	e.exec(t, `CREATE ROLE `+lim+` LOGIN PASSWORD 'pw'; CREATE ROLE `+su+` LOGIN SUPERUSER PASSWORD 'pw';
		CREATE ROLE `+mid+` NOLOGIN; GRANT pg_read_server_files TO `+mid+`;
		CREATE ROLE `+rd+` LOGIN NOINHERIT PASSWORD 'pw'; GRANT `+mid+` TO `+rd)
	t.Cleanup(func() { e.exec(t, "DROP ROLE IF EXISTS "+strings.Join([]string{rd, mid, su, lim}, ", ")) })

	for _, c := range []struct {
		name  string
		mod   func(*pgroles.Config)
		wants []string // "" = no error
	}{
		{"admin cannot create roles", func(c *pgroles.Config) { c.DSN = e.dsn(lim, "pw") }, []string{"cannot create roles", "CREATEROLE", "sessions_as_admin"}},
		{"declared roles only", func(c *pgroles.Config) {
			c.DSN, c.Provision, c.Declared = e.dsn(lim, "pw"), false, []pgroles.Login{{User: lim, Password: "pw"}}
		}, nil},
		{"declared superuser", func(c *pgroles.Config) { c.Declared = []pgroles.Login{{User: su, Password: "pw"}} },
			[]string{"a superuser", `ALTER ROLE "` + su + `" NOSUPERUSER`, "allow_privileged_login"}},
		{"declared superuser allowed", func(c *pgroles.Config) {
			c.Declared, c.AllowPrivileged = []pgroles.Login{{User: su, Password: "pw"}}, true
		}, nil},
		{"declared member through another role", func(c *pgroles.Config) { c.Declared = []pgroles.Login{{User: rd, Password: "pw"}} },
			[]string{"a member of pg_read_server_files", `REVOKE pg_read_server_files FROM "` + rd + `"`, "or from the role it holds it through"}},
		{"declared wrong password", func(c *pgroles.Config) { c.Declared = []pgroles.Login{{User: lim, Password: "nope"}} },
			[]string{"cannot log in"}},
		{"sessions as a superuser admin", func(c *pgroles.Config) { c.DSN, c.SessionsAsAdmin, c.Provision = e.su, true, false },
			[]string{"sessions would run as postgres", "a superuser"}},
		{"sessions as an unprivileged admin", func(c *pgroles.Config) { c.DSN, c.SessionsAsAdmin, c.Provision = e.dsn(lim, "pw"), true, false }, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := pgroles.Config{Target: "crm", DSN: e.adminDSN, Provision: true, Grants: e.grants, Logger: e.log,
				Policy: pgroles.PolicyFunc(func(broker.Caller) (pgroles.Access, bool) { return pgroles.Access{}, false })}
			c.mod(&cfg)
			p, err := pgroles.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			_, err = p.Preflight(context.Background())
			if c.wants == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("started")
			}
			if errors.Is(err, pgroles.ErrUnreachable) {
				t.Fatalf("a definite refusal reported as unreachable: %v", err)
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "pw") && !strings.Contains(err.Error(), "password") {
				t.Errorf("error may carry a password: %v", err)
			}
		})
	}
}

// TestDeclaredPrivilegedRefusedAtSession: a privileged declared login that
// appears after start (a reload) refuses the session before it connects.
func TestDeclaredPrivilegedRefusedAtSession(t *testing.T) {
	e := newEnv(t)
	su := "su2_" + e.db[len(e.db)-6:]
	e.exec(t, "CREATE ROLE "+su+" LOGIN SUPERUSER PASSWORD 'pw'")
	t.Cleanup(func() { e.exec(t, "DROP ROLE IF EXISTS "+su) })
	p := e.provisioner(t, &pgroles.Access{Read: true, Declared: &pgroles.Login{User: su, Password: "pw"}}, nil)
	user, _, _, err := p.UpstreamLogin(context.Background(), broker.Caller{Context: broker.Context{Graph: "g", Node: "n"}})
	if broker.CodeOf(err) != broker.CodeForbidden || !strings.Contains(err.Error(), "superuser") || user != "" {
		t.Fatalf("login %q, err = %v", user, err)
	}
	// Only toolgate's own check logged in as it, and that connection ends.
	deadline := time.Now().Add(5 * time.Second)
	for e.query(t, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", su) != "0" {
		if time.Now().After(deadline) {
			t.Fatal("a connection of the privileged login stays open")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPreflightWarnsOfPublicWrites: PUBLIC's CREATE on a schema, TEMPORARY
// on the database and large-object creation are reported with the
// statement that removes each.
func TestPreflightWarnsOfPublicWrites(t *testing.T) {
	e := newEnv(t)
	p := e.provisioner(t, &pgroles.Access{Read: true}, nil)
	// The test server allows prepared transactions (other tests need
	// them); that warning stands even on a hardened database.
	w, err := p.Preflight(context.Background())
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "set max_prepared_transactions = 0") {
		t.Fatalf("hardened database: warnings %v, %v", w, err)
	}
	e.exec(t, "GRANT CREATE ON SCHEMA public TO PUBLIC; GRANT TEMPORARY ON DATABASE "+e.db+" TO PUBLIC; GRANT EXECUTE ON FUNCTION lo_create(oid) TO PUBLIC")
	w, err = p.Preflight(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(w, "\n")
	for _, want := range []string{"REVOKE CREATE ON SCHEMA public FROM PUBLIC", "REVOKE TEMPORARY ON DATABASE " + e.db + " FROM PUBLIC", "REVOKE EXECUTE ON FUNCTION lo_create(oid) FROM PUBLIC"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
}

// TestUnreachableTarget: a target down at start is not a refusal; its
// sessions are refused as target_unavailable until the checks pass.
func TestUnreachableTarget(t *testing.T) {
	e := newEnv(t)
	p, err := pgroles.New(pgroles.Config{Target: "crm", DSN: "postgres://x:y@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", Provision: true,
		Grants: e.grants, Policy: pgroles.PolicyFunc(func(broker.Caller) (pgroles.Access, bool) { return pgroles.Access{Read: true}, true })})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.Preflight(ctx); !errors.Is(err, pgroles.ErrUnreachable) {
		t.Fatalf("preflight: %v", err)
	}
	if _, _, _, err := p.UpstreamLogin(ctx, broker.Caller{Context: broker.Context{Graph: "g", Node: "n"}}); broker.CodeOf(err) != broker.CodeTargetUnavailable {
		t.Fatalf("session: %v", err)
	}
}
