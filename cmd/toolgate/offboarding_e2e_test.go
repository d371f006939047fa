package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/broker/auth/oidctest"
	"github.com/toolgate/toolgate/internal/testenv"
)

// offboardingConfig: a Postgres store shared by two instances, OIDC users,
// a Kubernetes workload issuer, SCIM, admins, an owned configured key, a
// graph two people own and one only the contractor owns, a passthrough
// node and an approve rule. PASSTHROUGH_PORT differs per instance.
const offboardingConfig = `listen: 127.0.0.1:0
store: {driver: postgres, dsn: "${E2E_STORE_DSN}"}
auth:
  oidc: {issuer: "${E2E_OIDC_ISSUER}", audience: toolgate}
  workload:
    k8s: {issuer: "${E2E_K8S_ISSUER}", audience: toolgate, claims: {"/kubernetes.io/namespace": [agents]}}
  admins: ["key:admin"]
  auditors: ["key:admin"]
  scim: {token: "${E2E_SCIM_TOKEN}"}
  keys: {max_ttl: 30d}
  api_keys:
    - {name: admin, sha256: "${E2E_ADMIN_SHA256}"}
    - {name: bot, sha256: "${E2E_BOT_SHA256}", owner: "user:lead@example.com", expires: "2099-01-01"}
targets:
  crm: {kind: postgres, dsn: "${E2E_CRM_DSN}", read_only: true, max_rows: 100, statement_timeout: 5s}
  down: {kind: postgres, dsn: "postgres://nobody:pw@127.0.0.1:1/none?connect_timeout=2"}
  api: {kind: http, base_url: "${E2E_API_URL}", headers: {Authorization: "Bearer ${E2E_API_SECRET}"}, timeout: 3s}
tools_dir: ./tools
graphs:
  support-bot:
    principals: ["key:bot", "key:agent", "key:temp", "user:contractor@example.com", "workload:k8s:system:serviceaccount:agents:support-bot"]
    owners: ["user:contractor@example.com", "user:lead@example.com"]
    nodes:
      triage:
        allow: [crm_find_customer]
        passthrough: {crm: {statements: [read], tables: [customers]}}
      review:
        allow: [crm_find_customer]
        rules: [{tool: crm_find_customer, effect: approve, approvers: ["key:admin"]}]
  solo:
    principals: ["key:bot"]
    owners: ["user:contractor@example.com"]
    nodes:
      x: {allow: [crm_find_customer]}
approvals: {wait: 1s, timeout: 10m}
passthrough:
  postgres: [{listen: "127.0.0.1:PASSTHROUGH_PORT", target: crm}]
`

type offboardingEnv struct {
	*e2eEnv
	a, b            *tgProcess
	portB           int
	adminKey, scimT string
	idp, k8s        *oidctest.Issuer
}

func newOffboardingEnv(t *testing.T) *offboardingEnv {
	t.Helper()
	storeDSN := testenv.Postgres(t).CreateDB(t)
	idp := oidctest.New(t, oidctest.Options{})
	k8s := oidctest.New(t, oidctest.Options{})
	portA, portB := freePort(t), freePort(t)
	e := prepareE2E(t, func(string) string {
		return strings.Replace(offboardingConfig, "PASSTHROUGH_PORT", fmt.Sprint(portA), 1)
	})
	b := strings.Replace(offboardingConfig, "PASSTHROUGH_PORT", fmt.Sprint(portB), 1)
	if err := os.WriteFile(filepath.Join(e.dir, "toolgate-b.yaml"), []byte(b), 0o644); err != nil {
		t.Fatal(err)
	}
	adminKey, adminSum, _ := auth.NewAPIKey()
	o := &offboardingEnv{e2eEnv: e, portB: portB, adminKey: adminKey, scimT: "scim-" + strings.Repeat("s", 40), idp: idp, k8s: k8s}
	e.env = append(e.env, "E2E_STORE_DSN="+storeDSN, "E2E_OIDC_ISSUER="+idp.URL, "E2E_K8S_ISSUER="+k8s.URL,
		"E2E_SCIM_TOKEN="+o.scimT, "E2E_ADMIN_SHA256="+adminSum)
	o.a = e.start(t)
	o.b = startBinary(t, e.dir, e.env, "serve", "--config", "toolgate-b.yaml")
	e.tgProcess = o.a
	return o
}

