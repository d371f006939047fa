package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/approvals/slack/slacktest"
)

// doorsConfig serves testdata/e2e's tools plus a write tool on a
// read-write target, a CEL rule over an integer argument, an origin beside
// public_url, and Slack approvals (HTTP mode, the fake Slack API) for one
// workspace.
const doorsConfig = `listen: 127.0.0.1:0
allowed_origins: [https://agents.example.com]
store: {driver: sqlite, path: ./toolgate.db}
auth:
  api_keys:
    - {name: bot, sha256: "${E2E_BOT_SHA256}"}
targets:
  crm: {kind: postgres, dsn: "${E2E_CRM_DSN}", read_only: true, max_rows: 100, statement_timeout: 5s}
  crmw: {kind: postgres, dsn: "${E2E_CRM_DSN}", statement_timeout: 5s}
  down: {kind: postgres, dsn: "postgres://nobody:pw@127.0.0.1:1/none?connect_timeout=2"}
  api: {kind: http, base_url: "${E2E_API_URL}", timeout: 3s}
tools_dir: ./tools
graphs:
  support-bot:
    principals: ["key:bot"]
    nodes:
      triage:
        allow: [crm_find_customer, crm_list_orders, crm_rename_customer]
        rules: [{tool: crm_list_orders, when: "args.customer_id > 100", effect: deny, reason: "not ours"}]
      review:
        allow: [crm_find_customer]
        rules: [{tool: crm_find_customer, effect: approve, approvers: ["user:ana@example.com"]}]
approvals:
  wait: 100ms
  slack: {mode: http, bot_token: xoxb-e2e, signing_secret: "${E2E_SLACK_SECRET}", channel: C0APPROVALS, api_url: "${E2E_SLACK_URL}/", team_id: T0HOME}
limits: {max_body_bytes: 4096}
`

const renameTool = `{
  "name": "crm_rename_customer",
  "description": "Rename a customer.",
  "target": "crmw",
  "input_schema": {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}, "required": ["id", "name"], "additionalProperties": false},
  "sql": {"statement": "UPDATE customers SET name = $1 WHERE id = $2 RETURNING id", "args": ["name", "id"]}
}`

type doorsEnv struct {
	*e2eEnv
	slack  *slacktest.API
	secret string
}

func newDoorsE2E(t *testing.T) *doorsEnv {
	t.Helper()
	slackFake, slackURL := newSlackAPI(t)
	secret := "e2e-signing-secret-0123456789abcdef"
	e := prepareE2E(t, func(string) string { return doorsConfig })
	if err := os.WriteFile(filepath.Join(e.dir, "tools", "crm_rename_customer.json"), []byte(renameTool), 0o644); err != nil {
		t.Fatal(err)
	}
	e.env = append(e.env, "E2E_SLACK_URL="+slackURL, "E2E_SLACK_SECRET="+secret)
	e.tgProcess = e.start(t)
	return &doorsEnv{e2eEnv: e, slack: slackFake, secret: secret}
}

// audited counts the audit records matching where.
func (e *doorsEnv) audited(t *testing.T, where string, args ...any) int {
	t.Helper()
	return auditCount(t, e.Dir, where, args...)
}

// customerName reads a customer's name straight from the database.
func (e *doorsEnv) customerName(t *testing.T, id int) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.CRMDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var name string
	if err := conn.QueryRow(ctx, `SELECT name FROM customers WHERE id = $1`, id).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

// sendRaw is send (offboarding_e2e_test.go) answering the body as text.
func sendRaw(t *testing.T, method, url, body string, headers ...string) (int, string) {
	t.Helper()
	status, out := send(t, method, url, "", body, headers...)
	return status, out["_raw"].(string)
}

