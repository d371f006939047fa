package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// The door names this package puts in broker.Call.
const (
	DoorHTTP  = "mcp"
	DoorStdio = "stdio"
)

// Options configure the MCP front door.
type Options struct {
	// Name and Version are what the server reports to clients.
	Name, Version string
	// ResourceMetadataURL is the RFC 9728 metadata URL named in 401
	// challenges.
	ResourceMetadataURL string
	// Logger receives mcp-go's transport log; nil means zap.NewNop().
	Logger *zap.Logger
	// MaxBodyBytes caps one MCP HTTP request body; 0 means 4 MiB.
	MaxBodyBytes int64
}

// Pipeline is the broker as the MCP door sees it: the pipeline, and the
// live snapshot whose tools mcp-go routes calls for.
type Pipeline interface {
	broker.Pipeline
	Snapshot() *broker.Snapshot
}

var _ Pipeline = (*broker.Broker)(nil)

// Server is the MCP front door.
type Server struct {
	p    Pipeline
	opts Options
	log  *zap.Logger
	mcp  *server.MCPServer
	http http.Handler
	open openRequests
	// routed is the generation of the snapshot whose tools mcp-go's
	// table routes; routeMu orders updates.
	routed  atomic.Uint64
	routeMu sync.Mutex
}

// New builds the MCP front door for the tools of p's live snapshot.
func New(p Pipeline, opts Options) (*Server, error) {
	if p == nil {
		return nil, errors.New("mcp: a pipeline is required")
	}
	if opts.Name == "" {
		opts.Name = "toolgate"
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 4 << 20
	}
	s := &Server{p: p, opts: opts, log: opts.Logger}

	hooks := &server.Hooks{}
	hooks.AddOnRequestInitialization(func(context.Context, any, any) error { return s.route() })
	hooks.AddOnRequestInitialization(s.refuseListing)
	hooks.AddAfterListTools(s.listTools)
	s.mcp = server.NewMCPServer(opts.Name, opts.Version,
		// listChanged: mcp-go tells every initialized session when the
		// tool table changes (route), as upstream MCP tools come and go.
		server.WithToolCapabilities(true),
		server.WithHooks(hooks),
		server.WithRecovery(),
	)
	if err := s.route(); err != nil {
		return nil, err
	}

	streamable := server.NewStreamableHTTPServer(s.mcp,
		server.WithStreamableHTTPLogger(slog.New(zapHandler{log: s.log.Named("mcp-go")})),
		server.WithSessionIdManagerResolver(sessions{}),
	)
	s.http = door.Recover(p, s.capBody(door.Authenticate(p, opts.ResourceMetadataURL,
		func(w http.ResponseWriter, r *http.Request, c broker.Caller) {
			if !s.ownSession(w, r, c) {
				return
			}
			ctx, done := s.open.track(r.Context(), c)
			defer done()
			streamable.ServeHTTP(w, r.WithContext(withCall(ctx, c, DoorHTTP)))
		})))
	return s, nil
}

// ownSession refuses, with 404 as for an unknown session, a request that
// names an Mcp-Session-Id not minted for its caller's principal, graph and
// node, whatever its method. Requests of the 2026-07-28 revision carry no
// session (mcp-go ignores the header there).
func (s *Server) ownSession(w http.ResponseWriter, r *http.Request, c broker.Caller) bool {
	id := r.Header.Get(server.HeaderKeySessionID)
	if id == "" || mcpgo.IsModernProtocol(r.Header.Get(mcpgo.HeaderProtocolVersion)) || sessionOwnedBy(id, c) {
		return true
	}
	s.log.Info("mcp request with another caller's session refused", zap.String("principal", c.Principal.Subject), zap.String("method", r.Method))
	door.WriteError(w, broker.Errorf(broker.CodeNotFound, "no MCP session %s for this caller; a session belongs to the principal, graph and node that initialized it, so initialize a new one", id), s.opts.ResourceMetadataURL)
	return false
}

