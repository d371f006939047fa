package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"

	"github.com/toolgate/toolgate/broker/mcp/mcptest"
)

// mcpSession is what the end-to-end tests need from an MCP client library.
type mcpSession interface {
	list(t *testing.T) []string
	call(t *testing.T, tool string, args map[string]any) (isError bool, structured map[string]any, text string)
}

// session adapts an mcptest client; a JSON-RPC error fails the test.
type session struct{ c mcptest.Client }

func (s session) list(t *testing.T) []string { return s.c.List(t) }

func (s session) call(t *testing.T, tool string, args map[string]any) (bool, map[string]any, string) {
	t.Helper()
	o := s.c.Call(t, tool, args)
	if o.RPCErr != nil {
		t.Fatalf("tools/call %s: %v", tool, o.RPCErr)
	}
	return o.IsError, o.Structured, o.Text
}

// raw is the underlying mcp-go client of a session from dialMCPGo.
func (s session) raw() *client.Client { return s.c.(*mcptest.GoClient).Raw() }

func graphHeaders(key, node string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + key, "X-Toolgate-Graph": "support-bot", "X-Toolgate-Node": node}
}

// dialMCPGo connects the mcp-go client as graph support-bot's node.
func dialMCPGo(t *testing.T, url, key, node, version string) session {
	t.Helper()
	return session{mcptest.DialMCPGo(t, url+"/mcp", graphHeaders(key, node), version)}
}

// dialSDK connects the official go-sdk client as graph support-bot's node.
func dialSDK(t *testing.T, url, key, node, version string) session {
	t.Helper()
	return session{mcptest.DialSDK(t, url+"/mcp", graphHeaders(key, node), version)}
}

// TestE2EMCPClients drives the real binary over loopback with both MCP
// client libraries, on a session revision and on the stateless one, against
// a real PostgreSQL target.
func TestE2EMCPClients(t *testing.T) {
	e := newE2E(t)
	for _, c := range []struct {
		name string
		dial func(t *testing.T, node string) mcpSession
	}{
		{"mcp-go 2025-11-25", func(t *testing.T, node string) mcpSession { return dialMCPGo(t, e.URL, e.BotKey, node, "2025-11-25") }},
		{"mcp-go 2026-07-28", func(t *testing.T, node string) mcpSession { return dialMCPGo(t, e.URL, e.BotKey, node, "2026-07-28") }},
		{"go-sdk 2025-11-25", func(t *testing.T, node string) mcpSession { return dialSDK(t, e.URL, e.BotKey, node, "2025-11-25") }},
		{"go-sdk latest", func(t *testing.T, node string) mcpSession { return dialSDK(t, e.URL, e.BotKey, node, "") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			triage, billing := c.dial(t, "triage"), c.dial(t, "billing")
			if got := triage.list(t); !slices.Equal(got, []string{"api_fail", "api_text", "crm_find_customer", "down_ping"}) {
				t.Errorf("triage tools = %v", got)
			}
			if got := billing.list(t); !slices.Equal(got, []string{"crm_list_orders"}) {
				t.Errorf("billing tools = %v", got)
			}
			isErr, res, text := triage.call(t, "crm_find_customer", map[string]any{"email": "ada@example.com"})
			if isErr {
				t.Fatalf("call failed: %s", text)
			}
			rows, _ := res["rows"].([]any)
			if len(rows) != 1 {
				t.Fatalf("rows = %v", res)
			}
			row := rows[0].(map[string]any)
			if row["name"] != "Ada Lovelace" || row["card_number"] != "************4242" || row["ssn"] == "123-45-6789" {
				t.Errorf("row = %v (card must be last4, ssn detected)", row)
			}
			if strings.Contains(text, "4242424242424242") || strings.Contains(text, "ada@example.com") {
				t.Errorf("text copy is not masked: %s", text)
			}
			// A tool of another node is refused as a tool error and runs nothing.
			isErr, res, _ = billing.call(t, "crm_find_customer", map[string]any{"email": "ada@example.com"})
			if !isErr || errCode(res) != "forbidden" {
				t.Errorf("cross-node call: isError=%v %v", isErr, res)
			}
			isErr, res, _ = billing.call(t, "crm_list_orders", map[string]any{"customer_id": "one"})
			if !isErr || errCode(res) != "invalid_arguments" {
				t.Errorf("bad args: isError=%v %v", isErr, res)
			}
		})
	}
}

