package mcptest

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Outcome is a client-neutral view of a tools/call answer.
type Outcome struct {
	// RPCErr is a JSON-RPC (protocol-level) error; the tool did not run.
	RPCErr     error
	IsError    bool
	Text       string
	Structured map[string]any
}

// ErrorCode is the stable code of an isError result ("" when none).
func (o Outcome) ErrorCode() string {
	e, _ := o.Structured["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// Client is what tests need from either client library.
type Client interface {
	// Protocol is the negotiated protocol revision.
	Protocol() string
	// List returns the names of the listed tools; a list error fails t.
	List(t testing.TB) []string
	// Call calls a tool.
	Call(t testing.TB, name string, args map[string]any) Outcome
}

// DialMCPGo connects the mcp-go client to endpoint (the full /mcp URL) with
// headers on every request. version "" lets the client pick its newest
// revision; otherwise the negotiated revision must equal it.
func DialMCPGo(t testing.TB, endpoint string, headers map[string]string, version string) *GoClient {
	t.Helper()
	tr, err := transport.NewStreamableHTTP(endpoint, transport.WithHTTPHeaders(headers))
	if err != nil {
		t.Fatal(err)
	}
	var opts []client.ClientOption
	if version != "" {
		opts = append(opts, client.WithProtocolVersion(version))
	}
	c := client.NewClient(tr, opts...)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := mcpgo.InitializeRequest{}
	req.Params.ClientInfo = mcpgo.Implementation{Name: "test", Version: "1"}
	res, err := c.Initialize(context.Background(), req)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if version != "" && res.ProtocolVersion != version {
		t.Fatalf("negotiated %s, want %s", res.ProtocolVersion, version)
	}
	return &GoClient{c: c, version: res.ProtocolVersion}
}

// GoClient is a connected mcp-go client.
type GoClient struct {
	c       *client.Client
	version string
}

// Raw is the underlying mcp-go client, for what Client does not cover
// (notifications, _meta).
func (g *GoClient) Raw() *client.Client { return g.c }

func (g *GoClient) Protocol() string { return g.version }

func (g *GoClient) List(t testing.TB) []string {
	t.Helper()
	res, err := g.c.ListTools(context.Background(), mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	names := make([]string, 0, len(res.Tools))
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	return names
}

func (g *GoClient) Call(t testing.TB, name string, args map[string]any) Outcome {
	t.Helper()
	req := mcpgo.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = name, args
	res, err := g.c.CallTool(context.Background(), req)
	if err != nil {
		return Outcome{RPCErr: err}
	}
	o := Outcome{IsError: res.IsError}
	if len(res.Content) > 0 {
		if tc, ok := res.Content[0].(mcpgo.TextContent); ok {
			o.Text = tc.Text
		}
	}
	o.Structured = asObject(t, res.StructuredContent, res.RawStructuredContent)
	return o
}

// headerRoundTripper adds fixed headers to every request.
type headerRoundTripper map[string]string

func (h headerRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// DialSDK connects the official go-sdk client to endpoint with headers on
// every request. version "" lets the client pick its newest revision.
func DialSDK(t testing.TB, endpoint string, headers map[string]string, version string) *SDKClient {
	t.Helper()
	hc := &http.Client{Transport: headerRoundTripper(headers)}
	c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil)
	s, err := c.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, DisableStandaloneSSE: true, MaxRetries: -1},
		&sdk.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return &SDKClient{s: s}
}

// SDKClient is a connected go-sdk client session.
type SDKClient struct{ s *sdk.ClientSession }

// Session is the underlying go-sdk session, for what Client does not cover.
func (c *SDKClient) Session() *sdk.ClientSession { return c.s }

func (c *SDKClient) Protocol() string {
	if r := c.s.InitializeResult(); r != nil {
		return r.ProtocolVersion
	}
	return ""
}

func (c *SDKClient) List(t testing.TB) []string {
	t.Helper()
	res, err := c.s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	names := make([]string, 0, len(res.Tools))
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	return names
}

func (c *SDKClient) Call(t testing.TB, name string, args map[string]any) Outcome {
	t.Helper()
	res, err := c.s.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return Outcome{RPCErr: err}
	}
	o := Outcome{IsError: res.IsError}
	if len(res.Content) > 0 {
		if tc, ok := res.Content[0].(*sdk.TextContent); ok {
			o.Text = tc.Text
		}
	}
	o.Structured = asObject(t, res.StructuredContent, nil)
	return o
}

func asObject(t testing.TB, v any, raw json.RawMessage) map[string]any {
	t.Helper()
	if v == nil && len(raw) == 0 {
		return nil
	}
	b := []byte(raw)
	if len(b) == 0 {
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("structuredContent is not an object: %s", b)
	}
	return m
}
