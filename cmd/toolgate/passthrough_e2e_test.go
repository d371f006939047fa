package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// grantTokens is a minted grant.
type grantTokens struct {
	GrantID string            `json:"grant_id"`
	Tokens  map[string]string `json:"tokens"`
}

// mintGrant mints a 5-minute grant of graph support-bot for one node.
func mintGrant(t *testing.T, e *e2eEnv, run, node string) grantTokens {
	t.Helper()
	return postGrant(t, e.URL, e.BotKey, fmt.Sprintf(`{"graph":"support-bot","run_id":%q,"nodes":[%q],"ttl":"5m"}`, run, node), node)
}

// postGrant mints the grant body asks for at the server at base with key,
// failing the test unless it holds a token for node.
func postGrant(t *testing.T, base, key, body, node string) grantTokens {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/grants", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var g grantTokens
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || json.Unmarshal(b, &g) != nil || g.Tokens[node] == "" {
		t.Fatalf("mint: %d %s", resp.StatusCode, b)
	}
	return g
}

// pgURL logs in to the passthrough with the grant's token for node.
func pgURL(g grantTokens, node string, port int) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/crm?sslmode=disable", g.GrantID, g.Tokens[node], port)
}

// runPsql runs one statement with psql and returns its trimmed output.
func runPsql(url, sql string) (string, string, error) {
	cmd := exec.Command("psql", url, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return strings.TrimSpace(out.String()), errb.String(), err
}

// TestE2EPassthrough: psql with a grant through the real binary reads
// masked rows, is refused on a write and on a table outside the node's
// policy, and every statement lands in the audit trail; the HTTP
// passthrough injects the target's credential, masks the body and refuses
// what the node may not do.
func TestE2EPassthrough(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql is not installed")
	}
	port := freePort(t)
	e := prepareE2E(t, func(y string) string {
		y = strings.Replace(y, "statement_timeout: 5s}", "statement_timeout: 5s, mask: {customers.card_number: last4}}", 1)
		y = strings.Replace(y, "      triage: {allow: [crm_find_customer, down_ping, api_*]}",
			"      triage:\n        allow: [crm_find_customer, down_ping, api_*]\n        passthrough:\n"+
				"          crm: {statements: [read], tables: [customers]}\n"+
				"          api: {methods: [GET], paths: [\"/text/*\"]}", 1)
		return y + fmt.Sprintf("passthrough:\n  postgres: [{listen: \"127.0.0.1:%d\", target: crm}]\n  http: [{path_prefix: /proxy/api, target: api}]\n", port)
	})
	e.tgProcess = e.start(t)

	grant := mintGrant(t, e, "pt-1", "triage")
	url := pgURL(grant, "triage", port)
	psql := func(sql string) (string, string, error) { return runPsql(url, sql) }

	out, stderr, err := psql("SELECT name, card_number FROM customers WHERE id = 1")
	if err != nil || out != "Ada Lovelace|************4242" {
		t.Fatalf("read: %q %s %v", out, stderr, err)
	}
	for name, sql := range map[string]string{
		"write":           "DELETE FROM customers",
		"table not named": "SELECT * FROM orders",
		"multi-statement": "SELECT 1 FROM customers; DELETE FROM customers",
		"side effect":     "SELECT set_config('default_transaction_read_only', 'off', false)",
	} {
		out, stderr, err := psql(sql)
		if err == nil || !strings.Contains(stderr, "ERROR") {
			t.Errorf("%s: not refused: out=%q stderr=%q", name, out, stderr)
		}
		if strings.Contains(stderr, grant.Tokens["triage"]) {
			t.Errorf("%s: the error echoes the token", name)
		}
	}
	// Nothing was deleted.
	conn, err := pgx.Connect(context.Background(), e.CRMDSN)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM customers").Scan(&n); err != nil || n != 3 {
		t.Errorf("customers after the refusals: %d %v", n, err)
	}
	conn.Close(context.Background())
	// A wrong token is refused at login.
	bad := strings.Replace(url, grant.Tokens["triage"], "tg_wrongwrongwrongwrongwrongwrongwrongwrong", 1)
	if err := exec.Command("psql", bad, "-X", "-c", "SELECT 1").Run(); err == nil {
		t.Error("a wrong token logged in")
	}

	// Every statement of the run is in the audit trail.
	export := exec.Command(toolgateBinary(t), "audit", "export", "--config", "toolgate.yaml", "--run", "pt-1", "--format", "jsonl")
	export.Dir, export.Env = e.Dir, append(export.Environ(), e.env...)
	trail, err := export.CombinedOutput()
	if err != nil {
		t.Fatalf("audit export: %v\n%s", err, trail)
	}
	if got := strings.Count(string(trail), `"passthrough_statement"`); got < 5 {
		t.Errorf("passthrough statements recorded: %d, want at least 5\n%s", got, trail)
	}
	for _, s := range []string{"4242424242424242", grant.Tokens["triage"]} {
		if strings.Contains(string(trail), s) {
			t.Errorf("the audit trail holds %q", s)
		}
	}

	// HTTP passthrough.
	get := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, e.URL+"/proxy/api"+path, nil)
		req.Header.Set("Authorization", "Bearer "+e.BotKey)
		req.Header.Set("X-Toolgate-Graph", "support-bot")
		req.Header.Set("X-Toolgate-Node", "triage")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := get(http.MethodGet, "/text/hello")
	if status != 200 || !strings.Contains(body, "you said hello") || strings.Contains(body, "4242424242424242") {
		t.Errorf("GET through the proxy: %d %q", status, body)
	}
	e.api.mu.Lock()
	hits := e.api.hits
	sawSecret := len(e.api.auth) > 0 && e.api.auth[len(e.api.auth)-1] == "Bearer "+e.APISecret
	e.api.mu.Unlock()
	if !sawSecret {
		t.Error("the target did not get the injected credential")
	}
	for _, c := range []struct{ method, path string }{{http.MethodPost, "/text/hello"}, {http.MethodGet, "/fail"}, {http.MethodGet, "/text/../fail"}} {
		if status, body := get(c.method, c.path); status != 403 && status != 400 {
			t.Errorf("%s %s: %d %q, want a refusal", c.method, c.path, status, body)
		}
	}
	e.api.mu.Lock()
	defer e.api.mu.Unlock()
	if e.api.hits != hits {
		t.Errorf("refused requests reached the target (%d more hits)", e.api.hits-hits)
	}
}

