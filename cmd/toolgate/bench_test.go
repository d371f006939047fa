package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/connectors/postgres"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/internal/testenv"
)

// The MCP overhead comparison (a performance target): one tools/call through
// toolgate's full pipeline against a bare mcp-go server running the same
// SQL on the same pgx pool. Both are served over loopback HTTP in this
// process and driven by the same mcp-go client setup.
const (
	benchCallers = 16
	benchSQL     = "SELECT id, name, email, card_number, ssn FROM customers WHERE email = $1"
	// benchTargetRatio and benchTargetAddedP50 are the §11 targets.
	benchTargetRatio    = 0.85
	benchTargetAddedP50 = 200 * time.Microsecond
)

const benchConfig = `listen: 127.0.0.1:0
store: {driver: sqlite, path: ./toolgate.db}
auth:
  api_keys:
    - {name: bot, sha256: "${BENCH_BOT_SHA256}"}
targets:
  crm: {kind: postgres, dsn: "${BENCH_CRM_DSN}", read_only: true, max_rows: 100, statement_timeout: 5s, max_conns: 16}
tools_dir: ./tools
graphs:
  support-bot:
    principals: ["key:bot"]
    nodes:
      triage:
        allow: [crm_find_customer]
        rules:
          - {tool: crm_find_customer, when: 'args.email.endsWith("@blocked.example")', effect: deny, reason: blocked domain}
`

const benchTool = `{
  "name": "crm_find_customer",
  "description": "Look up one customer by email address.",
  "target": "crm",
  "input_schema": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"], "additionalProperties": false},
  "sql": {"statement": "` + benchSQL + `", "args": ["email"], "max_rows": 50},
  "annotations": {"readOnlyHint": true},
  "mask": {"rows.#.card_number": "last4", "rows.#.email": "email"}
}`

// TestMCPOverhead runs the comparison. It is a measurement, not a check,
// so it runs only with TOOLGATE_BENCH=1 (make bench sets it);
// TOOLGATE_BENCH_CALLS sets the calls per caller per server (default 400).
// Besides a readable table it prints one line in `go test -bench` format,
// BenchmarkMCPOverhead, that internal/benchreport reads.
func TestMCPOverhead(t *testing.T) {
	if os.Getenv("TOOLGATE_BENCH") != "1" {
		t.Skip("a measurement: set TOOLGATE_BENCH=1 (make bench does)")
	}
	calls := benchCalls(t)
	env := newBenchEnv(t)
	tg := dialBenchClients(t, env.toolgateURL, env.key)
	bare := dialBenchClients(t, env.bareURL, env.key)
	tgRes, bareRes, tgSerial, bareSerial := compareSides(t, tg, bare, calls)
	sp50, sbp50 := tgSerial.percentile(0.50), bareSerial.percentile(0.50)

	tp50, tp99 := tgRes.percentile(0.50), tgRes.percentile(0.99)
	bp50, bp99 := bareRes.percentile(0.50), bareRes.percentile(0.99)
	ratio := tgRes.throughput() / bareRes.throughput()
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	t.Logf("MCP tools/call, %d callers x %d calls per server, %d interleaved rounds", benchCallers, len(tgRes.lat)/benchCallers, benchRounds)
	t.Logf("%-10s %12s %10s %10s", "server", "calls/s", "p50", "p99")
	t.Logf("%-10s %12.0f %10s %10s", "toolgate", tgRes.throughput(), tp50, tp99)
	t.Logf("%-10s %12.0f %10s %10s", "bare", bareRes.throughput(), bp50, bp99)
	t.Logf("throughput ratio %.3f (target >= %.2f) %s", ratio, benchTargetRatio, verdict(ratio >= benchTargetRatio))
	t.Logf("added p50 %s (target <= %s) %s; added p99 %s", tp50-bp50, benchTargetAddedP50, verdict(tp50-bp50 <= benchTargetAddedP50), tp99-bp99)
	t.Logf("one caller: p50 %s vs %s, added %s", sp50, sbp50, sp50-sbp50)

	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	fmt.Printf("BenchmarkMCPOverhead\t%d\t%.0f ns/op\t%.1f tg-calls/s\t%.1f bare-calls/s\t%.4f x-bare\t%.4f tg-p50-ms\t%.4f bare-p50-ms\t%.4f added-p50-ms\t%.4f tg-p99-ms\t%.4f bare-p99-ms\t%.4f added-p99-ms\t%.4f serial-tg-p50-ms\t%.4f serial-bare-p50-ms\t%.4f serial-added-p50-ms\n",
		len(tgRes.lat), float64(tgRes.elapsed)/float64(len(tgRes.lat)),
		tgRes.throughput(), bareRes.throughput(), ratio,
		ms(tp50), ms(bp50), ms(tp50-bp50), ms(tp99), ms(bp99), ms(tp99-bp99), ms(sp50), ms(sbp50), ms(sp50-sbp50))
}