// TestE2EDoors plays an attacker at the doors of the real binary: every
// refusal has its code, runs nothing, and the refusals of calls are in the
// audit trail.
func TestE2EDoors(t *testing.T) {
	e := newDoorsE2E(t)
	t.Run("foreign origin on /mcp", e.origins)
	t.Run("oversized request head", e.headers)
	t.Run("identity errors", e.identity)
	t.Run("NUL byte for postgres", e.nul)
	t.Run("numbers beyond their types", e.numbers)
	t.Run("slack click from another workspace", e.slackConnect)
}

func (e *doorsEnv) mcpInit(t *testing.T, origin string) (int, string, string) {
	t.Helper()
	hdr := []string{"Authorization", "Bearer " + e.BotKey, "X-Toolgate-Graph", "support-bot", "X-Toolgate-Node", "triage",
		"Content-Type", "application/json", "Accept", "application/json, text/event-stream"}
	if origin != "" {
		hdr = append(hdr, "Origin", origin)
	}
	req, _ := http.NewRequest("POST", e.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), string(b)
}

func (e *doorsEnv) origins(t *testing.T) {
	for _, origin := range []string{"", e.URL, "https://agents.example.com"} {
		if status, sid, body := e.mcpInit(t, origin); status != 200 || sid == "" {
			t.Fatalf("Origin %q: %d %s, want a session", origin, status, body)
		}
	}
	status, sid, body := e.mcpInit(t, "http://evil.example.com")
	if status != 403 || sid != "" || !strings.Contains(body, `"code":"forbidden"`) || !strings.Contains(body, "evil.example.com") {
		t.Fatalf("foreign origin: %d %q %s, want 403 forbidden and no session", status, sid, body)
	}
	// A call from a foreign page with a live session runs nothing.
	_, sid, _ = e.mcpInit(t, "")
	before := e.audited(t, `kind = 'tool_call'`)
	status, body = sendRaw(t, "POST", e.URL+"/mcp", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"crm_rename_customer","arguments":{"id":2,"name":"Mallory"}}}`,
		"Authorization", "Bearer "+e.BotKey, "X-Toolgate-Graph", "support-bot", "X-Toolgate-Node", "triage", "Origin", "http://evil.example.com",
		"Mcp-Session-Id", sid, "Mcp-Protocol-Version", "2025-11-25", "Content-Type", "application/json", "Accept", "application/json, text/event-stream")
	if status != 403 || e.audited(t, `kind = 'tool_call'`) != before || e.customerName(t, 2) != "Grace Hopper" {
		t.Fatalf("tools/call from a foreign origin: %d %s; it must be refused and run nothing", status, body)
	}
}

func (e *doorsEnv) headers(t *testing.T) {
	before := e.audited(t, `1 = 1`)
	for _, pad := range []int{200 << 10, 66 << 10} {
		status, body := sendRaw(t, "POST", e.URL+"/v1/tools/crm_rename_customer:call", `{"id":2,"name":"Mallory"}`,
			"Authorization", "Bearer "+e.BotKey, "X-Toolgate-Graph", "support-bot", "X-Toolgate-Node", "triage", "X-Pad", strings.Repeat("a", pad))
		if status != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%d-byte header: %d %.200s, want 431", pad, status, body)
		}
		if pad < 68<<10 && !strings.Contains(body, `"code":"headers_too_large"`) {
			t.Errorf("%d-byte header: body %.200s, want the headers_too_large error", pad, body)
		}
	}
	if e.audited(t, `1 = 1`) != before || e.customerName(t, 2) != "Grace Hopper" {
		t.Fatal("a request with an oversized head ran something")
	}
	// The server still serves after refusing.
	if status, out := e.callHTTP(t, e.BotKey, "triage", "crm_find_customer", `{"email":"ada@example.com"}`); status != 200 {
		t.Fatalf("after the refusals: %d %s", status, out["_raw"])
	}
}

func (e *doorsEnv) identity(t *testing.T) {
	for _, c := range []struct {
		name    string
		hdr     []string
		status  int
		code    string
		naming  string
		audited bool
	}{
		{"no graph or node", nil, 400, "unidentified", "X-Toolgate-Graph and X-Toolgate-Node", true},
		{"unknown node", []string{"X-Toolgate-Graph", "support-bot", "X-Toolgate-Node", "tirage"}, 404, "unknown_node", `\"tirage\"`, true},
		{"unknown graph", []string{"X-Toolgate-Graph", "supprt-bot", "X-Toolgate-Node", "triage"}, 404, "unknown_graph", `\"supprt-bot\"`, false},
	} {
		before := e.audited(t, `kind = 'tool_call' AND json_extract(event, '$.error_code') = ?`, c.code)
		for _, path := range []string{"/v1/tools", "/v1/tools/crm_rename_customer:call"} {
			method := "GET"
			if strings.HasSuffix(path, ":call") {
				method = "POST"
			}
			status, body := sendRaw(t, method, e.URL+path, `{"id":2,"name":"Mallory"}`, append([]string{"Authorization", "Bearer " + e.BotKey}, c.hdr...)...)
			if status != c.status || !strings.Contains(body, `"code":"`+c.code+`"`) || !strings.Contains(body, c.naming) {
				t.Errorf("%s %s: %d %s, want %d %s naming %s", c.name, path, status, body, c.status, c.code, c.naming)
			}
		}
		if got := e.audited(t, `kind = 'tool_call' AND json_extract(event, '$.error_code') = ?`, c.code) - before; (got == 1) != c.audited {
			t.Errorf("%s: %d new audit records of the refused call", c.name, got)
		}
	}
	if e.customerName(t, 2) != "Grace Hopper" {
		t.Fatal("a refused call changed a row")
	}
}

