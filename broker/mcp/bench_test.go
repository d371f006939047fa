package mcp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/httpapi/doortest"
)

// BenchmarkToolsCall compares one tools/call through toolgate's full
// pipeline with a bare mcp-go server running the same executor, both over
// loopback HTTP with the mcp-go client on a 2025-11-25 session.
func BenchmarkToolsCall(b *testing.B) {
	env := doortest.New(b)
	bare := server.NewMCPServer("bare", "1", server.WithToolCapabilities(false))
	tool, _ := env.Catalog.Lookup(doortest.ToolFindCustomer)
	bare.AddTool(mcpgo.NewToolWithRawSchema(tool.Name, tool.Description, tool.InputSchema),
		func(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			out, err := env.Exec.Execute(ctx, broker.Operation{SQL: &broker.SQLOperation{Statement: "SELECT 1", Args: []any{req.GetArguments()["email"]}}})
			if err != nil {
				return nil, err
			}
			return &mcpgo.CallToolResult{Content: []mcpgo.Content{mcpgo.NewTextContent(string(out.Value))}, StructuredContent: json.RawMessage(out.Value)}, nil
		})
	bareMux := http.NewServeMux()
	bareMux.Handle("/mcp", server.NewStreamableHTTPServer(bare))
	bareSrv := httptest.NewServer(bareMux)
	defer bareSrv.Close()

	_, tgSrv := newServer(b)
	defer tgSrv.Close()

	for _, tc := range []struct{ name, url string }{{"bare-mcp-go", bareSrv.URL}, {"toolgate", tgSrv.URL}} {
		b.Run(tc.name, func(b *testing.B) {
			tr, err := transport.NewStreamableHTTP(tc.url+"/mcp", transport.WithHTTPHeaders(map[string]string{
				"Authorization": "Bearer " + doortest.TokenAlpha, broker.HeaderGraph: doortest.Graph, broker.HeaderNode: "triage"}))
			if err != nil {
				b.Fatal(err)
			}
			c := client.NewClient(tr, client.WithProtocolVersion("2025-11-25"))
			ctx := context.Background()
			if err := c.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Initialize(ctx, mcpgo.InitializeRequest{}); err != nil {
				b.Fatal(err)
			}
			req := mcpgo.CallToolRequest{}
			req.Params.Name = doortest.ToolFindCustomer
			req.Params.Arguments = map[string]any{"email": "ada@example.com"}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := c.CallTool(ctx, req)
				if err != nil || res.IsError {
					b.Fatalf("call: %v %+v", err, res)
				}
			}
		})
	}
}