// TestE2EHTTPRefusals: each bad input gets its code and status and runs
// nothing against the targets.
func TestE2EHTTPRefusals(t *testing.T) {
	e := newE2E(t)
	for _, c := range []struct {
		name, key, node, tool, body string
		status                      int
		code                        string
	}{
		{"no key", "", "triage", "crm_find_customer", `{"email":"a@b.c"}`, 401, "unauthenticated"},
		{"wrong key", "tgk_wrongwrongwrongwrongwrongwrongwrongwrong", "triage", "crm_find_customer", `{"email":"a@b.c"}`, 401, "unauthenticated"},
		{"key of no graph principal", "other", "triage", "crm_find_customer", `{"email":"a@b.c"}`, 403, "forbidden"},
		{"tool of another node", "bot", "billing", "crm_find_customer", `{"email":"a@b.c"}`, 403, "forbidden"},
		{"unknown tool", "bot", "triage", "crm_drop_everything", `{}`, 404, "unknown_tool"},
		{"wrong type", "bot", "billing", "crm_list_orders", `{"customer_id":"1"}`, 400, "invalid_arguments"},
		{"missing required", "bot", "billing", "crm_list_orders", `{}`, 400, "invalid_arguments"},
		{"extra property", "bot", "billing", "crm_list_orders", `{"customer_id":1,"x":2}`, 400, "invalid_arguments"},
		{"malformed JSON", "bot", "billing", "crm_list_orders", `{"customer_id":`, 400, "invalid_arguments"},
		{"oversized body", "bot", "billing", "crm_list_orders", `{"customer_id":1,"pad":"` + strings.Repeat("x", 8192) + `"}`, 413, "payload_too_large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := map[string]string{"bot": e.BotKey, "other": e.OtherKey}[c.key]
			if key == "" {
				key = c.key
			}
			status, out := e.callHTTP(t, key, c.node, c.tool, c.body)
			if status != c.status || errCode(out) != c.code {
				t.Fatalf("got %d %s, want %d %s: %s", status, errCode(out), c.status, c.code, out["_raw"])
			}
			if status == 401 && !strings.Contains(out["_www"].(string), `resource_metadata="`+e.URL+`/.well-known/oauth-protected-resource"`) {
				t.Errorf("WWW-Authenticate = %q", out["_www"])
			}
			if strings.Contains(out["_raw"].(string), key) && key != "" {
				t.Errorf("answer echoes the key")
			}
		})
	}
}

func TestE2ESQLInjectionIsBound(t *testing.T) {
	e := newE2E(t)
	status, out := e.callHTTP(t, e.BotKey, "triage", "crm_find_customer", `{"email":"x' OR '1'='1"}`)
	if status != 200 {
		t.Fatalf("status %d: %s", status, out["_raw"])
	}
	res := out["result"].(map[string]any)
	if res["row_count"].(float64) != 0 {
		t.Fatalf("injection returned rows: %s", out["_raw"])
	}
}

func TestE2ETargetsFailClearly(t *testing.T) {
	e := newE2E(t)
	start := time.Now()
	status, out := e.callHTTP(t, e.BotKey, "triage", "down_ping", `{}`)
	if status != 503 || errCode(out) != "target_unavailable" {
		t.Fatalf("down target: %d %s", status, out["_raw"])
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("down target took %v to refuse", d)
	}
	if strings.Contains(out["_raw"].(string), "nobody:pw") {
		t.Errorf("error leaks the DSN: %s", out["_raw"])
	}

	status, out = e.callHTTP(t, e.BotKey, "triage", "api_fail", `{}`)
	if status != 502 || errCode(out) != "target_error" || strings.Contains(out["_raw"].(string), "4242424242424242") || strings.Contains(out["_raw"].(string), e.APISecret) {
		t.Fatalf("500 target: %d %s", status, out["_raw"])
	}
	status, out = e.callHTTP(t, e.BotKey, "triage", "api_text", `{"word":"a/b"}`)
	if status != 200 {
		t.Fatalf("text target: %d %s", status, out["_raw"])
	}
	body, _ := out["result"].(map[string]any)["body"].(string)
	if !strings.Contains(body, "you said a/b") || strings.Contains(body, "4242424242424242") {
		t.Errorf("text body = %q (path value must arrive escaped and whole; cards masked)", body)
	}
	e.api.mu.Lock()
	defer e.api.mu.Unlock()
	for _, a := range e.api.auth {
		if a != "Bearer "+e.APISecret {
			t.Errorf("target saw Authorization %q, want the configured credential", a)
		}
	}
}

func TestE2EProtectedResourceMetadata(t *testing.T) {
	e := newE2E(t)
	resp, err := http.Get(e.URL + "/.well-known/oauth-protected-resource")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil || m["resource"] != e.URL+"/mcp" {
		t.Fatalf("metadata = %s", b)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(e.URL + p)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", p, err, resp)
		}
		resp.Body.Close()
	}
	// /metrics counts the call by door, tool, decision and status, and
	// never names the principal.
	if status, out := e.callHTTP(t, e.BotKey, "triage", "crm_find_customer", `{"email":"ada@example.com"}`); status != 200 {
		t.Fatalf("call: %d %s", status, out["_raw"])
	}
	resp, err = http.Get(e.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `toolgate_tool_calls_total{decision="allow",door="http",status="ok",tool="crm_find_customer"} 1`) || strings.Contains(string(b), "key:bot") {
		t.Errorf("metrics:\n%s", b)
	}
}

