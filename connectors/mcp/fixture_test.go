package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/tools"
)

// serveStdioEnv makes the test binary an mcp-go stdio server (TestMain).
const serveStdioEnv = "TOOLGATE_MCP_TEST_STDIO_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(serveStdioEnv) == "1" {
		fx := newFixture("v1")
		if err := server.ServeStdio(fx.srv); err != nil {
			fmt.Fprintln(os.Stderr, "stdio server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// compile is the schema compiler cmd/toolgate passes: declared tools' rules.
func compile(source string, input, output json.RawMessage) (Schemas, error) {
	s, err := tools.CompileSchemas(source, input, output)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// fixture is an in-test mcp-go server whose tools exercise the connector,
// counting every tools/call that reaches it.
type fixture struct {
	srv      *server.MCPServer
	calls    atomic.Int64
	sessions atomic.Int64
	mu       sync.Mutex
	// refused records what the server's own requests to the client got.
	refused []string
}

func newFixture(echoVersion string, opts ...server.ServerOption) *fixture {
	fx := &fixture{}
	hooks := &server.Hooks{}
	hooks.AddBeforeCallTool(func(context.Context, any, *mcp.CallToolRequest) { fx.calls.Add(1) })
	hooks.AddOnRegisterSession(func(context.Context, server.ClientSession) { fx.sessions.Add(1) })
	// Three tools a page: listing follows cursors.
	opts = append([]server.ServerOption{server.WithToolCapabilities(true), server.WithHooks(hooks), server.WithPaginationLimit(3)}, opts...)
	fx.srv = server.NewMCPServer("fixture", "1.0.0", opts...)
	fx.setEcho(echoVersion)
	add := func(name, desc, schema string, h server.ToolHandlerFunc) {
		fx.srv.AddTool(mcp.NewToolWithRawSchema(name, desc, json.RawMessage(schema)), h)
	}
	add("slow", "Sleeps, sending progress.", `{"type":"object","properties":{"ms":{"type":"integer"},"steps":{"type":"integer"}}}`, slow)
	add("big", "Returns n bytes of text.", `{"type":"object","properties":{"n":{"type":"integer"},"progress":{"type":"boolean"}},"required":["n"]}`, big)
	add("fail", "Always fails.", `{"type":"object"}`, func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultError("boom: the widget is broken"), nil
	})
	add("ask", "Asks the client for sampling, elicitation or roots.", `{"type":"object","properties":{"what":{"enum":["sampling","elicitation","roots"]}},"required":["what"]}`, fx.ask)
	add("dotted.name", "A name function-calling APIs reject.", `{"type":"object"}`, text("never"))
	shape := mcp.NewToolWithRawSchema("shape", "Returns structured content that breaks its output schema.", json.RawMessage(`{"type":"object"}`))
	shape.RawOutputSchema = json.RawMessage(`{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}`)
	fx.srv.AddTool(shape, func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultStructured(map[string]any{"n": "not a number"}, "n"), nil
	})
	add("pid", "Returns the server's process id.", `{"type":"object"}`, func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(strconv.Itoa(os.Getpid())), nil
	})
	add("env", "Returns the server's environment.", `{"type":"object"}`, func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		env := os.Environ()
		sort.Strings(env)
		return mcp.NewToolResultText(strings.Join(env, "\n")), nil
	})
	add("spawn", "Starts a child process and returns its pid.", `{"type":"object"}`, func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		cmd := exec.Command("sleep", "300")
		if err := cmd.Start(); err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		return mcp.NewToolResultText(strconv.Itoa(cmd.Process.Pid)), nil
	})
	add("stderr", "Writes its text to stderr.", `{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}`, func(_ context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		fmt.Fprintln(os.Stderr, r.GetString("text", ""))
		return mcp.NewToolResultText("written"), nil
	})
	return fx
}