// benchRounds is how many interleaved rounds a comparison drives.
const benchRounds = 10

// benchCalls is TOOLGATE_BENCH_CALLS, the calls per caller per server
// (default 400).
// parseBenchConfig parses a measurement's toolgate.yaml in dir, ${VAR}
// taken from vars only.
func parseBenchConfig(t testing.TB, dir, yaml string, vars map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(dir, "toolgate.yaml"), []byte(yaml), func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func benchCalls(t *testing.T) int {
	t.Helper()
	s := os.Getenv("TOOLGATE_BENCH_CALLS")
	if s == "" {
		return 400
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 10 {
		t.Fatalf("TOOLGATE_BENCH_CALLS=%q: want an integer >= 10", s)
	}
	return n
}

// compareSides drives both sides alike: a warm-up, then interleaved rounds
// (A B, B A, ...) of calls callers each so that drift on a shared machine
// hits both alike, then one caller alternating call by call (the added
// latency of a call on an idle server, without queueing).
func compareSides(t *testing.T, a, b []*benchClient, calls int) (aRes, bRes, aSerial, bSerial benchSide) {
	t.Helper()
	driveRound(t, a, 20)
	driveRound(t, b, 20)
	per := max(calls/benchRounds, 1)
	for r := range benchRounds {
		if r%2 == 0 {
			aRes.add(driveRound(t, a, per))
			bRes.add(driveRound(t, b, per))
		} else {
			bRes.add(driveRound(t, b, per))
			aRes.add(driveRound(t, a, per))
		}
	}
	for range min(calls, 300) {
		aSerial.add(driveRound(t, a[:1], 1))
		bSerial.add(driveRound(t, b[:1], 1))
	}
	return aRes, bRes, aSerial, bSerial
}

// benchEnv is the two servers under comparison.
type benchEnv struct {
	toolgateURL, bareURL string
	key                  string
	app                  *app
}

func newBenchEnv(t testing.TB) *benchEnv {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.Postgres(t).CreateDB(t)
	seedCustomers(t, dsn, 1000)

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tools"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tools", "crm_find_customer.json"), []byte(benchTool), 0o644); err != nil {
		t.Fatal(err)
	}
	key, sum, err := auth.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := parseBenchConfig(t, dir, benchConfig, map[string]string{"BENCH_BOT_SHA256": sum, "BENCH_CRM_DSN": dsn})

	// toolgate: the app `serve` builds, on its own listener.
	tgLn := listenLoopback(t)
	cfg.PublicURL = "http://" + tgLn.Addr().String()
	// serve's logger (JSON at info), writing nowhere: per-call logging counts.
	a, err := openApp(ctx, cfg, newLogger(io.Discard, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	serveBench(t, tgLn, a.handler)

	// bare: mcp-go with one tool running the same SQL on the same pool.
	pg, ok := a.targets["crm"].(*postgres.Connector)
	if !ok {
		t.Fatalf("target crm is %T, want *postgres.Connector", a.targets["crm"])
	}
	bareLn := listenLoopback(t)
	serveBench(t, bareLn, bareServer(pg.Pool()))

	return &benchEnv{toolgateURL: "http://" + tgLn.Addr().String(), bareURL: "http://" + bareLn.Addr().String(), key: key, app: a}
}

func seedCustomers(t testing.TB, dsn string, n int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE, card_number text NOT NULL, ssn text);
		INSERT INTO customers SELECT i, 'Customer ' || i, 'customer' || i || '@example.com', '4242424242424242', '123-45-' || lpad(i::text, 4, '0') FROM generate_series(1, `+strconv.Itoa(n)+`) i`)
	if err != nil {
		t.Fatal(err)
	}
}

// bareServer is what a developer would write without toolgate: one mcp-go
// tool that runs the SQL and returns the rows as JSON.
func bareServer(pool *pgxpool.Pool) http.Handler {
	s := server.NewMCPServer("bare", "1", server.WithToolCapabilities(false))
	s.AddTool(mcpgo.NewToolWithRawSchema("crm_find_customer", "Look up one customer by email address.",
		json.RawMessage(`{"type":"object","properties":{"email":{"type":"string"}},"required":["email"],"additionalProperties":false}`)),
		func(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			// pgx's default mode, as a bare server would run it (the
			// shared pool's default is toolgate's).
			rows, err := pool.Query(ctx, benchSQL, pgx.QueryExecModeCacheStatement, req.GetString("email", ""))
			if err != nil {
				return nil, err
			}
			found, err := pgx.CollectRows(rows, pgx.RowToMap)
			if err != nil {
				return nil, err
			}
			out, err := json.Marshal(map[string]any{"rows": found, "row_count": len(found), "truncated": false})
			if err != nil {
				return nil, err
			}
			return &mcpgo.CallToolResult{Content: []mcpgo.Content{mcpgo.NewTextContent(string(out))}, StructuredContent: json.RawMessage(out)}, nil
		})
	mux := http.NewServeMux()
	mux.Handle("/mcp", server.NewStreamableHTTPServer(s))
	return mux
}

func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveBench serves h on ln with serve's server settings until the test ends.
func serveBench(t testing.TB, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// benchClient is one caller's initialized mcp-go session.
type benchClient struct {
	c   *client.Client
	req mcpgo.CallToolRequest
	// expect is text every answer must hold.
	expect string
}

// dialBenchClients opens one mcp-go session per caller, each calling
// crm_find_customer as node triage of support-bot.
func dialBenchClients(t *testing.T, url, key string) []*benchClient {
	t.Helper()
	headers := map[string]string{"Authorization": "Bearer " + key, broker.HeaderGraph: "support-bot", broker.HeaderNode: "triage"}
	return dialBench(t, url, headers, func(i int) *benchClient {
		req := mcpgo.CallToolRequest{}
		req.Params.Name = "crm_find_customer"
		req.Params.Arguments = map[string]any{"email": fmt.Sprintf("customer%d@example.com", 1+i*37)}
		return &benchClient{req: req, expect: `"row_count":1`}
	})
}

// dialBench opens one mcp-go session per caller, on an HTTP transport that
// keeps a connection per caller; call gives caller i its call.
func dialBench(t *testing.T, url string, headers map[string]string, call func(i int) *benchClient) []*benchClient {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 4 * benchCallers, MaxIdleConnsPerHost: 4 * benchCallers, IdleConnTimeout: time.Minute}}
	t.Cleanup(hc.CloseIdleConnections)
	out := make([]*benchClient, benchCallers)
	for i := range out {
		tr, err := transport.NewStreamableHTTP(url+"/mcp", transport.WithHTTPBasicClient(hc), transport.WithHTTPHeaders(headers))
		if err != nil {
			t.Fatal(err)
		}
		c := client.NewClient(tr, client.WithProtocolVersion("2025-11-25"))
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		init := mcpgo.InitializeRequest{}
		init.Params.ClientInfo = mcpgo.Implementation{Name: "bench", Version: "1"}
		if _, err := c.Initialize(context.Background(), init); err != nil {
			t.Fatalf("initialize %s: %v", url, err)
		}
		out[i] = call(i)
		out[i].c = c
	}
	return out
}

// roundResult is one round against one server.
type roundResult struct {
	elapsed time.Duration
	lat     []time.Duration
}

// driveRound has every caller make n calls at once and returns the wall
// time and each call's latency. A failed or refused call fails the test:
// a benchmark of errors measures nothing.
func driveRound(t *testing.T, clients []*benchClient, n int) roundResult {
	t.Helper()
	lats := make([][]time.Duration, len(clients))
	errs := make(chan error, len(clients))
	var wg sync.WaitGroup
	start := time.Now()
	for i, bc := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, n)
			for range n {
				t0 := time.Now()
				res, err := bc.c.CallTool(context.Background(), bc.req)
				l = append(l, time.Since(t0))
				if err != nil {
					errs <- err
					return
				}
				if text := resultText(res); res.IsError || !strings.Contains(text, bc.expect) {
					errs <- fmt.Errorf("unexpected result: %s", text)
					return
				}
			}
			lats[i] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return roundResult{elapsed: elapsed, lat: all}
}

func resultText(res *mcpgo.CallToolResult) string {
	if len(res.Content) > 0 {
		if tc, ok := res.Content[0].(mcpgo.TextContent); ok {
			return tc.Text
		}
	}
	return ""
}

// benchSide accumulates one server's rounds.
type benchSide struct {
	elapsed time.Duration
	lat     []time.Duration
	sorted  bool
}

func (s *benchSide) add(r roundResult) {
	s.elapsed += r.elapsed
	s.lat = append(s.lat, r.lat...)
	s.sorted = false
}

func (s *benchSide) throughput() float64 { return float64(len(s.lat)) / s.elapsed.Seconds() }

func (s *benchSide) percentile(p float64) time.Duration {
	if !s.sorted {
		slices.Sort(s.lat)
		s.sorted = true
	}
	i := min(int(p*float64(len(s.lat))), len(s.lat)-1)
	return s.lat[i]
}
