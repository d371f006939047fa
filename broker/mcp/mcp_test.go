package mcp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/httpapi/doortest"
	"github.com/toolgate/toolgate/broker/mcp"
	"github.com/toolgate/toolgate/broker/mcp/mcptest"
)

const metaURL = "http://127.0.0.1:8080/.well-known/oauth-protected-resource"

func newServer(t testing.TB) (*doortest.Env, *httptest.Server) {
	t.Helper()
	env := doortest.New(t)
	s, err := mcp.New(env.Broker, mcp.Options{Name: "toolgate", Version: "test", ResourceMetadataURL: metaURL})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", s.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return env, srv
}

type mcpClient = mcptest.Client

func headers(node string, extra map[string]string) map[string]string {
	hdr := map[string]string{
		"Authorization":    "Bearer " + doortest.TokenAlpha,
		broker.HeaderGraph: doortest.Graph,
		broker.HeaderNode:  node,
	}
	for k, v := range extra {
		hdr[k] = v
	}
	return hdr
}

func newGoClient(t *testing.T, url, node, version string, extra map[string]string) *mcptest.GoClient {
	t.Helper()
	return mcptest.DialMCPGo(t, url+"/mcp", headers(node, extra), version)
}

func newSDKClient(t *testing.T, url, node, version string) mcpClient {
	t.Helper()
	return mcptest.DialSDK(t, url+"/mcp", headers(node, nil), version)
}

// TestClients runs the same scenario through each client library and
// protocol revision.
func TestClients(t *testing.T) {
	for _, tc := range []struct {
		name     string
		protocol string
		dial     func(t *testing.T, url, node string) mcpClient
	}{
		{"mcp-go 2025-11-25 session", "2025-11-25", func(t *testing.T, url, node string) mcpClient {
			return newGoClient(t, url, node, "2025-11-25", nil)
		}},
		{"mcp-go 2025-06-18 session", "2025-06-18", func(t *testing.T, url, node string) mcpClient {
			return newGoClient(t, url, node, "2025-06-18", nil)
		}},
		{"mcp-go 2026-07-28 stateless", "2026-07-28", func(t *testing.T, url, node string) mcpClient {
			return newGoClient(t, url, node, "", nil)
		}},
		{"go-sdk 2025-11-25 session", "2025-11-25", func(t *testing.T, url, node string) mcpClient {
			return newSDKClient(t, url, node, "2025-11-25")
		}},
		{"go-sdk 2026-07-28 stateless", "2026-07-28", func(t *testing.T, url, node string) mcpClient {
			return newSDKClient(t, url, node, "")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, srv := newServer(t)
			triage := tc.dial(t, srv.URL, "triage")
			refund := tc.dial(t, srv.URL, "refund")
			if tc.protocol != "" && triage.Protocol() != tc.protocol {
				t.Fatalf("negotiated %q, want %q", triage.Protocol(), tc.protocol)
			}
			t.Logf("protocol %s", triage.Protocol())

			t.Run("tools/list differs per node", func(t *testing.T) {
				for _, c := range []struct {
					cl   mcpClient
					want []string
				}{
					{triage, []string{doortest.ToolFindCustomer, doortest.ToolListOrders}},
					{refund, []string{doortest.ToolRefund, doortest.ToolListOrders}},
				} {
					got := c.cl.List(t)
					sort.Strings(got)
					sort.Strings(c.want)
					if strings.Join(got, ",") != strings.Join(c.want, ",") {
						t.Errorf("tools = %v, want %v", got, c.want)
					}
				}
			})

			t.Run("call succeeds", func(t *testing.T) {
				before := env.Exec.Count()
				o := triage.Call(t, doortest.ToolFindCustomer, map[string]any{"email": "ada@example.com"})
				if o.RPCErr != nil || o.IsError {
					t.Fatalf("call failed: %v %s", o.RPCErr, o.Text)
				}
				if o.Structured["row_count"] != float64(1) {
					t.Errorf("structuredContent = %v", o.Structured)
				}
				var fromText map[string]any
				if err := json.Unmarshal([]byte(o.Text), &fromText); err != nil || fromText["row_count"] != float64(1) {
					t.Errorf("text content is not the result JSON: %q", o.Text)
				}
				if strings.Contains(o.Text, doortest.Card) || !strings.Contains(o.Text, doortest.MaskedCard) {
					t.Errorf("result is not masked: %s", o.Text)
				}
				if env.Exec.Count() != before+1 {
					t.Errorf("executions = %d, want %d", env.Exec.Count(), before+1)
				}
				if ev, _ := env.Recorder.Last(); ev.Door != "mcp" || ev.Status != broker.StatusOK || ev.Node != "triage" {
					t.Errorf("record = %+v", ev)
				}
			})

			refusals := []struct {
				name   string
				cl     mcpClient
				tool   string
				args   map[string]any
				code   string
				rpcErr bool
			}{
				{"forbidden tool", triage, doortest.ToolRefund, map[string]any{"order_id": "o-1", "amount": 5}, "forbidden", false},
				{"bad arguments", triage, doortest.ToolFindCustomer, map[string]any{"email": 42}, "invalid_arguments", false},
				{"missing argument", triage, doortest.ToolFindCustomer, map[string]any{}, "invalid_arguments", false},
				{"unknown tool", triage, "crm_drop_everything", map[string]any{}, "", true},
			}
			for _, r := range refusals {
				t.Run(r.name, func(t *testing.T) {
					before, recs := env.Exec.Count(), len(env.Recorder.Events())
					o := r.cl.Call(t, r.tool, r.args)
					if r.rpcErr {
						if o.RPCErr == nil {
							t.Fatalf("want a JSON-RPC error, got result %+v", o)
						}
						if !strings.Contains(o.RPCErr.Error(), "not found") {
							t.Errorf("error = %v", o.RPCErr)
						}
					} else {
						if o.RPCErr != nil || !o.IsError {
							t.Fatalf("want an isError result, got %v %+v", o.RPCErr, o)
						}
						if o.ErrorCode() != r.code || !strings.HasPrefix(o.Text, r.code+": ") {
							t.Errorf("code %q text %q, want %q", o.ErrorCode(), o.Text, r.code)
						}
						ev, _ := env.Recorder.Last()
						if len(env.Recorder.Events()) != recs+1 || ev.ErrorCode != r.code || ev.Status != broker.StatusDenied {
							t.Errorf("refusal not recorded: %+v", ev)
						}
					}
					if env.Exec.Count() != before {
						t.Errorf("a refused call ran %d operations", env.Exec.Count()-before)
					}
				})
			}

			t.Run("pending approval", func(t *testing.T) {
				before := env.Exec.Count()
				o := refund.Call(t, doortest.ToolRefund, map[string]any{"order_id": "o-1", "amount": 500})
				if o.RPCErr != nil || o.IsError {
					t.Fatalf("pending must not be an error: %v %+v", o.RPCErr, o)
				}
				if o.Structured["status"] != "approval_pending" || o.Structured["approval_id"] != "apr_test" {
					t.Errorf("structuredContent = %v", o.Structured)
				}
				if !strings.Contains(o.Text, "NOT performed") {
					t.Errorf("text = %q", o.Text)
				}
				if env.Exec.Count() != before {
					t.Errorf("a pending call ran")
				}
			})
		})
	}
}