// setEcho (re)defines the echo tool; a new description changes its pin.
// mcp-go announces the change with notifications/tools/list_changed.
func (fx *fixture) setEcho(version string) {
	tool := mcp.NewToolWithRawSchema("echo", "Echoes the text back ("+version+").",
		json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}},"required":["text"],"additionalProperties":false}`))
	tool.RawOutputSchema = json.RawMessage(`{"type":"object","properties":{"echo":{"type":"string"}},"required":["echo"]}`)
	ro := true
	tool.Annotations.ReadOnlyHint = &ro
	fx.srv.AddTool(tool, func(_ context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		s := r.GetString("text", "")
		return mcp.NewToolResultStructured(map[string]any{"echo": s}, s), nil
	})
}

func text(s string) server.ToolHandlerFunc {
	return func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(s), nil
	}
}

// progress sends a progress notification when the caller asked for them.
func progress(ctx context.Context, r mcp.CallToolRequest, n, total float64, msg string) {
	if r.Params.Meta == nil || r.Params.Meta.ProgressToken == nil {
		return
	}
	_ = server.ServerFromContext(ctx).SendNotificationToClient(ctx, "notifications/progress", map[string]any{
		"progressToken": r.Params.Meta.ProgressToken, "progress": n, "total": total, "message": msg})
}

func slow(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	steps := r.GetInt("steps", 0)
	for i := 1; i <= steps; i++ {
		progress(ctx, r, float64(i), float64(steps), fmt.Sprintf("step %d of %d, token sk_live_0123456789abcdef", i, steps))
	}
	select {
	case <-time.After(time.Duration(r.GetInt("ms", 0)) * time.Millisecond):
		return mcp.NewToolResultText("done"), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func big(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if r.GetBool("progress", false) {
		progress(ctx, r, 1, 2, "half way")
	}
	return mcp.NewToolResultText(strings.Repeat("x", r.GetInt("n", 0))), nil
}

// ask makes the server request something of the client and records the
// answer's error.
func (fx *fixture) ask(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var err error
	switch r.GetString("what", "") {
	case "sampling":
		_, err = fx.srv.RequestSampling(ctx, mcp.CreateMessageRequest{CreateMessageParams: mcp.CreateMessageParams{
			Messages: []mcp.SamplingMessage{{Role: mcp.RoleUser, Content: mcp.NewTextContent("hi")}}, MaxTokens: 10}})
	case "elicitation":
		_, err = fx.srv.RequestElicitation(ctx, mcp.ElicitationRequest{Params: mcp.ElicitationParams{
			Message: "your password?", RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"p": map[string]any{"type": "string"}}}}})
	case "roots":
		_, err = fx.srv.RequestRoots(ctx, mcp.ListRootsRequest{})
	}
	if err == nil {
		return mcp.NewToolResultText("the client answered"), nil
	}
	fx.mu.Lock()
	fx.refused = append(fx.refused, err.Error())
	fx.mu.Unlock()
	return mcp.NewToolResultError("the client refused: " + err.Error()), nil
}

func (fx *fixture) lastRefusal() string {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	if len(fx.refused) == 0 {
		return ""
	}
	return fx.refused[len(fx.refused)-1]
}

// httpUpstream serves a fixture over streamable HTTP on a fixed address,
// so it can be stopped and started again.
type httpUpstream struct {
	t    testing.TB
	fx   *fixture
	addr string
	srv  *http.Server
}

func startHTTP(t testing.TB, fx *fixture) *httpUpstream {
	h := &httpUpstream{t: t, fx: fx, addr: "127.0.0.1:0"}
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *httpUpstream) url() string { return "http://" + h.addr + "/mcp" }

func (h *httpUpstream) start() {
	h.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old socket may linger a moment
		if ln, err = net.Listen("tcp", h.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/mcp", server.NewStreamableHTTPServer(h.fx.srv))
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = h.srv.Serve(ln) }()
}

func (h *httpUpstream) stop() {
	if h.srv != nil {
		_ = h.srv.Close()
		h.srv = nil
	}
}

// events collects a connector's events.
type events struct {
	mu   sync.Mutex
	list []Event
	ch   chan Event
}

func newEvents() *events { return &events{ch: make(chan Event, 256)} }

func (e *events) on(ev Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
	select {
	case e.ch <- ev:
	default:
	}
}

// wait returns the next event that matches, failing after 20s.
func (e *events) wait(t testing.TB, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-e.ch:
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event within 20s", what)
		}
	}
}

func (e *events) count(kind EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.list {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

func isKind(k EventKind) func(Event) bool { return func(e Event) bool { return e.Kind == k } }

func evaluated(trigger string) func(Event) bool {
	return func(e Event) bool { return e.Kind == EventEvaluated && e.Trigger == trigger }
}

// testOptions are quick-to-recover options that log to an observer.
func testOptions(ev *events) (Options, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	return Options{
		Logger:     zap.New(core),
		Compile:    compile,
		OnEvent:    ev.on,
		BaseEnv:    NeutralEnv(os.Environ()),
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 500 * time.Millisecond,
	}, logs
}

// serveFixture serves a new fixture over streamable HTTP.
func serveFixture(t testing.TB, opts ...server.ServerOption) (*fixture, *httpUpstream) {
	fx := newFixture("v1", opts...)
	return fx, startHTTP(t, fx)
}

// connect starts a connector with testOptions, adjusted by edit when it is
// not nil, and closes it when the test ends.
func connect(t testing.TB, cfg Config, edit func(*Options)) (*Upstream, *events, *observer.ObservedLogs) {
	t.Helper()
	ev := newEvents()
	opt, logs := testOptions(ev)
	if edit != nil {
		edit(&opt)
	}
	return startUpstream(t, cfg, opt), ev, logs
}

// startUpstream starts a connector and closes it when the test ends.
func startUpstream(t testing.TB, cfg Config, opt Options) *Upstream {
	t.Helper()
	u, err := New(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := u.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	return u
}

// call runs a catalog tool the way the broker does: validate, bind,
// execute.
func call(t testing.TB, u *Upstream, ctx context.Context, name string, args map[string]any) (broker.Output, error) {
	t.Helper()
	var tool *broker.Tool
	for _, tl := range u.Snapshot().Tools {
		if tl.Name == name {
			tool = tl
		}
	}
	if tool == nil {
		t.Fatalf("tool %s is not in the snapshot", name)
	}
	if err := tool.Spec.ValidateArgs(args); err != nil {
		return broker.Output{}, err
	}
	op, err := tool.Spec.Operation(args)
	if err != nil {
		return broker.Output{}, err
	}
	op.Target = tool.Target
	return u.Execute(ctx, op)
}

// rawCall executes an operation for an upstream tool name directly, as a
// stale catalog would.
func rawCall(u *Upstream, tool string, args string) (broker.Output, error) {
	return u.Execute(context.Background(), broker.Operation{Target: u.cfg.Name, MCP: &broker.MCPOperation{Tool: tool, Args: json.RawMessage(args)}})
}

// wantCode checks a refusal's code and that its message says what.
func wantCode(t testing.TB, err error, code broker.Code, says string) {
	t.Helper()
	var e *broker.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want a %s refusal", err, code)
	}
	if e.Code != code || !strings.Contains(e.Message, says) {
		t.Fatalf("got %s %q, want %s saying %q", e.Code, e.Message, code, says)
	}
}

// fieldOf is the Field of err's *broker.Error, "" for none.
func fieldOf(err error) string {
	var e *broker.Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// pinAll pins every tool an upstream lists now into a lock file at path.
func pinAll(t testing.TB, ctx context.Context, cfg Config, path string) {
	t.Helper()
	defs, _, err := List(ctx, cfg, Options{BaseEnv: NeutralEnv(os.Environ())})
	if err != nil {
		t.Fatal(err)
	}
	pins, err := Pin(defs)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}
	lock.Set(cfg.Name, pins)
	if err := lock.WriteFile(path); err != nil {
		t.Fatal(err)
	}
}