// TestE2EPassthroughApproval: a statement that passthrough policy sends for
// approval is not run; psql gets an error naming the approval; once another
// principal approves it, sending the same statement again runs it once.
func TestE2EPassthroughApproval(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql is not installed")
	}
	port := freePort(t)
	e := prepareE2E(t, func(y string) string {
		y = strings.Replace(y, "statement_timeout: 5s}", "statement_timeout: 5s, mask: {customers.card_number: last4}}", 1)
		y = strings.Replace(y, "      billing: {allow: [crm_list_orders]}",
			"      billing:\n        allow: [crm_list_orders]\n        passthrough:\n"+
				"          crm:\n            statements: [read]\n            tables: [customers]\n"+
				"            rules: [{when: \"statement.text.contains('card_number')\", effect: approve, approvers: [\"key:other\"]}]", 1)
		return y + fmt.Sprintf("approvals: {wait: 1s}\npassthrough:\n  postgres: [{listen: \"127.0.0.1:%d\", target: crm}]\n", port)
	})
	e.tgProcess = e.start(t)
	grant := mintGrant(t, e, "pt-2", "billing")
	url := pgURL(grant, "billing", port)
	psql := func(sql string) (string, string, error) { return runPsql(url, sql) }
	const stmt = "SELECT card_number FROM customers WHERE id = 2"

	// A statement without card_number needs no approval.
	if out, stderr, err := psql("SELECT name FROM customers WHERE id = 2"); err != nil || out != "Grace Hopper" {
		t.Fatalf("plain read: %q %s %v", out, stderr, err)
	}
	_, stderr, err := psql(stmt)
	if err == nil || !strings.Contains(stderr, "NOT run") {
		t.Fatalf("held statement: err=%v stderr=%q", err, stderr)
	}
	i := strings.Index(stderr, "ap_")
	if i < 0 {
		t.Fatalf("no approval id in %q", stderr)
	}
	id := stderr[i:]
	if j := strings.IndexFunc(id, func(r rune) bool { return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z') }); j > 0 {
		id = id[:j]
	}
	// The requester's own key may not approve; the listed approver may.
	if code, _, stderr := runClient(t, e.URL, e.BotKey, "approvals", "approve", id); code == 0 {
		t.Fatalf("the requester approved its own statement: %s", stderr)
	}
	if code, stdout, stderr := runClient(t, e.URL, e.OtherKey, "approvals", "approve", id, "--reason", "ok"); code != 0 {
		t.Fatalf("approve %s: exit %d\n%s%s", id, code, stdout, stderr)
	}
	out, stderr, err := psql(stmt)
	if err != nil || out != "************4444" {
		t.Fatalf("approved statement: %q %s %v", out, stderr, err)
	}
	// The approval is spent: the same statement again is not run on it.
	if out, stderr, err := psql(stmt); err == nil {
		t.Fatalf("the approval ran twice: %q %s", out, stderr)
	}
}