func TestApprovalHeaderAndTraceMeta(t *testing.T) {
	env, srv := newServer(t)
	c := newGoClient(t, srv.URL, "refund", "2025-11-25", map[string]string{broker.HeaderApproval: "apr_resume"})
	o := c.Call(t, doortest.ToolRefund, map[string]any{"order_id": "o-1", "amount": 500})
	if o.Structured["approval_id"] != "apr_resume" {
		t.Errorf("X-Toolgate-Approval did not reach the broker: %v", o.Structured)
	}

	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tc := newGoClient(t, srv.URL, "triage", "2025-11-25", nil)
	req := mcpgo.CallToolRequest{}
	req.Params.Name = doortest.ToolFindCustomer
	req.Params.Arguments = map[string]any{"email": "ada@example.com"}
	req.Params.Meta = &mcpgo.Meta{AdditionalFields: map[string]any{"traceparent": tp}}
	if _, err := tc.Raw().CallTool(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := env.Exec.LastTraceParent(); got != tp {
		t.Errorf("traceparent from _meta = %q, want %q", got, tp)
	}
}

func TestProgressNotification(t *testing.T) {
	_, srv := newServer(t)
	c := newGoClient(t, srv.URL, "refund", "2025-11-25", nil)
	var mu sync.Mutex
	var got []mcpgo.JSONRPCNotification
	c.Raw().OnNotification(func(n mcpgo.JSONRPCNotification) {
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	})
	req := mcpgo.CallToolRequest{}
	req.Params.Name = doortest.ToolRefund
	req.Params.Arguments = map[string]any{"order_id": "o-1", "amount": 500}
	req.Params.Meta = &mcpgo.Meta{ProgressToken: "tok-1"}
	if _, err := c.Raw().CallTool(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 {
		t.Fatal("no progress notification")
	}
	n := got[0]
	if n.Method != "notifications/progress" || n.Params.AdditionalFields["progressToken"] != "tok-1" || n.Params.AdditionalFields["message"] != "waiting for approval" {
		t.Errorf("notification = %+v", n)
	}
}

// rawPost sends one JSON-RPC body to /mcp.
func rawPost(t *testing.T, srv *httptest.Server, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

func TestHTTPRefusals(t *testing.T) {
	auth := map[string]string{"Authorization": "Bearer " + doortest.TokenAlpha}
	for _, tc := range []struct {
		name      string
		body      string
		hdr       map[string]string
		status    int
		challenge string
		bodyHas   string
	}{
		{"missing token", initBody, nil, 401, `Bearer resource_metadata="` + metaURL + `"`, `"code":"unauthenticated"`},
		{"bad token", initBody, map[string]string{"Authorization": "Bearer tgk_wrong"}, 401, `Bearer resource_metadata="` + metaURL + `", error="invalid_token"`, `"code":"unauthenticated"`},
		{"graph not allowed", initBody, map[string]string{"Authorization": "Bearer " + doortest.TokenBeta, broker.HeaderGraph: doortest.Graph}, 403, "", `"code":"forbidden"`},
		{"malformed JSON-RPC", `{"jsonrpc":"2.0","id":1,"method":`, auth, 400, "", `-32700`},
		{"DNS rebinding Host", initBody, map[string]string{"Authorization": "Bearer " + doortest.TokenAlpha, "Host": "evil.example"}, 403, "", "invalid Host"},
		{"body over the cap", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"` + strings.Repeat("a", 5<<20) + `"}}`, auth, 413, "", `"code":"payload_too_large"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, srv := newServer(t)
			status, hdr, body := rawPost(t, srv, tc.body, tc.hdr)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if got := hdr.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tc.challenge)
			}
			if !strings.Contains(body, tc.bodyHas) {
				t.Errorf("body %q does not contain %q", body, tc.bodyHas)
			}
			if env.Exec.Count() != 0 || len(env.Recorder.Events()) != 0 {
				t.Errorf("a refused request ran or recorded something")
			}
		})
	}
}

