package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
)

// benchUpstreamTargetRatio is the §11 target for an upstream MCP server's
// tool through toolgate against calling it directly.
const benchUpstreamTargetRatio = 0.7

// benchUpstreamConfig fronts one upstream MCP server as serve would: an
// API key, a graph with an allow glob and a CEL rule over the upstream
// tool's arguments, masking and a SQLite audit store.
const benchUpstreamConfig = `listen: 127.0.0.1:0
store: {driver: sqlite, path: ./toolgate.db}
auth:
  api_keys:
    - {name: bot, sha256: "${BENCH_BOT_SHA256}"}
targets:
  up: {kind: mcp, url: "${BENCH_UPSTREAM_URL}", expose: all, mask: {card: last4}}
graphs:
  support-bot:
    principals: ["key:bot"]
    nodes:
      triage:
        allow: ["up_*"]
        rules:
          - {tool: up_echo, when: 'args.text.startsWith("blocked")', effect: deny, reason: blocked text}
`

// TestUpstreamOverhead compares an upstream MCP server's trivial tool
// called directly by 16 mcp-go clients with the same tool called through
// toolgate (openApp as serve builds it: the full pipeline, a durable
// SQLite record and the second hop to the upstream over one shared
// session). Like TestMCPOverhead it is a measurement, run only with
// TOOLGATE_BENCH=1, and prints BenchmarkUpstreamOverhead for benchreport.
func TestUpstreamOverhead(t *testing.T) {
	if os.Getenv("TOOLGATE_BENCH") != "1" {
		t.Skip("a measurement: set TOOLGATE_BENCH=1 (make bench does)")
	}
	calls := benchCalls(t)
	upLn := listenLoopback(t)
	upURL := "http://" + upLn.Addr().String()
	serveBench(t, upLn, benchUpstream())

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tools"), 0o755); err != nil {
		t.Fatal(err)
	}
	key, sum, err := auth.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := parseBenchConfig(t, dir, benchUpstreamConfig, map[string]string{"BENCH_BOT_SHA256": sum, "BENCH_UPSTREAM_URL": upURL + "/mcp"})
	tgLn := listenLoopback(t)
	cfg.PublicURL = "http://" + tgLn.Addr().String()
	a, err := openApp(context.Background(), cfg, newLogger(io.Discard, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	serveBench(t, tgLn, a.handler)

	headers := map[string]string{"Authorization": "Bearer " + key, broker.HeaderGraph: "support-bot", broker.HeaderNode: "triage"}
	call := func(name string) func(i int) *benchClient {
		return func(i int) *benchClient {
			req := mcpgo.CallToolRequest{}
			req.Params.Name = name
			req.Params.Arguments = map[string]any{"text": fmt.Sprintf("hello %d", i)}
			return &benchClient{req: req, expect: "hello"}
		}
	}
	tg := dialBench(t, cfg.PublicURL, headers, call("up_echo"))
	direct := dialBench(t, upURL, nil, call("echo"))
	tgRes, dRes, tgSerial, dSerial := compareSides(t, tg, direct, calls)

	ratio := tgRes.throughput() / dRes.throughput()
	tp50, dp50 := tgRes.percentile(0.50), dRes.percentile(0.50)
	sp50, sdp50 := tgSerial.percentile(0.50), dSerial.percentile(0.50)
	t.Logf("upstream MCP tool, %d callers x %d calls per side, %d interleaved rounds", benchCallers, len(tgRes.lat)/benchCallers, benchRounds)
	t.Logf("%-10s %12s %10s %10s", "side", "calls/s", "p50", "p99")
	t.Logf("%-10s %12.0f %10s %10s", "toolgate", tgRes.throughput(), tp50, tgRes.percentile(0.99))
	t.Logf("%-10s %12.0f %10s %10s", "direct", dRes.throughput(), dp50, dRes.percentile(0.99))
	t.Logf("throughput ratio %.3f (target >= %.2f); one caller: p50 %s vs %s", ratio, benchUpstreamTargetRatio, sp50, sdp50)
	ms := func(d interface{ Microseconds() int64 }) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("BenchmarkUpstreamOverhead\t%d\t%.0f ns/op\t%.1f tg-calls/s\t%.1f direct-calls/s\t%.4f x-direct\t%.4f tg-p50-ms\t%.4f direct-p50-ms\t%.4f serial-tg-p50-ms\t%.4f serial-direct-p50-ms\n",
		len(tgRes.lat), float64(tgRes.elapsed)/float64(len(tgRes.lat)), tgRes.throughput(), dRes.throughput(), ratio,
		ms(tp50), ms(dp50), ms(sp50), ms(sdp50))
}

// benchUpstream is the upstream: an mcp-go server over streamable HTTP
// with one trivial tool.
func benchUpstream() http.Handler {
	s := server.NewMCPServer("upstream", "1", server.WithToolCapabilities(false))
	s.AddTool(mcpgo.NewToolWithRawSchema("echo", "Echoes the text back.",
		json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}},"required":["text"],"additionalProperties":false}`)),
		func(_ context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			return mcpgo.NewToolResultText(req.GetString("text", "")), nil
		})
	mux := http.NewServeMux()
	mux.Handle("/mcp", server.NewStreamableHTTPServer(s))
	return mux
}