func (e *doorsEnv) nul(t *testing.T) {
	status, out := e.callHTTP(t, e.BotKey, "triage", "crm_rename_customer", `{"id":1,"name":"Ada\u0000'; DROP TABLE customers; --"}`)
	errObj, _ := out["error"].(map[string]any)
	if status != 400 || errCode(out) != "invalid_arguments" || errObj["field"] != "/name" || !strings.Contains(errObj["message"].(string), "NUL byte") {
		t.Fatalf("NUL: %d %s, want 400 invalid_arguments naming /name", status, out["_raw"])
	}
	if e.customerName(t, 1) != "Ada Lovelace" {
		t.Fatal("the refused call changed the row")
	}
	if e.audited(t, `kind = 'tool_call' AND tool = 'crm_rename_customer' AND json_extract(event, '$.error_code') = 'invalid_arguments'`) != 1 {
		t.Error("the refusal is not in the audit trail")
	}
	// The tool itself works: a clean name is written.
	if status, out := e.callHTTP(t, e.BotKey, "triage", "crm_rename_customer", `{"id":3,"name":"A. M. Turing"}`); status != 200 || e.customerName(t, 3) != "A. M. Turing" {
		t.Fatalf("clean rename: %d %s", status, out["_raw"])
	}
}

func (e *doorsEnv) numbers(t *testing.T) {
	for _, c := range []struct{ tool, args, field string }{
		{"crm_list_orders", `{"customer_id": 99999999999999999999}`, "/customer_id"},
		{"crm_list_orders", `{"customer_id": 1e19}`, "/customer_id"},
		{"crm_rename_customer", `{"id": 1e400, "name": "x"}`, "/id"},
	} {
		before := e.audited(t, `kind = 'tool_call' AND json_extract(event, '$.error_code') = 'invalid_arguments'`)
		status, out := e.callHTTP(t, e.BotKey, "triage", c.tool, c.args)
		errObj, _ := out["error"].(map[string]any)
		if status != 400 || errCode(out) != "invalid_arguments" || errObj["field"] != c.field {
			t.Errorf("%s %s: %d %s, want 400 invalid_arguments naming %s", c.tool, c.args, status, out["_raw"], c.field)
		}
		if e.audited(t, `kind = 'tool_call' AND json_extract(event, '$.error_code') = 'invalid_arguments'`) != before+1 {
			t.Errorf("%s %s: the refusal is not in the audit trail", c.tool, c.args)
		}
	}
	if e.customerName(t, 1) != "Ada Lovelace" {
		t.Fatal("a refused call changed a row")
	}
	// The rule still decides integers it can hold.
	if status, out := e.callHTTP(t, e.BotKey, "triage", "crm_list_orders", `{"customer_id": 1e3}`); status != 403 || !strings.Contains(out["_raw"].(string), "not ours") {
		t.Errorf("customer 1e3: %d %s, want the deny rule", status, out["_raw"])
	}
}