// TestE2ECheck runs `toolgate check` on good and broken configs.
func TestE2ECheck(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, "testdata/e2e", dir)
	bin := toolgateBinary(t)
	env := append(os.Environ(), "E2E_BOT_SHA256="+strings.Repeat("a", 64), "E2E_OTHER_SHA256="+strings.Repeat("b", 64),
		"E2E_CRM_DSN=postgres://x@127.0.0.1/x", "E2E_API_URL=http://127.0.0.1:1", "E2E_API_SECRET=s")
	cmd := exec.Command(bin, "check", "--config", "toolgate.yaml")
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ok (5 tools") {
		t.Fatalf("check of a good config: %v\n%s", err, out)
	}
	// Break it three ways at once: an unknown key, a dotted tool name and a
	// spliced SQL argument. Every problem is reported.
	cfg, _ := os.ReadFile(filepath.Join(dir, "toolgate.yaml"))
	_ = os.WriteFile(filepath.Join(dir, "toolgate.yaml"), append(cfg, []byte("tools_dri: x\n")...), 0o644)
	cmd = exec.Command(bin, "check", "--config", "toolgate.yaml")
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "tools_dri: unknown key") {
		t.Fatalf("check of an unknown key: %v\n%s", err, out)
	}
	_ = os.WriteFile(filepath.Join(dir, "toolgate.yaml"), cfg, 0o644)
	_ = os.WriteFile(filepath.Join(dir, "tools", "bad.json"), []byte(`{"name":"crm.bad","target":"crm","input_schema":{"type":"object"},"sql":{"statement":"SELECT * FROM t WHERE a = '{{a}}'","args":[]}}`), 0o644)
	cmd = exec.Command(bin, "check", "--config", "toolgate.yaml")
	cmd.Dir, cmd.Env = dir, env
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bad.json:1: /name") || !strings.Contains(string(out), "/sql/statement") {
		t.Fatalf("check of a bad tool: %v\n%s", err, out)
	}
}

// TestE2EDev starts `toolgate dev` and calls the quickstart as a user would.
func TestE2EDev(t *testing.T) {
	data := t.TempDir()
	s := startBinary(t, data, nil, "dev", "--listen", "127.0.0.1:0", "--data", data)
	var keys devKeys
	b, err := os.ReadFile(filepath.Join(data, "dev-keys.json"))
	if err != nil || json.Unmarshal(b, &keys) != nil {
		t.Fatalf("dev keys: %v", err)
	}
	triage := dialMCPGo(t, s.URL, keys.Agent, "triage", "")
	if got := triage.list(t); !slices.Equal(got, []string{"crm_find_customer", "crm_list_orders", "crm_search_customers"}) {
		t.Errorf("triage tools = %v", got)
	}
	isErr, res, text := triage.call(t, "crm_find_customer", map[string]any{"email": "ada@example.com"})
	if isErr {
		t.Fatalf("call: %s", text)
	}
	row := res["rows"].([]any)[0].(map[string]any)
	if row["card_number"] != "************4242" || !strings.HasPrefix(row["email"].(string), "h_") {
		t.Errorf("quickstart row = %v (card last4, email hashed)", row)
	}
	if strings.Contains(s.stderr.String(), "4242424242424242") || strings.Contains(s.stderr.String(), keys.Agent) {
		t.Errorf("the log holds an unmasked card or a key")
	}
}

// TestE2ENoUnmaskedValuesStored: after calls whose results, arguments and
// target errors carry card numbers and SSNs, neither the audit store nor
// the log holds one in the clear.
func TestE2ENoUnmaskedValuesStored(t *testing.T) {
	e := newE2E(t)
	for _, email := range []string{"ada@example.com", "grace@example.com", "alan@example.com"} {
		if status, out := e.callHTTP(t, e.BotKey, "triage", "crm_find_customer", `{"email":"`+email+`"}`); status != 200 {
			t.Fatalf("find %s: %d %s", email, status, out["_raw"])
		}
	}
	e.callHTTP(t, e.BotKey, "triage", "api_text", `{"word":"4242424242424242"}`)
	e.callHTTP(t, e.BotKey, "triage", "api_fail", `{}`)
	e.callHTTP(t, e.BotKey, "triage", "crm_find_customer", `{"email":"5555555555554444"}`)
	e.stop(t)

	secrets := []string{"4242424242424242", "5555555555554444", "378282246310005", "123-45-6789", e.APISecret, e.BotKey}
	files, _ := filepath.Glob(filepath.Join(e.Dir, "toolgate.db*"))
	if len(files) == 0 {
		t.Fatal("no store files found")
	}
	masked := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		masked = masked || strings.Contains(string(b), "************4242")
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds %q in the clear", filepath.Base(f), s)
			}
		}
	}
	if !masked {
		t.Error("the store holds no masked result at all; the test would prove nothing")
	}
	for _, s := range secrets {
		if strings.Contains(e.stderr.String(), s) {
			t.Errorf("the log holds %q in the clear", s)
		}
	}
}
