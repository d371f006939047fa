package mcp

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// benchCallers is how many clients call at once (DESIGN §11: 16 clients).
const benchCallers = 16

// runCallers runs call from benchCallers goroutines and reports calls/s.
func runCallers(b *testing.B, call func() error) {
	b.SetParallelism((benchCallers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := call(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

// BenchmarkUpstreamDirect is the baseline: mcp-go's own client calling a
// trivial tool of an mcp-go streamable HTTP server, one session, sixteen
// callers, the same HTTP connection pool and protocol version as the
// connector.
func BenchmarkUpstreamDirect(b *testing.B) {
	h := startHTTP(b, newFixture("v1"))
	tr, err := transport.NewStreamableHTTP(h.url(), transport.WithHTTPBasicClient(&http.Client{Transport: benchTransport()}))
	if err != nil {
		b.Fatal(err)
	}
	c := client.NewClient(tr, client.WithProtocolVersion(mcpgo.LATEST_LEGACY_PROTOCOL_VERSION))
	defer c.Close()
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Initialize(ctx, mcpgo.InitializeRequest{Params: mcpgo.InitializeParams{
		ProtocolVersion: mcpgo.LATEST_LEGACY_PROTOCOL_VERSION, ClientInfo: mcpgo.Implementation{Name: "bench", Version: "1"}}}); err != nil {
		b.Fatal(err)
	}
	req := mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hello"}}}
	runCallers(b, func() error {
		res, err := c.CallTool(ctx, req)
		if err == nil && res.IsError {
			b.Error("the tool failed")
		}
		return err
	})
}

// BenchmarkUpstreamViaConnector is the same calls through the connector:
// the tool's operation bound and executed on the shared session.
func BenchmarkUpstreamViaConnector(b *testing.B) {
	h := startHTTP(b, newFixture("v1"))
	u := startUpstream(b, Config{Name: "fx", URL: h.url(), Expose: ExposeAll},
		Options{Logger: zap.NewNop(), Compile: compile, HealthInterval: -1})
	var tool *broker.Tool
	for _, tl := range u.Snapshot().Tools {
		if tl.Name == "fx_echo" {
			tool = tl
		}
	}
	ctx := context.Background()
	args := map[string]any{"text": "hello"}
	runCallers(b, func() error {
		op, err := tool.Spec.Operation(args)
		if err != nil {
			return err
		}
		op.Target = "fx"
		_, err = u.Execute(ctx, op)
		return err
	})
}

// benchTransport is the connector's HTTP pool, for the baseline.
func benchTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
}

// BenchmarkOutput is the connector's work on one tools/call result: the
// structured content checked against the output schema and a text block
// that repeats it carried as a JSON object for masking.
func BenchmarkOutput(b *testing.B) {
	schemas, err := compile("bench", json.RawMessage(`{"type":"object"}`),
		json.RawMessage(`{"type":"object","properties":{"id":{"type":"integer"},"card":{"type":"string"}},"required":["id"]}`))
	if err != nil {
		b.Fatal(err)
	}
	e := Entry{Name: "fx_get", State: StateExposed, Definition: &Definition{Tool: "get", OutputSchema: json.RawMessage(`{}`)}, schemas: schemas}
	u := &Upstream{cfg: Config{Name: "fx"}}
	for _, c := range []struct{ name, raw string }{
		{"text", `{"content":[{"type":"text","text":"hello 7"}]}`},
		{"structured", `{"content":[{"type":"text","text":"{\"card\":\"4242424242424242\",\"id\":7}"}],"structuredContent":{"card":"4242424242424242","id":7}}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := u.output(e, json.RawMessage(c.raw)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
