package mcp_test

import (
	"context"
	"strings"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/httpapi/doortest"
	"github.com/toolgate/toolgate/broker/mcp/mcptest"
)

// TestIdentityErrors: an MCP client with an API key but without the
// X-Toolgate-* headers, or naming an unknown node, is told so: tools/list
// is a JSON-RPC error carrying the code and the header (never an empty
// list), and tools/call an isError result with the code that runs nothing
// and is recorded, as every other refusal of a call.
func TestIdentityErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hdr    map[string]string
		code   string
		naming string
	}{
		{"no graph or node", map[string]string{}, "unidentified", broker.HeaderGraph + " and " + broker.HeaderNode},
		{"no node", map[string]string{broker.HeaderGraph: doortest.Graph}, "unidentified", broker.HeaderNode},
		{"unknown node", map[string]string{broker.HeaderGraph: doortest.Graph, broker.HeaderNode: "tirage"}, "unknown_node", `"tirage"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, srv := newServer(t)
			tc.hdr["Authorization"] = "Bearer " + doortest.TokenAlpha
			cl := mcptest.DialMCPGo(t, srv.URL+"/mcp", tc.hdr, "2025-11-25")
			res, err := cl.Raw().ListTools(context.Background(), mcpgo.ListToolsRequest{})
			if err == nil {
				t.Fatalf("tools/list answered %d tools, want an error", len(res.Tools))
			}
			if msg := err.Error(); !strings.Contains(msg, tc.code+": ") || !strings.Contains(msg, tc.naming) {
				t.Errorf("tools/list error %q lacks %q or %q", msg, tc.code, tc.naming)
			}
			sdk := mcptest.DialSDK(t, srv.URL+"/mcp", tc.hdr, "2025-11-25")
			if _, err := sdk.Session().ListTools(context.Background(), nil); err == nil || !strings.Contains(err.Error(), tc.code) {
				t.Errorf("go-sdk tools/list err = %v, want %s", err, tc.code)
			}

			o := cl.Call(t, doortest.ToolFindCustomer, map[string]any{"email": "ada@example.com"})
			if o.RPCErr != nil || !o.IsError || o.ErrorCode() != tc.code || !strings.Contains(o.Text, tc.naming) {
				t.Fatalf("tools/call = %v %+v, want an isError result %s naming %s", o.RPCErr, o, tc.code, tc.naming)
			}
			if env.Exec.Count() != 0 {
				t.Errorf("a refused call ran %d operations", env.Exec.Count())
			}
			evs := env.Recorder.Events()
			if len(evs) != 1 || evs[0].ErrorCode != tc.code || evs[0].Status != broker.StatusDenied || evs[0].Door != "mcp" || evs[0].Principal != "key:alpha" {
				t.Errorf("records = %+v, want the one refusal", evs)
			}
		})
	}
}