func (e *doorsEnv) slackConnect(t *testing.T) {
	call := func() (int, map[string]any) {
		return e.callHTTP(t, e.BotKey, "review", "crm_find_customer", `{"email":"ada@example.com"}`, "X-Toolgate-Run", "r-slack")
	}
	status, out := call()
	id, _ := out["approval_id"].(string)
	if status != 202 || id == "" {
		t.Fatalf("call: %d %s, want 202 approval_pending", status, out["_raw"])
	}
	within(t, 5*time.Second, "the approval message is posted", func() bool { return e.slack.Count("chat.postMessage") == 1 })

	const ts = "1700000000.00011" // the message's timestamp: the fake's first answer
	if got := e.postSlack(t, slackClick(id, ts, "U_ANA", "T0PARTNER")); got != 200 {
		t.Fatalf("interaction: %d", got)
	}
	within(t, 5*time.Second, "the ephemeral refusal", func() bool {
		return strings.Contains(e.slack.Last("chat.postEphemeral").Get("text"), "another workspace")
	})
	if status, out := call(); status != 202 {
		t.Fatalf("after the partner's click: %d %s, want still pending", status, out["_raw"])
	}
	if got := e.postSlack(t, slackClick(id, ts, "U_ANA", "T0HOME")); got != 200 {
		t.Fatalf("interaction: %d", got)
	}
	within(t, 5*time.Second, "the home workspace's click approves", func() bool {
		status, _ := call()
		return status == 200
	})
}

// postSlack sends a signed interaction to /slack/interactions.
func (e *doorsEnv) postSlack(t *testing.T, payload string) int {
	t.Helper()
	body := url.Values{"payload": {payload}}.Encode()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, []byte(e.secret))
	m.Write([]byte("v0:" + ts + ":" + body))
	status, _ := sendRaw(t, "POST", e.URL+"/slack/interactions", body, "Content-Type", "application/x-www-form-urlencoded",
		"X-Slack-Request-Timestamp", ts, "X-Slack-Signature", "v0="+hex.EncodeToString(m.Sum(nil)))
	return status
}

// newSlackAPI serves the fake Slack Web API; U_ANA is a full member with
// a confirmed email.
func newSlackAPI(t *testing.T) (*slacktest.API, string) {
	api := slacktest.New(map[string]string{"U_ANA": `{"id":"U_ANA","name":"ana","is_email_confirmed":true,"profile":{"email":"ana@example.com"}}`})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return api, srv.URL
}

// slackClick is the block_actions payload of an Approve click on the approval
// message by user, a member of userTeam, made in the home workspace.
func slackClick(approval, ts, user, userTeam string) string {
	b, _ := json.Marshal(map[string]any{
		"type": "block_actions", "team": map[string]any{"id": "T0HOME"}, "api_app_id": "A0APP",
		"user": map[string]any{"id": user, "team_id": userTeam}, "channel": map[string]any{"id": slacktest.Channel},
		"container": map[string]any{"type": "message", "message_ts": ts, "channel_id": slacktest.Channel},
		"message":   map[string]any{"ts": ts},
		"actions":   []any{map[string]any{"action_id": "toolgate_approve", "block_id": "toolgate_decision", "value": approval, "type": "button"}},
	})
	return string(b)
}
