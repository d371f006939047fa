package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// acmeCard is the card number acme's tools return, which toolgate masks.
const acmeCard = "4111111111111111"

// acmeUpstream is an mcp-go server over streamable HTTP that toolgate
// fronts in the end-to-end tests, as a team's own MCP server would be. It
// requires a bearer token, counts the calls each tool gets, and can change
// its echo tool's description at runtime.
type acmeUpstream struct {
	URL   string
	srv   *server.MCPServer
	hs    *httptest.Server
	token string
	mu    sync.Mutex
	calls map[string]int
}

func newAcme(t *testing.T, token string) *acmeUpstream {
	t.Helper()
	a := &acmeUpstream{token: token, calls: map[string]int{}}
	hooks := &server.Hooks{}
	hooks.AddBeforeCallTool(func(_ context.Context, _ any, r *mcpgo.CallToolRequest) {
		a.mu.Lock()
		a.calls[r.Params.Name]++
		a.mu.Unlock()
	})
	a.srv = server.NewMCPServer("acme", "1.0.0", server.WithToolCapabilities(true), server.WithHooks(hooks))
	add := func(name, desc, schema string, h server.ToolHandlerFunc) {
		a.srv.AddTool(mcpgo.NewToolWithRawSchema(name, desc, json.RawMessage(schema)), h)
	}
	add("lookup", "Looks up a customer.", `{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}`,
		func(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			return mcpgo.NewToolResultStructured(map[string]any{"id": 7, "name": "Ann", "email": "ann@example.com", "card": acmeCard},
				"Ann, ann@example.com, pays with card "+acmeCard), nil
		})
	add("profile", "Returns a customer's profile, its text the JSON of its structured content.", `{"type":"object"}`,
		func(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			v := map[string]any{"name": "Ann", "phone": "+1 555 0100"}
			text, _ := json.Marshal(v)
			return mcpgo.NewToolResultStructured(v, string(text)), nil
		})
	add("refund", "Refunds an amount to a customer.", `{"type":"object","properties":{"customer_id":{"type":"integer"},"amount":{"type":"number"}},"required":["customer_id","amount"]}`,
		func(_ context.Context, r mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			return mcpgo.NewToolResultStructured(map[string]any{"refunded": r.GetFloat("amount", 0)}, "refunded"), nil
		})
	add("big", "Returns n bytes of text.", `{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}`,
		func(_ context.Context, r mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			return mcpgo.NewToolResultText(strings.Repeat("x", r.GetInt("n", 0))), nil
		})
	add("ping", "Answers pong.", `{"type":"object"}`,
		func(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			return mcpgo.NewToolResultText("pong"), nil
		})
	add("whoami", "Returns the Authorization header it was called with.", `{"type":"object"}`,
		func(_ context.Context, r mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			return mcpgo.NewToolResultText("called with " + r.Header.Get("Authorization")), nil
		})
	a.setEcho("Echoes the text back.")
	a.hs = httptest.NewServer(a.auth(server.NewStreamableHTTPServer(a.srv)))
	t.Cleanup(a.hs.Close)
	a.URL = a.hs.URL + "/mcp"
	return a
}

// setEcho (re)defines the echo tool with description; mcp-go announces the
// change with notifications/tools/list_changed.
func (a *acmeUpstream) setEcho(description string) {
	a.srv.AddTool(mcpgo.NewToolWithRawSchema("echo", description, json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}`)),
		func(_ context.Context, r mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			return mcpgo.NewToolResultText(r.GetString("text", "")), nil
		})
}

// auth refuses requests without the bearer token.
func (a *acmeUpstream) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+a.token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// total is how many calls all tools got.
func (a *acmeUpstream) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.calls {
		n += c
	}
	return n
}

// count is how many calls tool got.
func (a *acmeUpstream) count(tool string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[tool]
}