// route keeps mcp-go's tool table on the live snapshot. mcp-go only routes
// a tools/call to a name in its table, so the table holds every tool of
// the snapshot and every tool it withholds, by name alone, each routed to handleCall; it is rebuilt
// before a request is handled whenever the broker swapped its snapshot.
// Nothing else reads it: tools/list answers from the snapshot (listTools)
// and every call is decided by the broker. A tool mcp-go refuses to route
// is an error and the old table keeps routing.
func (s *Server) route() (err error) {
	snap := s.p.Snapshot()
	if s.routed.Load() == snap.Generation() {
		return nil
	}
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	if s.routed.Load() >= snap.Generation() {
		return nil
	}
	tools := snap.Catalog().Tools()
	st := make([]server.ServerTool, 0, len(tools))
	for _, t := range tools {
		st = append(st, server.ServerTool{Tool: mcpgo.Tool{Name: t.Name}, Handler: s.handleCall})
	}
	// A withheld tool (a quarantined upstream tool) is routed too, so its
	// calls reach the broker, which refuses and records them.
	for _, w := range snap.Withheld() {
		st = append(st, server.ServerTool{Tool: mcpgo.Tool{Name: w.Name}, Handler: s.handleCall})
	}
	defer func() {
		// mcp-go panics on a tool it cannot register; report it instead.
		if v := recover(); v != nil {
			err = fmt.Errorf("mcp: route tools: %v", v)
		}
	}()
	s.mcp.SetTools(st...)
	s.routed.Store(snap.Generation())
	return nil
}

// Sync routes the live snapshot's tools now, rather than before the next
// request, so that clients with an open session hear
// notifications/tools/list_changed as soon as the broker swapped its
// snapshot (a reload, upstream MCP tools that joined or left). Their next
// tools/list answers from the new snapshot.
func (s *Server) Sync() {
	if err := s.route(); err != nil {
		s.log.Error("mcp tool table not updated", zap.Error(err))
	}
}

// Handler serves MCP streamable HTTP; mount it at /mcp.
func (s *Server) Handler() http.Handler { return s.http }

// ServeStdio serves MCP over stdio until ctx ends or in is closed. The
// credentials come from the process (a token from the environment); they
// are identified once, before any message is read, and a refusal is
// returned as the error. mcp-go's stdio session is process-wide, so run one
// ServeStdio per process at a time.
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer, cr broker.Credentials) error {
	c, err := s.p.Identify(ctx, cr)
	if err != nil {
		return err
	}
	ctx, done := s.open.track(ctx, c)
	defer done()
	stdio := server.NewStdioServer(s.mcp)
	stdio.SetErrorLogger(zap.NewStdLog(s.log.Named("mcp-go")))
	stdio.SetContextFunc(func(ctx context.Context) context.Context { return withCall(ctx, c, DoorStdio) })
	err = stdio.Listen(ctx, in, out)
	if cause := context.Cause(ctx); errors.Is(cause, errSessionClosed) {
		return cause
	}
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
		return nil
	}
	return fmt.Errorf("mcp stdio: %w", err)
}

