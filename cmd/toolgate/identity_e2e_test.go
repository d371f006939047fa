package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	_ "modernc.org/sqlite"

	"github.com/toolgate/toolgate/broker/auth/oidctest"
)

// identityConfig serves testdata/e2e's tools with OIDC, two graphs, a scope
// schema, a bound argument, a nested node path and an approve rule.
const identityConfig = `listen: 127.0.0.1:0
store: {driver: sqlite, path: ./toolgate.db}
auth:
  oidc: {issuer: "${E2E_OIDC_ISSUER}", audience: toolgate, groups_claim: groups}
  api_keys:
    - {name: bot, sha256: "${E2E_BOT_SHA256}"}
    - {name: other, sha256: "${E2E_OTHER_SHA256}"}
targets:
  crm: {kind: postgres, dsn: "${E2E_CRM_DSN}", read_only: true, max_rows: 100, statement_timeout: 5s}
  down: {kind: postgres, dsn: "postgres://nobody:pw@127.0.0.1:1/none?connect_timeout=2"}
  api: {kind: http, base_url: "${E2E_API_URL}", headers: {Authorization: "Bearer ${E2E_API_SECRET}"}, timeout: 3s}
tools_dir: ./tools
graphs:
  support-bot:
    principals: ["key:bot", "group:langgraph-operators"]
    scope_schema: {type: object, properties: {customer_id: {type: integer}}, additionalProperties: false}
    nodes:
      triage: {allow: [crm_find_customer, down_ping, api_*]}
      billing: {allow: [crm_list_orders]}
      refund:
        allow: [crm_list_orders]
        bind: {crm_list_orders: {customer_id: scope.customer_id}}
      supervisor/research: {allow: [crm_find_customer]}
      review:
        allow: [crm_find_customer]
        rules:
          - {tool: crm_find_customer, effect: approve, approvers: ["group:finance"], min_approvals: 1}
  other-graph:
    principals: ["key:other"]
    nodes:
      x: {allow: [crm_find_customer]}
approvals: {wait: 1s, timeout: 10m}
limits: {max_body_bytes: 4096}
`

type identityEnv struct {
	*e2eEnv
	idp *oidctest.Issuer
}

func newIdentityE2E(t *testing.T) *identityEnv {
	t.Helper()
	idp := oidctest.New(t, oidctest.Options{})
	e := newE2EWith(t, identityConfig, "E2E_OIDC_ISSUER="+idp.URL)
	return &identityEnv{e2eEnv: e, idp: idp}
}

// operator is an OIDC token of a member of group:langgraph-operators.
func (e *identityEnv) user(email string, groups ...string) string {
	claims := map[string]any{"sub": email, "email": email}
	if groups != nil {
		claims["groups"] = groups
	}
	return e.idp.Token(claims)
}

// okCalls counts the tool calls the audit trail records as having run.
func (e *identityEnv) okCalls(t *testing.T) int {
	t.Helper()
	return e.auditCount(t, `kind = 'tool_call' AND status = 'ok'`)
}

func (e *identityEnv) auditCount(t *testing.T, where string, args ...any) int {
	t.Helper()
	return auditCount(t, e.Dir, where, args...)
}

// auditCount counts the audit records matching where in the SQLite store
// toolgate.db of dir.
func auditCount(t *testing.T, dir, where string, args ...any) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "toolgate.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM audit_events WHERE `+where, args...).Scan(&n); err != nil {
		t.Fatalf("read the audit trail: %v", err)
	}
	return n
}