// send makes one request and decodes a JSON answer.
func send(t *testing.T, method, url, token, body string, headers ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	out["_raw"] = string(b)
	return resp.StatusCode, out
}

// call calls crm_find_customer over the HTTP API.
func call(t *testing.T, p *tgProcess, token, graph, node string) (int, map[string]any) {
	t.Helper()
	h := []string{"Content-Type", "application/json"}
	if graph != "" {
		h = append(h, "X-Toolgate-Graph", graph, "X-Toolgate-Node", node, "X-Toolgate-Run", "run-1")
	}
	return send(t, "POST", p.URL+"/v1/tools/crm_find_customer:call", token, `{"email":"ada@example.com"}`, h...)
}

// mcpClient starts an mcp-go client session as token acting as the triage
// node of support-bot.
func mcpClient(t *testing.T, p *tgProcess, token string) *client.Client {
	t.Helper()
	c, err := client.NewStreamableHttpClient(p.URL+"/mcp", transport.WithHTTPHeaders(map[string]string{
		"Authorization": "Bearer " + token, "X-Toolgate-Graph": "support-bot", "X-Toolgate-Node": "triage", "X-Toolgate-Run": "run-mcp"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcpgo.InitializeRequest{}
	init.Params.ProtocolVersion = mcpgo.ProtocolVersion20251125
	init.Params.ClientInfo = mcpgo.Implementation{Name: "e2e", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return c
}

func mcpCall(c *client.Client) (*mcpgo.CallToolResult, error) {
	req := mcpgo.CallToolRequest{}
	req.Params.Name = "crm_find_customer"
	req.Params.Arguments = map[string]any{"email": "ada@example.com"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.CallTool(ctx, req)
}

// openStream opens the session's notification stream (GET /mcp) and
// returns a channel closed when the server ends it.
func openStream(t *testing.T, p *tgProcess, token, session string) <-chan struct{} {
	t.Helper()
	req, _ := http.NewRequest("GET", p.URL+"/mcp", nil)
	for k, v := range map[string]string{"Authorization": "Bearer " + token, "X-Toolgate-Graph": "support-bot", "X-Toolgate-Node": "triage",
		"Accept": "text/event-stream", "Mcp-Session-Id": session, "Mcp-Protocol-Version": mcpgo.ProtocolVersion20251125} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET /mcp: %d", resp.StatusCode)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, bufio.NewReader(resp.Body))
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return done
}

// within waits up to d for f to hold and returns how long it took.
func within(t *testing.T, d time.Duration, what string, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestE2EOffboarding runs keys, workload identity and offboarding through
// two real toolgate processes on one PostgreSQL store.
func TestE2EOffboarding(t *testing.T) {
	o := newOffboardingEnv(t)
	var agentKey string
	t.Run("admins manage keys; others get 403 and nothing changes", func(t *testing.T) {
		agentKey = o.keysByAdmin(t)
	})
	t.Run("a key revoked on one instance stops on the other at once", func(t *testing.T) {
		o.revocationAcrossInstances(t)
	})
	t.Run("a workload token mints per-run grants", func(t *testing.T) {
		o.workloadMintsGrants(t)
	})
	t.Run("disabling the owner through SCIM suspends everything it owns", func(t *testing.T) {
		o.offboardThroughSCIM(t, agentKey)
	})
	t.Run("the access review reads the store", func(t *testing.T) {
		code, stdout, stderr := runToolgate(t, o.dir, o.env, "access", "review", "--config", "toolgate.yaml", "--format", "json")
		if code != 0 {
			t.Fatalf("access review: exit %d: %s", code, stderr)
		}
		var r struct {
			Keys []struct {
				Name, Owner, Status string
				LastUsed            *time.Time `json:"last_used_at"`
			} `json:"keys"`
			Findings []struct{ Flag, Subject string } `json:"findings"`
		}
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, k := range r.Keys {
			if k.Name == "agent" && k.Owner == "user:contractor@example.com" && k.Status == "active" && k.LastUsed != nil {
				found = true
			}
		}
		if !found {
			t.Errorf("the review does not show key agent with its owner and last use:\n%s", stdout)
		}
		status, out := send(t, "GET", o.a.URL+"/v1/access/review?stale=30d", o.adminKey, "")
		if status != 200 || !strings.Contains(out["_raw"].(string), `"name":"agent"`) {
			t.Errorf("GET /v1/access/review: %d %v", status, out["_raw"])
		}
		if status, out = send(t, "GET", o.a.URL+"/v1/access/review", o.BotKey, ""); status != 403 || errCode(out) != "forbidden" {
			t.Errorf("review by a non-admin: %d %v", status, out["_raw"])
		}
	})
}

// keysByAdmin makes key agent (owned by the contractor) with the CLI and
// checks the refusals of everyone else.
func (o *offboardingEnv) keysByAdmin(t *testing.T) string {
	t.Helper()
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/keys", `{"name":"sneaky","owner":"user:x@example.com"}`},
		{"GET", "/v1/keys", ""},
		{"DELETE", "/v1/keys/bot", ""},
		{"POST", "/v1/principals/user:lead@example.com/disable", `{}`},
		{"GET", "/v1/principals", ""},
	} {
		status, out := send(t, r.method, o.a.URL+r.path, o.BotKey, r.body)
		if status != 403 || errCode(out) != "forbidden" {
			t.Errorf("%s %s by key:bot: %d %v", r.method, r.path, status, out["_raw"])
		}
	}
	if status, out := send(t, "POST", o.a.URL+"/v1/keys", o.adminKey, `{"name":"bad","owner":"group:ops"}`); status != 400 || errCode(out) != "invalid_arguments" {
		t.Errorf("a group owner: %d %v", status, out["_raw"])
	}
	code, stdout, stderr := runClient(t, o.a.URL, o.adminKey, "keys", "create", "--name", "agent", "--owner", "user:Contractor@Example.com", "--expires-in", "90d")
	if code != 0 {
		t.Fatalf("keys create: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	key := lines[len(lines)-1]
	if !strings.HasPrefix(key, "tgk_") || !strings.Contains(lines[0], "owned by user:contractor@example.com") {
		t.Fatalf("keys create printed:\n%s", stdout)
	}
	code, stdout, _ = runClient(t, o.a.URL, o.adminKey, "keys", "list")
	if code != 0 || !strings.Contains(stdout, "agent") || !strings.Contains(stdout, "user:contractor@example.com") || strings.Contains(stdout, key) {
		t.Fatalf("keys list:\n%s", stdout)
	}
	code, _, stderr = runClient(t, o.a.URL, o.BotKey, "keys", "create", "--name", "x", "--owner", "user:x@example.com")
	if code != 1 || !strings.Contains(stderr, "toolgate: keys create: forbidden: ") {
		t.Fatalf("keys create by a non-admin: exit %d: %s", code, stderr)
	}
	for _, p := range []*tgProcess{o.a, o.b} {
		if status, out := call(t, p, key, "support-bot", "triage"); status != 200 {
			t.Fatalf("the new key on %s: %d %v", p.URL, status, out["_raw"])
		}
	}
	return key
}

// revocationAcrossInstances: a key made and revoked on A, used on B by an
// open MCP session: B refuses its next request and ends its stream.
func (o *offboardingEnv) revocationAcrossInstances(t *testing.T) {
	status, out := send(t, "POST", o.a.URL+"/v1/keys", o.adminKey, `{"name":"temp","owner":"user:lead@example.com","expires_in":"1h"}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, out["_raw"])
	}
	key := out["key"].(string)
	c := mcpClient(t, o.b, key)
	if res, err := mcpCall(c); err != nil || res.IsError {
		t.Fatalf("mcp call before revocation: %v %+v", err, res)
	}
	stream := openStream(t, o.b, key, c.GetSessionId())
	if code, _, stderr := runClient(t, o.a.URL, o.adminKey, "keys", "revoke", "temp"); code != 0 {
		t.Fatalf("keys revoke: %s", stderr)
	}
	if status, out := call(t, o.b, key, "support-bot", "triage"); status != 401 || !strings.Contains(out["_raw"].(string), "revoked") {
		t.Fatalf("B after revocation on A: %d %v", status, out["_raw"])
	}
	if res, err := mcpCall(c); err == nil && !res.IsError {
		t.Fatalf("the open MCP session still calls: %+v", res)
	}
	took := within(t, time.Second, "B ends the revoked key's notification stream", func() bool {
		select {
		case <-stream:
			return true
		default:
			return false
		}
	})
	t.Logf("stream ended %s after the revocation answered", took)
}

// workloadMintsGrants: a Kubernetes service account token of namespace
// agents mints a grant and its token calls; another namespace's token is
// refused.
func (o *offboardingEnv) workloadMintsGrants(t *testing.T) {
	sa := o.k8s.Token(o.k8s.ServiceAccountClaims("agents", "support-bot", "toolgate", time.Hour))
	status, out := send(t, "POST", o.b.URL+"/v1/grants", sa, `{"graph":"support-bot","run_id":"wl-1","nodes":["triage"],"ttl":"10m"}`)
	if status != 201 {
		t.Fatalf("mint with the service account token: %d %v", status, out["_raw"])
	}
	tok := out["tokens"].(map[string]any)["triage"].(string)
	if status, out = call(t, o.a, tok, "", ""); status != 200 {
		t.Fatalf("the grant's token: %d %v", status, out["_raw"])
	}
	other := o.k8s.Token(o.k8s.ServiceAccountClaims("default", "support-bot", "toolgate", time.Hour))
	if status, out = send(t, "POST", o.b.URL+"/v1/grants", other, `{"graph":"support-bot","run_id":"wl-2","nodes":["triage"],"ttl":"10m"}`); status != 401 {
		t.Fatalf("another namespace: %d %v", status, out["_raw"])
	}
}

// offboardThroughSCIM: the contractor owns key agent and minted a grant;
// an open MCP session (B), an open passthrough session (B) and a pending
// approval (A) use them. The identity provider deactivates the contractor
// over SCIM on A: every one is refused and the sessions are closed, on
// both instances, and the audit trail says why.
func (o *offboardingEnv) offboardThroughSCIM(t *testing.T, agentKey string) {
	ctx := context.Background()
	person := o.idp.Token(map[string]any{"sub": "c-1", "email": "contractor@example.com", "email_verified": true})
	status, out := send(t, "POST", o.b.URL+"/v1/grants", person, `{"graph":"support-bot","run_id":"run-off","nodes":["triage"],"ttl":"30m"}`)
	if status != 201 {
		t.Fatalf("the contractor mints: %d %v", status, out["_raw"])
	}
	grantID, grantTok := out["grant_id"].(string), out["tokens"].(map[string]any)["triage"].(string)
	pg, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/crm?sslmode=disable", grantID, grantTok, o.portB))
	if err != nil {
		t.Fatalf("passthrough login: %v", err)
	}
	defer pg.Close(ctx)
	var name string
	if err := pg.QueryRow(ctx, "SELECT name FROM customers WHERE id = 1").Scan(&name); err != nil || name != "Ada Lovelace" {
		t.Fatalf("passthrough read: %q %v", name, err)
	}
	c := mcpClient(t, o.b, agentKey)
	if res, err := mcpCall(c); err != nil || res.IsError {
		t.Fatalf("mcp call: %v %+v", err, res)
	}
	stream := openStream(t, o.b, agentKey, c.GetSessionId())
	status, out = call(t, o.a, agentKey, "support-bot", "review")
	approvalID, _ := out["approval_id"].(string)
	if status != 202 || approvalID == "" {
		t.Fatalf("approval request: %d %v", status, out["_raw"])
	}
	if status, out = call(t, o.a, o.BotKey, "solo", "x"); status != 200 {
		t.Fatalf("key:bot on graph solo before: %d %v", status, out["_raw"])
	}

	scim := func(method, path, body string) (int, map[string]any) {
		return send(t, method, o.a.URL+"/scim/v2"+path, o.scimT, body, "Content-Type", "application/scim+json")
	}
	status, out = scim("GET", `/Users?filter=userName+eq+%22contractor%40example.com%22`, "")
	if status != 200 || out["totalResults"] != float64(0) {
		t.Fatalf("scim lookup: %d %v", status, out["_raw"])
	}
	status, out = scim("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"contractor@example.com","active":true,"emails":[{"value":"contractor@example.com","primary":true}]}`)
	if status != 201 {
		t.Fatalf("scim create: %d %v", status, out["_raw"])
	}
	userID := out["id"].(string)
	if res, err := mcpCall(c); err != nil || res.IsError {
		t.Fatalf("provisioning an active user suspended something: %v %+v", err, res)
	}
	status, out = scim("PATCH", "/Users/"+userID, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`)
	if status != 200 || out["active"] != false {
		t.Fatalf("scim deactivate: %d %v", status, out["_raw"])
	}
	disabledAt := time.Now()

	// On A, which took the SCIM request, everything is refused at once.
	for _, tc := range []struct {
		name                string
		token, graph, node  string
		status              int
		code, messagePhrase string
	}{
		{"the contractor's key", agentKey, "support-bot", "triage", 403, "owner_disabled", "key:agent is suspended because user:contractor@example.com"},
		{"the contractor", person, "support-bot", "triage", 403, "owner_disabled", "principal user:contractor@example.com is disabled"},
		{"the grant the contractor minted", grantTok, "", "", 403, "owner_disabled", "was revoked because user:contractor@example.com"},
		{"a graph only the contractor owns", o.BotKey, "solo", "x", 403, "owner_disabled", `graph "solo" is suspended`},
	} {
		status, out := call(t, o.a, tc.token, tc.graph, tc.node)
		msg, _ := out["error"].(map[string]any)["message"].(string)
		if status != tc.status || errCode(out) != tc.code || !strings.Contains(msg, tc.messagePhrase) {
			t.Errorf("%s on A: %d %v", tc.name, status, out["_raw"])
		}
	}
	if status, out = call(t, o.a, o.BotKey, "support-bot", "triage"); status != 200 {
		t.Errorf("key:bot, owned by someone else, on a graph with another live owner: %d %v", status, out["_raw"])
	}
	status, out = send(t, "GET", o.a.URL+"/v1/approvals/"+approvalID, o.adminKey, "")
	if status != 200 || out["status"] != "cancelled" {
		t.Errorf("the pending approval: %d %v", status, out["_raw"])
	}
	if status, out = send(t, "POST", o.a.URL+"/v1/approvals/"+approvalID+"/approve", o.adminKey, `{"reason":"ok"}`); status == 200 {
		t.Errorf("the refused approval could still be approved: %v", out["_raw"])
	}

	// On B, within a second: the stream and the passthrough session end,
	// and every credential is refused.
	took := within(t, time.Second, "B ends the MCP stream and the passthrough session", func() bool {
		select {
		case <-stream:
		default:
			return false
		}
		return pg.Ping(ctx) != nil
	})
	t.Logf("B closed the sessions %s after the SCIM answer", took)
	if status, out = call(t, o.b, grantTok, "", ""); status != 403 || errCode(out) != "owner_disabled" {
		t.Errorf("the grant on B: %d %v", status, out["_raw"])
	}
	if res, err := mcpCall(c); err == nil && !res.IsError {
		t.Errorf("the MCP session on B still calls: %+v", res)
	}
	if _, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/crm?sslmode=disable", grantID, grantTok, o.portB)); err == nil {
		t.Error("a new passthrough session with the revoked grant logged in")
	}
	o.auditShowsWhy(t, disabledAt, grantID)

	// Enabling restores the key (it has not expired), not the grant.
	if code, stdout, stderr := runClient(t, o.a.URL, o.adminKey, "principals", "enable", "user:contractor@example.com"); code != 0 || !strings.Contains(stdout, "enabled") {
		t.Fatalf("principals enable: exit %d %s %s", code, stdout, stderr)
	}
	within(t, 2*time.Second, "B admits the key again", func() bool { s, _ := call(t, o.b, agentKey, "support-bot", "triage"); return s == 200 })
	if status, out = call(t, o.b, grantTok, "", ""); status != 403 || errCode(out) != "owner_disabled" {
		t.Errorf("the revoked grant after enable: %d %v", status, out["_raw"])
	}
}

// auditShowsWhy: the store holds principal_disabled, the revoked grant, the
// refused approval, the closed sessions and the refusals with
// owner_disabled; no call of the suspended credentials ran after the
// disable.
func (o *offboardingEnv) auditShowsWhy(t *testing.T, after time.Time, grantID string) {
	t.Helper()
	code, stdout, stderr := runToolgate(t, o.dir, o.env, "audit", "export", "--config", "toolgate.yaml")
	if code != 0 {
		t.Fatalf("audit export: %s", stderr)
	}
	kinds := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var rec struct {
			Event struct {
				Kind      string         `json:"kind"`
				Time      time.Time      `json:"time"`
				Principal string         `json:"principal"`
				Status    string         `json:"status"`
				ErrorCode string         `json:"error_code"`
				Detail    map[string]any `json:"detail"`
			} `json:"event"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		ev := rec.Event
		switch {
		case ev.Kind == "principal_disabled" && ev.Detail["subject"] == "user:contractor@example.com" && ev.Detail["source"] == "scim":
			kinds["principal_disabled"]++
		case ev.Kind == "grant_revoked" && ev.Detail["reason"] == "owner_disabled":
			kinds["grant_revoked"]++
		case ev.Kind == "approval_decided" && ev.ErrorCode == "owner_disabled":
			kinds["approval_refused"]++
		case ev.Kind == "access_refused" && ev.ErrorCode == "owner_disabled":
			kinds["access_refused"]++
		case ev.Kind == "sessions_closed":
			kinds["sessions_closed"]++
		case ev.Kind == "passthrough_session_closed" && ev.Principal == "grant:"+grantID:
			// toolgate closes it (reason owner_disabled: …) unless the
			// role sweeper, which retires the revoked grant's database
			// role, ended its upstream first (reason "client
			// disconnected"); grant_revoked says why either way.
			kinds["passthrough_closed"]++
			t.Logf("passthrough session closed: %v", ev.Detail["reason"])
		case ev.Kind == "tool_call" && ev.Status == "ok" && ev.Time.After(after) && (ev.Principal == "key:agent" || strings.HasPrefix(ev.Principal, "grant:")):
			t.Errorf("a suspended credential's call ran: %s", line)
		}
	}
	for _, k := range []string{"principal_disabled", "grant_revoked", "approval_refused", "access_refused", "sessions_closed", "passthrough_closed"} {
		if kinds[k] == 0 {
			t.Errorf("the audit trail has no %s record: %v", k, kinds)
		}
	}
}