// capBody refuses MCP request bodies over the cap before mcp-go buffers them.
func (s *Server) capBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.opts.MaxBodyBytes {
			door.WriteError(w, broker.Errorf(broker.CodePayloadTooLarge, "the MCP request body is %d bytes; the limit is %d", r.ContentLength, s.opts.MaxBodyBytes), s.opts.ResourceMetadataURL)
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// callKey carries the identified caller and the door through a request.
type callKey struct{}

type callCtx struct {
	caller broker.Caller
	door   string
}

func withCall(ctx context.Context, c broker.Caller, door string) context.Context {
	return context.WithValue(ctx, callKey{}, callCtx{caller: c, door: door})
}

func callFrom(ctx context.Context) (callCtx, bool) {
	cc, ok := ctx.Value(callKey{}).(callCtx)
	return cc, ok
}

// listTools answers tools/list from the broker's live snapshot: the tools
// Pipeline.ListTools returns for the caller, with their titles,
// annotations, output schemas and the caller's view of the input schema
// (arguments bound to its grant scope are gone from it, so the model is
// never asked for them). It replaces whatever mcp-go listed from its
// routing table. It is an after-list hook rather than mcp-go's
// WithToolFilter because mcp-go applies tool filters at call time too and
// answers a filtered-out tool with a bare "tool not found", which would
// keep a forbidden call from reaching the broker (and its audit record).
// Without an identified caller, or when the broker cannot list, the
// listing is empty (fail closed). mcp-go pagination is not enabled, so the
// hook answers the whole list.
func (s *Server) listTools(ctx context.Context, _ any, _ *mcpgo.ListToolsRequest, res *mcpgo.ListToolsResult) {
	if res == nil {
		return
	}
	res.Tools = []mcpgo.Tool{}
	cc, ok := callFrom(ctx)
	if !ok {
		return
	}
	tools, err := s.p.ListTools(ctx, cc.caller)
	if err != nil {
		s.log.Warn("tools/list refused; answering an empty list", zap.String("code", string(broker.CodeOf(err))))
		return
	}
	for _, t := range tools {
		res.Tools = append(res.Tools, toMCPTool(t))
	}
}

// refuseListing answers a tools/list the broker refuses (a caller that
// names no graph or node, or an unknown one) with a JSON-RPC error
// (-32600) whose message is "<code>: <message>", so a client sees why
// instead of an empty list. mcp-go hands this hook every request before
// its method runs; only a message naming tools/list is decoded.
func (s *Server) refuseListing(ctx context.Context, _ any, message any) error {
	raw, ok := message.(json.RawMessage)
	if !ok || !bytes.Contains(raw, []byte(`"tools/list"`)) {
		return nil
	}
	var m struct {
		Method string `json:"method"`
	}
	if json.Unmarshal(raw, &m) != nil || m.Method != string(mcpgo.MethodToolsList) {
		return nil
	}
	cc, ok := callFrom(ctx)
	if !ok {
		return nil // listTools answers an empty list (fail closed)
	}
	if _, err := s.p.ListTools(ctx, cc.caller); err != nil {
		return s.p.Report(err)
	}
	return nil
}

// handleCall hands one tools/call to the pipeline.
func (s *Server) handleCall(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	cc, ok := callFrom(ctx)
	if !ok {
		// Unreachable through Handler and ServeStdio; fail closed anyway.
		return errorResult(broker.Errorf(broker.CodeUnauthenticated, "caller was not identified")), nil
	}
	args, err := rawArguments(req)
	if err != nil {
		return errorResult(broker.Errorf(broker.CodeInvalidArguments, "arguments could not be encoded as JSON")), nil
	}
	call := broker.Call{
		Caller:     cc.caller,
		Door:       cc.door,
		Tool:       req.Params.Name,
		Args:       args,
		ApprovalID: strings.TrimSpace(req.Header.Get(broker.HeaderApproval)),
		MCP:        mcpRequest(ctx, cc.door),
	}
	if req.Params.Meta != nil {
		ctx = door.MetaTraceContext(ctx, req.Params.Meta.AdditionalFields)
	}
	if call.ApprovalID == "" {
		call.ApprovalID = metaString(req.Params.Meta, "toolgate/approval")
	}
	if req.Params.Meta != nil && req.Params.Meta.ProgressToken != nil {
		ctx = broker.WithProgress(ctx, s.progress(ctx, req.Params.Meta.ProgressToken))
	}
	res, err := s.p.Call(ctx, call)
	if err != nil {
		// The broker reported any internal failure (its message names the
		// incident); the door only translates.
		e, _ := broker.AsError(err)
		if e.Code == broker.CodeUnknownTool {
			// The catalog changed under us: answer as mcp-go does for a
			// tool it does not hold.
			return nil, fmt.Errorf("tool '%s' not found: %w", call.Tool, server.ErrToolNotFound)
		}
		return errorResult(e), nil
	}
	if res.Pending != nil {
		return &mcpgo.CallToolResult{
			Content:           []mcpgo.Content{mcpgo.NewTextContent(res.Pending.Message)},
			StructuredContent: res.Pending,
		}, nil
	}
	value := res.Value
	if len(bytes.TrimSpace(value)) == 0 {
		value = json.RawMessage(`{}`)
	}
	if res.Blocks {
		if out, ok := blocksResult(value); ok {
			return out, nil
		}
	}
	out := &mcpgo.CallToolResult{Content: []mcpgo.Content{mcpgo.NewTextContent(string(value))}}
	if bytes.HasPrefix(bytes.TrimSpace(value), []byte("{")) {
		// structuredContent must be a JSON object; a non-object result
		// travels as text only.
		out.StructuredContent = value
	}
	return out, nil
}

// blocksResult answers with an upstream MCP tool's result document
// ({"content": [...], "structuredContent": {...}}, masked) as the
// upstream's own content blocks and structured content. A block mcp-go
// cannot represent travels as a text block holding its JSON; a document
// that is not an MCP result is not answered here (false).
func blocksResult(doc json.RawMessage) (*mcpgo.CallToolResult, bool) {
	var r struct {
		Content           []json.RawMessage `json:"content"`
		StructuredContent json.RawMessage   `json:"structuredContent"`
	}
	if json.Unmarshal(doc, &r) != nil || r.Content == nil {
		return nil, false
	}
	out := &mcpgo.CallToolResult{Content: make([]mcpgo.Content, 0, len(r.Content))}
	for _, raw := range r.Content {
		out.Content = append(out.Content, contentBlock(raw))
	}
	if sc := bytes.TrimSpace(r.StructuredContent); len(sc) > 0 && sc[0] == '{' {
		out.StructuredContent = json.RawMessage(sc)
	}
	return out, true
}

// contentBlock decodes one content block. A text block whose text is a
// JSON object (an upstream's structured content repeated as text, masked
// like structuredContent) becomes text again; a block mcp-go cannot
// represent travels as a text block holding its JSON.
func contentBlock(raw json.RawMessage) mcpgo.Content {
	var tb struct {
		Type string          `json:"type"`
		Text json.RawMessage `json:"text"`
	}
	if json.Unmarshal(raw, &tb) == nil && tb.Type == mcpgo.ContentTypeText && bytes.HasPrefix(bytes.TrimSpace(tb.Text), []byte("{")) {
		return mcpgo.NewTextContent(string(bytes.TrimSpace(tb.Text)))
	}
	c, err := mcpgo.UnmarshalContent(raw)
	if err != nil {
		return mcpgo.NewTextContent(string(raw))
	}
	return c
}

// progress returns a ProgressFunc that sends notifications/progress for the
// request's progress token. Sending is best effort: a client that went away
// must not fail the call.
func (s *Server) progress(ctx context.Context, token mcpgo.ProgressToken) broker.ProgressFunc {
	return func(progress, total float64, message string) {
		params := map[string]any{"progressToken": token, "progress": progress}
		if total > 0 {
			params["total"] = total
		}
		if message != "" {
			params["message"] = message
		}
		if err := s.mcp.SendNotificationToClient(ctx, string(mcpgo.MethodNotificationProgress), params); err != nil {
			s.log.Debug("progress notification not sent", zap.Error(err))
		}
	}
}

// errorResult is the isError tool result for a refusal or failure: text
// "<code>: <message>" and structuredContent {"error":{"code","message",
// "field"?,"problems"?}}.
// The cause is never included.
func errorResult(e *broker.Error) *mcpgo.CallToolResult {
	detail := map[string]any{"code": e.Code, "message": e.Message}
	if e.Field != "" {
		detail["field"] = e.Field
	}
	if len(e.Problems) > 0 {
		detail["problems"] = e.Problems
	}
	return &mcpgo.CallToolResult{
		Content:           []mcpgo.Content{mcpgo.NewTextContent(string(e.Code) + ": " + e.Message)},
		StructuredContent: map[string]any{"error": detail},
		IsError:           true,
	}
}

// rawArguments returns the call's arguments as the client sent them, so
// large integers keep their precision.
func rawArguments(req mcpgo.CallToolRequest) (json.RawMessage, error) {
	if len(req.Params.RawArguments) > 0 {
		return req.Params.RawArguments, nil
	}
	if req.Params.Arguments == nil {
		return nil, nil
	}
	return json.Marshal(req.Params.Arguments)
}

// mcpRequest describes a tools/call request for its span.
func mcpRequest(ctx context.Context, doorName string) broker.MCPRequest {
	m := broker.MCPRequest{Method: string(mcpgo.MethodToolsCall), Protocol: server.RequestProtocolVersion(ctx), Transport: "tcp"}
	if doorName == DoorStdio {
		m.Transport = "pipe"
	} else if cs := server.ClientSessionFromContext(ctx); cs != nil {
		m.Session = cs.SessionID()
	}
	return m
}

// metaString reads a string field from a request's _meta.
func metaString(m *mcpgo.Meta, key string) string {
	if m == nil {
		return ""
	}
	v, _ := m.AdditionalFields[key].(string)
	return strings.TrimSpace(v)
}

// toMCPTool converts a catalog tool into its MCP listing entry with its real
// schemas, title and annotations.
func toMCPTool(t *broker.Tool) mcpgo.Tool {
	in := t.InputSchema
	if len(bytes.TrimSpace(in)) == 0 {
		in = json.RawMessage(`{"type":"object"}`)
	}
	mt := mcpgo.NewToolWithRawSchema(t.Name, t.Description, in)
	mt.Title = t.Title
	if len(bytes.TrimSpace(t.OutputSchema)) > 0 {
		mt.RawOutputSchema = t.OutputSchema
	}
	mt.Annotations = mcpgo.ToolAnnotation{
		Title:           t.Annotations.Title,
		ReadOnlyHint:    t.Annotations.ReadOnlyHint,
		DestructiveHint: t.Annotations.DestructiveHint,
		IdempotentHint:  t.Annotations.IdempotentHint,
		OpenWorldHint:   t.Annotations.OpenWorldHint,
	}
	return mt
}