// lastCall returns the newest tool_call audit record.
func (e *identityEnv) lastCall(t *testing.T) map[string]any {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.Dir, "toolgate.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ev string
	if err := db.QueryRow(`SELECT event FROM audit_events WHERE kind = 'tool_call' ORDER BY seq DESC LIMIT 1`).Scan(&ev); err != nil {
		t.Fatalf("read the audit trail: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(ev), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// request sends a request with the given headers and decodes a JSON answer.
func (e *identityEnv) request(t *testing.T, method, path, body string, headers ...string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, e.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]any{"_raw": string(b)}
	if len(bytes.TrimSpace(b)) > 0 && json.Unmarshal(b, &out) != nil {
		out["_raw"] = string(b)
	}
	out["_raw"] = string(b)
	return resp.StatusCode, out, resp.Header
}

// mint asks POST /v1/grants with credential key.
func (e *identityEnv) mint(t *testing.T, key, body string) (int, map[string]any) {
	t.Helper()
	status, out, _ := e.request(t, "POST", "/v1/grants", body, "Authorization", "Bearer "+key)
	return status, out
}

func (e *identityEnv) mintOK(t *testing.T, body string) (string, map[string]string) {
	t.Helper()
	return e.mintWith(t, e.BotKey, body)
}

// mcpPost sends one raw JSON-RPC initialize to /mcp, to see the HTTP answer
// of the MCP front door to a bad credential.
func (e *identityEnv) mcpPost(t *testing.T, auth string) (int, http.Header) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`
	req, _ := http.NewRequest("POST", e.URL+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-Toolgate-Graph", "support-bot")
	req.Header.Set("X-Toolgate-Node", "triage")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestE2EIdentityOIDC: an OIDC user whose group is a principal of the graph
// lists and calls tools over HTTP and MCP; every bad token is a 401 with the
// RFC 9728 challenge and runs nothing; a good token of the wrong principal
// is a 403 and runs nothing.
func TestE2EIdentityOIDC(t *testing.T) {
	e := newIdentityE2E(t)
	op := e.user("alice@example.com", "langgraph-operators")

	status, out, _ := e.request(t, "GET", "/v1/tools", "", "Authorization", "Bearer "+op, "X-Toolgate-Graph", "support-bot", "X-Toolgate-Node", "triage")
	if status != 200 || !strings.Contains(out["_raw"].(string), `"crm_find_customer"`) || strings.Contains(out["_raw"].(string), "crm_list_orders") {
		t.Fatalf("OIDC tool list: %d %s", status, out["_raw"])
	}
	if status, out := e.callHTTP(t, op, "triage", "crm_find_customer", `{"email":"ada@example.com"}`); status != 200 {
		t.Fatalf("OIDC call: %d %s", status, out["_raw"])
	}
	s := dialMCPGo(t, e.URL, op, "triage", "")
	if got := s.list(t); !slices.Contains(got, "crm_find_customer") {
		t.Errorf("MCP tools for an OIDC operator = %v", got)
	}
	if isErr, _, text := s.call(t, "crm_find_customer", map[string]any{"email": "grace@example.com"}); isErr {
		t.Fatalf("MCP call as an OIDC operator: %s", text)
	}
	ran := e.okCalls(t)
	if ran != 2 {
		t.Fatalf("audit trail has %d successful calls, want 2", ran)
	}

	meta := `resource_metadata="` + e.URL + `/.well-known/oauth-protected-resource"`
	for _, c := range []struct {
		name, auth  string
		status      int
		code, error string
	}{
		{"expired", "Bearer " + e.idp.Token(map[string]any{"email": "alice@example.com", "groups": []string{"langgraph-operators"}, "iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()}), 401, "unauthenticated", "invalid_token"},
		{"wrong audience", "Bearer " + e.idp.Token(map[string]any{"email": "alice@example.com", "groups": []string{"langgraph-operators"}, "aud": "someone-else"}), 401, "unauthenticated", "invalid_token"},
		{"wrong issuer", "Bearer " + e.idp.Token(map[string]any{"email": "alice@example.com", "groups": []string{"langgraph-operators"}, "iss": "https://evil.example.com"}), 401, "unauthenticated", "invalid_token"},
		{"bad signature", "Bearer " + e.idp.Token(map[string]any{"email": "alice@example.com", "groups": []string{"langgraph-operators"}}, oidctest.ForeignKey()), 401, "unauthenticated", "invalid_token"},
		{"alg none", "Bearer " + e.idp.Token(map[string]any{"email": "alice@example.com", "groups": []string{"langgraph-operators"}}, oidctest.AlgNone()), 401, "unauthenticated", "invalid_token"},
		{"HS256 with the public key", "Bearer " + e.idp.Token(map[string]any{"email": "alice@example.com", "groups": []string{"langgraph-operators"}}, oidctest.HS256WithPublicKey()), 401, "unauthenticated", "invalid_token"},
		{"unknown key id", "Bearer " + e.idp.Token(map[string]any{"email": "alice@example.com"}, oidctest.KeyID("nope")), 401, "unauthenticated", "invalid_token"},
		{"garbage", "Bearer not-a-token", 401, "unauthenticated", "invalid_token"},
		{"basic scheme", "Basic YWxpY2U6cHc=", 401, "unauthenticated", "invalid_request"},
		{"bearer without token", "Bearer", 401, "unauthenticated", "invalid_request"},
		{"no credential", "", 401, "unauthenticated", ""},
		{"no groups claim", "Bearer " + e.user("alice@example.com"), 403, "forbidden", ""},
		{"group of no graph", "Bearer " + e.user("alice@example.com", "finance"), 403, "forbidden", ""},
		{"API key of another graph", "Bearer " + e.OtherKey, 403, "forbidden", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var extra []string
			if c.auth != "" {
				extra = []string{"Authorization", c.auth}
			}
			status, out := e.callHTTP(t, "", "triage", "crm_find_customer", `{"email":"ada@example.com"}`, extra...)
			if status != c.status || errCode(out) != c.code {
				t.Fatalf("HTTP: %d %s, want %d %s: %s", status, errCode(out), c.status, c.code, out["_raw"])
			}
			mstatus, mh := e.mcpPost(t, c.auth)
			if mstatus != c.status {
				t.Errorf("MCP: %d, want %d", mstatus, c.status)
			}
			for door, www := range map[string]string{"HTTP": out["_www"].(string), "MCP": mh.Get("WWW-Authenticate")} {
				if c.status != 401 {
					continue
				}
				if !strings.HasPrefix(www, "Bearer ") || !strings.Contains(www, meta) {
					t.Errorf("%s WWW-Authenticate = %q, want the resource metadata challenge", door, www)
				}
				if c.error != "" && !strings.Contains(www, `error="`+c.error+`"`) {
					t.Errorf("%s WWW-Authenticate = %q, want error=%q", door, www, c.error)
				}
				if c.error == "" && strings.Contains(www, "error=") {
					t.Errorf("%s WWW-Authenticate = %q names an error without a token", door, www)
				}
			}
			if tok := strings.TrimPrefix(c.auth, "Bearer "); len(tok) > 8 && strings.Contains(out["_raw"].(string), tok) {
				t.Errorf("the answer echoes the token")
			}
			if got := e.okCalls(t); got != ran {
				t.Errorf("a refused call ran: %d successful calls, want %d", got, ran)
			}
		})
	}
	if strings.Contains(e.stderr.String(), op) {
		t.Errorf("the server log holds an OIDC token")
	}
}

// TestE2EGrants mints grants over HTTP and uses their tokens over MCP and
// HTTP: refusals of the mint, bound arguments, contradicting headers,
// revocation and expiry.
func TestE2EGrants(t *testing.T) {
	e := newIdentityE2E(t)
	for _, c := range []struct {
		name, key, body string
		status          int
		code, field     string
	}{
		{"not a principal of the graph", e.OtherKey, `{"graph":"support-bot","run_id":"r1","nodes":["triage"],"ttl":"15m"}`, 403, "forbidden", ""},
		{"OIDC user outside principals", e.user("mallory@example.com", "finance"), `{"graph":"support-bot","run_id":"r1","nodes":["triage"]}`, 403, "forbidden", ""},
		{"scope violates scope_schema", e.BotKey, `{"graph":"support-bot","run_id":"r1","nodes":["refund"],"scope":{"customer_id":"one"}}`, 400, "invalid_arguments", "customer_id"},
		{"scope with an unknown field", e.BotKey, `{"graph":"support-bot","run_id":"r1","nodes":["refund"],"scope":{"tenant":"x"}}`, 400, "invalid_arguments", "tenant"},
		{"node not in the graph", e.BotKey, `{"graph":"support-bot","run_id":"r1","nodes":["triage","payroll"]}`, 400, "invalid_arguments", "nodes[1]"},
		{"no run", e.BotKey, `{"graph":"support-bot","nodes":["triage"]}`, 400, "invalid_arguments", "run_id"},
		{"bad ttl", e.BotKey, `{"graph":"support-bot","run_id":"r1","nodes":["triage"],"ttl":"forever"}`, 400, "invalid_arguments", "ttl"},
		{"no credential", "", `{"graph":"support-bot","run_id":"r1","nodes":["triage"]}`, 401, "unauthenticated", ""},
	} {
		t.Run("mint "+c.name, func(t *testing.T) {
			status, out := e.mint(t, c.key, c.body)
			e2 := out["error"].(map[string]any)
			if status != c.status || e2["code"] != c.code {
				t.Fatalf("%d %v, want %d %s", status, out["_raw"], c.status, c.code)
			}
			if c.field != "" && !strings.Contains(fmt.Sprint(e2["field"], " ", e2["message"]), c.field) {
				t.Errorf("error %v does not name %s", e2, c.field)
			}
		})
	}
	if n := e.auditCount(t, `kind = 'grant_minted'`); n != 0 {
		t.Fatalf("refused mints recorded %d grants", n)
	}

	id, tokens := e.mintOK(t, `{"graph":"support-bot","run_id":"run-7","thread_id":"th-1","nodes":["triage","refund","supervisor/research"],"ttl":"15m","scope":{"customer_id":1}}`)
	if len(tokens) != 3 || !strings.HasPrefix(tokens["triage"], "tg_") {
		t.Fatalf("tokens = %v", tokens)
	}
	status, out, _ := e.request(t, "GET", "/v1/grants/"+id, "", "Authorization", "Bearer "+e.BotKey)
	if status != 200 || out["status"] != "active" || out["run_id"] != "run-7" {
		t.Fatalf("get: %d %s", status, out["_raw"])
	}
	for _, tok := range tokens {
		if strings.Contains(out["_raw"].(string), tok) {
			t.Fatalf("GET /v1/grants/{id} returned a token")
		}
	}
	if status, out, _ := e.request(t, "GET", "/v1/grants/"+id, "", "Authorization", "Bearer "+e.OtherKey); status != 404 {
		t.Errorf("another graph's principal reads the grant: %d %s", status, out["_raw"])
	}
	status, out, _ = e.request(t, "GET", "/v1/grants?graph=support-bot&run=run-7", "", "Authorization", "Bearer "+e.BotKey)
	if status != 200 || !strings.Contains(out["_raw"].(string), id) {
		t.Errorf("list: %d %s", status, out["_raw"])
	}

	t.Run("node token over HTTP and MCP", func(t *testing.T) {
		// No context headers at all: the token says graph, node and run.
		status, out, _ := e.request(t, "POST", "/v1/tools/crm_find_customer:call", `{"email":"ada@example.com"}`, "Authorization", "Bearer "+tokens["triage"])
		if status != 200 {
			t.Fatalf("HTTP: %d %s", status, out["_raw"])
		}
		if ev := e.lastCall(t); ev["node"] != "triage" || ev["run"] != "run-7" || ev["auth_method"] != "grant" {
			t.Errorf("audit of a grant call = %v", ev)
		}
		s := dialMCPGo(t, e.URL, tokens["supervisor/research"], "supervisor/research", "")
		if isErr, _, text := s.call(t, "crm_find_customer", map[string]any{"email": "ada@example.com"}); isErr {
			t.Fatalf("MCP with a nested node path: %s", text)
		}
		if ev := e.lastCall(t); ev["node"] != "supervisor/research" {
			t.Errorf("node path = %v", ev["node"])
		}
	})

	t.Run("bound argument", func(t *testing.T) {
		s := dialMCPGo(t, e.URL, tokens["refund"], "refund", "")
		res, err := s.raw().ListTools(context.Background(), mcpgo.ListToolsRequest{})
		if err != nil || len(res.Tools) != 1 {
			t.Fatalf("tools/list: %v %v", res, err)
		}
		if _, ok := res.Tools[0].InputSchema.Properties["customer_id"]; ok || slices.Contains(res.Tools[0].InputSchema.Required, "customer_id") {
			t.Errorf("tools/list shows the bound argument: %+v", res.Tools[0].InputSchema)
		}
		isErr, st, text := s.call(t, "crm_list_orders", map[string]any{})
		if isErr || st["row_count"] != float64(2) {
			t.Fatalf("bound call: %v %v %s", isErr, st, text)
		}
		ran := e.okCalls(t)
		isErr, st, _ = s.call(t, "crm_list_orders", map[string]any{"customer_id": 2})
		if !isErr || errCode(st) != "forbidden" || !strings.Contains(fmt.Sprint(st), "customer_id") {
			t.Errorf("override over MCP: %v %v", isErr, st)
		}
		status, out := e.callHTTP(t, tokens["refund"], "refund", "crm_list_orders", `{"customer_id":2}`)
		if status != 403 || !strings.Contains(out["_raw"].(string), "customer_id") {
			t.Errorf("override over HTTP: %d %s", status, out["_raw"])
		}
		if ev := e.lastCall(t); ev["status"] != "denied" {
			t.Errorf("audit of the override = %v", ev)
		}
		if got := e.okCalls(t); got != ran {
			t.Errorf("an overridden call ran")
		}
	})

	t.Run("contradicting headers", func(t *testing.T) {
		ran := e.okCalls(t)
		for _, h := range [][]string{
			{"X-Toolgate-Node", "billing"},
			{"X-Toolgate-Run", "run-8"},
			{"X-Toolgate-Graph", "other-graph"},
		} {
			status, out, _ := e.request(t, "POST", "/v1/tools/crm_find_customer:call", `{"email":"ada@example.com"}`, "Authorization", "Bearer "+tokens["triage"], h[0], h[1])
			if status != 403 || errCode(out) != "forbidden" || !strings.Contains(out["_raw"].(string), "contradicts") {
				t.Errorf("%s: %d %s", h[0], status, out["_raw"])
			}
			mstatus, _ := func() (int, http.Header) {
				req, _ := http.NewRequest("POST", e.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				req.Header.Set("Authorization", "Bearer "+tokens["triage"])
				req.Header.Set(h[0], h[1])
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode, resp.Header
			}()
			if mstatus != 403 {
				t.Errorf("MCP %s: %d, want 403", h[0], mstatus)
			}
		}
		if got := e.okCalls(t); got != ran {
			t.Errorf("a contradicted call ran")
		}
	})

	t.Run("revoked", func(t *testing.T) {
		s := dialMCPGo(t, e.URL, tokens["triage"], "triage", "")
		if isErr, _, text := s.call(t, "crm_find_customer", map[string]any{"email": "ada@example.com"}); isErr {
			t.Fatalf("before revocation: %s", text)
		}
		status, out, _ := e.request(t, "DELETE", "/v1/grants/"+id, "", "Authorization", "Bearer "+e.BotKey)
		if status != 204 {
			t.Fatalf("revoke: %d %s", status, out["_raw"])
		}
		ran := e.okCalls(t)
		req := mcpgo.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = "crm_find_customer", map[string]any{"email": "ada@example.com"}
		if res, err := s.raw().CallTool(context.Background(), req); err == nil {
			t.Errorf("MCP call in an open session after revocation: %+v", res)
		}
		status, out = e.callHTTP(t, tokens["triage"], "triage", "crm_find_customer", `{"email":"ada@example.com"}`)
		if status != 401 || !strings.Contains(out["_www"].(string), `error="invalid_token"`) || !strings.Contains(out["_raw"].(string), "revoked") {
			t.Errorf("HTTP after revocation: %d %s %s", status, out["_www"], out["_raw"])
		}
		if mstatus, _ := e.mcpPost(t, "Bearer "+tokens["refund"]); mstatus != 401 {
			t.Errorf("MCP initialize with a revoked token: %d", mstatus)
		}
		if got := e.okCalls(t); got != ran {
			t.Errorf("a revoked token ran a call")
		}
		_, out, _ = e.request(t, "GET", "/v1/grants/"+id, "", "Authorization", "Bearer "+e.BotKey)
		if out["status"] != "revoked" {
			t.Errorf("grant after revocation: %s", out["_raw"])
		}
		if n := e.auditCount(t, `kind = 'grant_revoked' AND principal = 'key:bot'`); n != 1 {
			t.Errorf("%d grant_revoked records, want 1", n)
		}
		if n := e.auditCount(t, `kind = 'grant_minted' AND graph = 'support-bot' AND run = 'run-7'`); n != 1 {
			t.Errorf("%d grant_minted records, want 1", n)
		}
	})

	t.Run("expired", func(t *testing.T) {
		_, short := e.mintOK(t, `{"graph":"support-bot","run_id":"run-9","nodes":["triage"],"ttl":1}`)
		if status, out := e.callHTTP(t, short["triage"], "triage", "crm_find_customer", `{"email":"ada@example.com"}`); status != 200 {
			t.Fatalf("fresh token: %d %s", status, out["_raw"])
		}
		time.Sleep(1200 * time.Millisecond)
		ran := e.okCalls(t)
		status, out := e.callHTTP(t, short["triage"], "triage", "crm_find_customer", `{"email":"ada@example.com"}`)
		if status != 401 || !strings.Contains(out["_raw"].(string), "expired") {
			t.Errorf("expired token: %d %s", status, out["_raw"])
		}
		if got := e.okCalls(t); got != ran {
			t.Errorf("an expired token ran a call")
		}
	})

	log := e.stderr.String()
	for n, tok := range tokens {
		if strings.Contains(log, tok) {
			t.Errorf("the server log holds the token of node %s", n)
		}
	}
}

// runClient runs the binary as a client of e with token and returns its exit
// code, stdout and stderr.
func runClient(t *testing.T, url, token string, args ...string) (int, string, string) {
	t.Helper()
	return runToolgate(t, "", []string{"TOOLGATE_SERVER=" + url, "TOOLGATE_TOKEN=" + token}, args...)
}

// TestE2EGrantsAndApprovalsCLI drives `toolgate grants` and `toolgate
// approvals` against the running binary.
func TestE2EGrantsAndApprovalsCLI(t *testing.T) {
	e := newIdentityE2E(t)

	t.Run("grants", func(t *testing.T) {
		code, out, errOut := runClient(t, e.URL, e.BotKey, "grants", "create", "--graph", "support-bot", "--run", "cli-run", "--node", "triage", "--node", "refund", "--ttl", "10m", "--scope", `{"customer_id":1}`, "--json")
		if code != 0 {
			t.Fatalf("grants create: exit %d: %s", code, errOut)
		}
		var res struct {
			GrantID string            `json:"grant_id"`
			Tokens  map[string]string `json:"tokens"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Tokens) != 2 {
			t.Fatalf("grants create --json = %s", out)
		}
		code, out, errOut = runClient(t, e.URL, e.BotKey, "grants", "create", "--graph", "support-bot", "--run", "cli-run", "--node", "triage")
		if code != 0 || !strings.HasPrefix(out, "grant gr_") || !strings.Contains(out, "triage  tg_") {
			t.Errorf("grants create (text): exit %d\n%s%s", code, out, errOut)
		}
		if status, out := e.callHTTP(t, res.Tokens["triage"], "triage", "crm_find_customer", `{"email":"ada@example.com"}`); status != 200 {
			t.Fatalf("CLI-minted token: %d %s", status, out["_raw"])
		}
		code, out, errOut = runClient(t, e.URL, e.BotKey, "grants", "get", res.GrantID)
		if code != 0 || !strings.Contains(out, "status:") || !strings.Contains(out, "active") || strings.Contains(out, "tg_") {
			t.Errorf("grants get: exit %d\n%s%s", code, out, errOut)
		}
		code, out, errOut = runClient(t, e.URL, e.BotKey, "grants", "list", "--graph", "support-bot", "--run", "cli-run")
		if code != 0 || !strings.Contains(out, res.GrantID) || strings.Count(out, "gr_") != 2 {
			t.Errorf("grants list: exit %d\n%s%s", code, out, errOut)
		}
		code, out, errOut = runClient(t, e.URL, e.BotKey, "grants", "revoke", res.GrantID)
		if code != 0 || !strings.Contains(out, "revoked") {
			t.Fatalf("grants revoke: exit %d\n%s%s", code, out, errOut)
		}
		if status, out := e.callHTTP(t, res.Tokens["triage"], "triage", "crm_find_customer", `{"email":"ada@example.com"}`); status != 401 {
			t.Errorf("revoked token: %d %s", status, out["_raw"])
		}
		// Refusals print "toolgate: <verb>: code: message" and exit non-zero.
		code, _, errOut = runClient(t, e.URL, e.OtherKey, "grants", "create", "--graph", "support-bot", "--run", "r", "--node", "triage")
		if code == 0 || !strings.HasPrefix(errOut, "toolgate: grants create: forbidden: ") {
			t.Errorf("mint by a stranger: exit %d: %s", code, errOut)
		}
		code, _, errOut = runClient(t, e.URL, e.BotKey, "grants", "create", "--graph", "support-bot", "--run", "r", "--node", "payroll")
		if code == 0 || !strings.HasPrefix(errOut, "toolgate: grants create: invalid_arguments: ") || !strings.Contains(errOut, "payroll") {
			t.Errorf("mint of an unknown node: exit %d: %s", code, errOut)
		}
		code, _, errOut = runClient(t, e.URL, "tgk_wrong", "grants", "get", res.GrantID)
		if code == 0 || !strings.HasPrefix(errOut, "toolgate: grants get: unauthenticated: ") || strings.Contains(errOut, "tgk_wrong") {
			t.Errorf("bad token: exit %d: %s", code, errOut)
		}
		code, _, errOut = runClient(t, "http://127.0.0.1:1", e.BotKey, "grants", "get", res.GrantID)
		if code == 0 || !strings.HasPrefix(errOut, "toolgate: grants get: unavailable: ") || strings.Contains(errOut, e.BotKey) {
			t.Errorf("server down: exit %d: %s", code, errOut)
		}
	})

	t.Run("approvals", func(t *testing.T) {
		alice := e.user("alice@example.com", "langgraph-operators", "finance")
		bob := e.user("bob@example.com", "finance")
		ran := e.okCalls(t)
		args := `{"email":"grace@example.com"}`
		status, out := e.callHTTP(t, alice, "review", "crm_find_customer", args, "X-Toolgate-Run", "appr-run")
		if status != 202 || out["status"] != "approval_pending" {
			t.Fatalf("call needing approval: %d %s", status, out["_raw"])
		}
		id := out["approval_id"].(string)
		if got := e.okCalls(t); got != ran {
			t.Fatalf("a call held for approval ran")
		}
		code, listed, errOut := runClient(t, e.URL, bob, "approvals", "list")
		if code != 0 || !strings.Contains(listed, id) || !strings.Contains(listed, "pending") {
			t.Fatalf("approvals list: exit %d\n%s%s", code, listed, errOut)
		}
		code, _, errOut = runClient(t, e.URL, alice, "approvals", "approve", id, "--reason", "I trust me")
		if code == 0 || !strings.HasPrefix(errOut, "toolgate: approvals approve: forbidden: ") {
			t.Fatalf("self-approval: exit %d: %s", code, errOut)
		}
		code, outText, errOut := runClient(t, e.URL, bob, "approvals", "approve", id, "--reason", "checked")
		if code != 0 || !strings.Contains(outText, "approved") {
			t.Fatalf("approve: exit %d\n%s%s", code, outText, errOut)
		}
		status, out = e.callHTTP(t, alice, "review", "crm_find_customer", args, "X-Toolgate-Run", "appr-run", "X-Toolgate-Approval", id)
		if status != 200 {
			t.Fatalf("call after approval: %d %s", status, out["_raw"])
		}
		if got := e.okCalls(t); got != ran+1 {
			t.Errorf("approved call ran %d times", got-ran)
		}
		// A second request, denied through the CLI, never runs.
		status, out = e.callHTTP(t, alice, "review", "crm_find_customer", `{"email":"alan@example.com"}`, "X-Toolgate-Run", "appr-run")
		if status != 202 {
			t.Fatalf("second call: %d %s", status, out["_raw"])
		}
		id2 := out["approval_id"].(string)
		if code, outText, errOut := runClient(t, e.URL, bob, "approvals", "deny", id2, "--reason", "no"); code != 0 || !strings.Contains(outText, "denied") {
			t.Fatalf("deny: exit %d\n%s%s", code, outText, errOut)
		}
		status, out = e.callHTTP(t, alice, "review", "crm_find_customer", `{"email":"alan@example.com"}`, "X-Toolgate-Run", "appr-run", "X-Toolgate-Approval", id2)
		if status != 403 || errCode(out) != "approval_denied" {
			t.Errorf("call after deny: %d %s", status, out["_raw"])
		}
		if got := e.okCalls(t); got != ran+1 {
			t.Errorf("a denied call ran")
		}
	})
}

// TestE2EBogusTokenFlood sends 10,000 bogus bearer tokens from 8 goroutines
// while a valid caller keeps calling; every bogus request is a 401, every
// valid call succeeds, and no token reaches the server's log.
func TestE2EBogusTokenFlood(t *testing.T) {
	e := newIdentityE2E(t)
	const total, workers = 10000, 8
	bogus := make([]string, total)
	for i := range bogus {
		switch i % 4 {
		case 0:
			bogus[i] = fmt.Sprintf("tg_bogus%032d", i)
		case 1:
			bogus[i] = fmt.Sprintf("tgk_bogus%032d", i)
		case 2:
			bogus[i] = e.idp.Token(map[string]any{"email": fmt.Sprintf("flood%d@example.com", i), "groups": []string{"langgraph-operators"}}, oidctest.KeyID(fmt.Sprintf("kid-%d", i)))
		default:
			bogus[i] = fmt.Sprintf("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.flood%d", i)
		}
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers + 2}}
	var next, unexpected, refused atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	stop := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				req, _ := http.NewRequest("POST", e.URL+"/v1/tools/crm_find_customer:call", strings.NewReader(`{"email":"ada@example.com"}`))
				req.Header.Set("Authorization", "Bearer "+bogus[i])
				req.Header.Set("X-Toolgate-Graph", "support-bot")
				req.Header.Set("X-Toolgate-Node", "triage")
				resp, err := hc.Do(req)
				if err != nil {
					unexpected.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 401 {
					refused.Add(1)
				} else {
					unexpected.Add(1)
				}
			}
		}()
	}
	var valid, validFailed atomic.Int64
	var vwg sync.WaitGroup
	vwg.Add(1)
	go func() {
		defer vwg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("POST", e.URL+"/v1/tools/crm_find_customer:call", strings.NewReader(`{"email":"ada@example.com"}`))
			req.Header.Set("Authorization", "Bearer "+e.BotKey)
			req.Header.Set("X-Toolgate-Graph", "support-bot")
			req.Header.Set("X-Toolgate-Node", "triage")
			resp, err := hc.Do(req)
			if err != nil {
				validFailed.Add(1)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				valid.Add(1)
			} else {
				validFailed.Add(1)
			}
		}
	}()
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	vwg.Wait()
	t.Logf("%d bogus tokens refused in %v (%.0f/s); %d valid calls succeeded meanwhile", refused.Load(), elapsed, float64(refused.Load())/elapsed.Seconds(), valid.Load())
	if refused.Load() != total || unexpected.Load() != 0 {
		t.Errorf("%d refused, %d unexpected answers, want all %d refused", refused.Load(), unexpected.Load(), total)
	}
	if valid.Load() == 0 || validFailed.Load() != 0 {
		t.Errorf("valid calls: %d ok, %d failed", valid.Load(), validFailed.Load())
	}
	log := e.stderr.String()
	for _, tok := range append(bogus, e.BotKey) {
		if strings.Contains(log, tok) {
			t.Fatalf("the server log holds a presented token: %.20s…", tok)
		}
	}
}