// TestIdentityNotFromSession checks that a session minted for one node does
// not carry its identity: every request is identified by its own
// credentials and headers, and a request whose identity is not the one the
// session was minted for (here: the same principal claiming another node)
// is refused as an unknown session instead of served.
func TestIdentityNotFromSession(t *testing.T) {
	_, srv := newServer(t)
	status, hdr, body := rawPost(t, srv, initBody, map[string]string{
		"Authorization": "Bearer " + doortest.TokenAlpha, broker.HeaderGraph: doortest.Graph, broker.HeaderNode: "refund"})
	if status != 200 {
		t.Fatalf("initialize: %d %s", status, body)
	}
	sid := hdr.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatal("no session id")
	}
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	common := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	status, _, _ = rawPost(t, srv, list, with(nil))
	if status != 401 {
		t.Errorf("a session id without a token got %d, want 401", status)
	}
	status, _, body = rawPost(t, srv, list, with(map[string]string{
		"Authorization": "Bearer " + doortest.TokenAlpha, broker.HeaderGraph: doortest.Graph, broker.HeaderNode: "triage"}))
	if status != 404 || strings.Contains(body, doortest.ToolRefund) || strings.Contains(body, doortest.ToolFindCustomer) {
		t.Errorf("the refund node's session used as triage: %d %s; want 404 and no listing", status, body)
	}
	status, _, body = rawPost(t, srv, list, with(map[string]string{
		"Authorization": "Bearer " + doortest.TokenAlpha, broker.HeaderGraph: doortest.Graph, broker.HeaderNode: "refund"}))
	if status != 200 || !strings.Contains(body, doortest.ToolRefund) || strings.Contains(body, doortest.ToolFindCustomer) {
		t.Errorf("the session's own caller: %d %s", status, body)
	}
}

func TestNewRefusesMissingPipeline(t *testing.T) {
	if _, err := mcp.New(nil, mcp.Options{}); err == nil {
		t.Error("New without a pipeline succeeded")
	}
}

// smallCatalog holds only crm_list_orders.
type smallCatalog struct{ *doortest.Catalog }

func (c smallCatalog) Tools() []*broker.Tool {
	t, _ := c.Catalog.Lookup(doortest.ToolListOrders)
	return []*broker.Tool{t}
}

// TestToolsFollowTheSnapshot: the door has no catalog of its own. After the
// broker swaps its snapshot (a reload), the next tools/list answers from
// the new one and calls are routed by it, with no step in the door.
func TestToolsFollowTheSnapshot(t *testing.T) {
	env := doortest.New(t)
	env.Reload(t, smallCatalog{env.Catalog})
	s, err := mcp.New(env.Broker, mcp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", s.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := newGoClient(t, srv.URL, "triage", "2025-11-25", nil)
	if got := c.List(t); strings.Join(got, ",") != doortest.ToolListOrders {
		t.Errorf("tools of the small snapshot = %v", got)
	}
	if o := c.Call(t, doortest.ToolFindCustomer, map[string]any{"email": "a@b.c"}); o.RPCErr == nil {
		t.Errorf("a tool the snapshot does not hold answered: %+v", o)
	}
	if env.Exec.Count() != 0 {
		t.Errorf("executions = %d", env.Exec.Count())
	}

	env.Reload(t, env.Catalog) // the same session sees the new snapshot
	if got := c.List(t); strings.Join(got, ",") != doortest.ToolFindCustomer+","+doortest.ToolListOrders {
		t.Errorf("tools after the reload = %v", got)
	}
	if o := c.Call(t, doortest.ToolFindCustomer, map[string]any{"email": "a@b.c"}); o.RPCErr != nil || o.IsError {
		t.Errorf("a tool the reload added: %+v", o)
	}
	if env.Exec.Count() != 1 {
		t.Errorf("executions = %d, want 1", env.Exec.Count())
	}
}
