package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// lock2Config adds a read passthrough on crm for triage, its listener
// (with extra listener keys) and a deny column to the e2e config.
func lock2Config(port int, listenerKeys string) func(string) string {
	return func(y string) string {
		y = strings.Replace(y, "statement_timeout: 5s}", "statement_timeout: 5s, mask: {customers.card_number: deny}}", 1)
		y = strings.Replace(y, "      triage: {allow: [crm_find_customer, down_ping, api_*]}",
			"      triage:\n        allow: [crm_find_customer, down_ping, api_*]\n        passthrough:\n"+
				"          crm: {statements: [read], tables: [customers]}", 1)
		return y + fmt.Sprintf("passthrough:\n  postgres: [{listen: \"127.0.0.1:%d\", target: crm%s}]\n", port, listenerKeys)
	}
}

// TestE2EPassthroughRunsAsGrantRole: through the real binary a grant's
// session runs as its own provisioned role, which the database refuses the
// deny column; revoking the grant disables and drops the role within a few
// sweeps and ends the open session.
func TestE2EPassthroughRunsAsGrantRole(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql is not installed")
	}
	port := freePort(t)
	e := prepareE2E(t, lock2Config(port, ""))
	e.tgProcess = e.start(t)
	grant := mintGrant(t, e, "lock2-1", "triage")
	url := pgURL(grant, "triage", port)

	role, stderr, err := runPsql(url, "SELECT current_user")
	if err != nil || !strings.HasPrefix(role, "toolgate_pt_") {
		t.Fatalf("session user %q (%s, %v), want a provisioned role", role, stderr, err)
	}
	ctx := context.Background()
	open, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close(ctx)
	if _, err := open.Exec(ctx, "SELECT name FROM customers"); err != nil {
		t.Fatalf("granted read: %v", err)
	}
	su, err := pgx.Connect(ctx, e.CRMDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	var cardReadable bool
	if err := su.QueryRow(ctx, "SELECT has_column_privilege($1, 'customers', 'card_number', 'SELECT')", role).Scan(&cardReadable); err != nil || cardReadable {
		t.Errorf("the role may read the deny column: %v %v", cardReadable, err)
	}

	req, _ := http.NewRequest(http.MethodDelete, e.URL+"/v1/grants/"+grant.GrantID, nil)
	req.Header.Set("Authorization", "Bearer "+e.BotKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode >= 300 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var n int
		if err := su.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked grant's role %s still exists\n%s", role, e.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := open.Exec(ctx, "SELECT name FROM customers"); err == nil {
		t.Error("the revoked grant's open session still reads")
	}
}

// TestE2ELock2RefusesPrivilegedLogin: sessions_as_admin over a superuser
// dsn refuses to start, naming the fix; allow_privileged_login starts with
// a warning, which `toolgate check` prints too.
func TestE2ELock2RefusesPrivilegedLogin(t *testing.T) {
	port := freePort(t)
	e := prepareE2E(t, lock2Config(port, ", sessions_as_admin: true"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, toolgateBinary(t), "serve", "--config", "toolgate.yaml")
	cmd.Dir, cmd.Env = e.dir, append(cmd.Environ(), e.env...)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("serve started (or hung): %v\n%s", err, out)
	}
	for _, want := range []string{"passthrough.postgres[0]", "a superuser", "NOSUPERUSER", "allow_privileged_login"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the refusal lacks %q:\n%s", want, out)
		}
	}

	e2 := prepareE2E(t, lock2Config(freePort(t), ", sessions_as_admin: true, allow_privileged_login: true"))
	check := exec.Command(toolgateBinary(t), "check", "--config", "toolgate.yaml")
	check.Dir, check.Env = e2.dir, append(check.Environ(), e2.env...)
	out, err = check.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "warning: passthrough.postgres[0].allow_privileged_login") ||
		!strings.Contains(string(out), "warning: passthrough.postgres[0].sessions_as_admin") {
		t.Errorf("check: %v\n%s", err, out)
	}
	e2.tgProcess = e2.start(t)
	if log := e2.stderr.String(); !strings.Contains(log, "allow_privileged_login") || !strings.Contains(log, "lock 2 is off") {
		t.Errorf("serve did not warn:\n%s", log)
	}
}
