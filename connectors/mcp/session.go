package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// cancelNoticeTimeout bounds sending notifications/cancelled.
const cancelNoticeTimeout = 2 * time.Second

// session is one connection to the upstream: an initialised mcp-go client
// over one transport and, for stdio, the process behind it. Calls from any
// number of goroutines share it; each request has its own id.
type session struct {
	up     *Upstream
	client *client.Client
	tr     transport.Interface
	proc   *process
	ctx    context.Context // the session's lifetime
	cancel context.CancelFunc

	lost     chan struct{}
	lostOnce sync.Once
	lostWhy  atomic.Value // string

	listChanged chan struct{}
	seq         atomic.Uint64
	progress    sync.Map // progress token → *progressRelay
	dropped     sync.Map // RequestId.String() of an oversized stdio response
	wg          sync.WaitGroup
}

// rpcError is a JSON-RPC error the upstream answered with.
type rpcError struct {
	Code    int
	Message string
}

func (e *rpcError) Error() string { return fmt.Sprintf("upstream error %d: %s", e.Code, e.Message) }

// lostError is a transport failure: the session is gone.
type lostError struct{ cause error }

func (e *lostError) Error() string { return "connection lost: " + e.cause.Error() }
func (e *lostError) Unwrap() error { return e.cause }

// dial connects and initialises a new session; ctx bounds the handshake.
func (u *Upstream) dial(ctx context.Context) (*session, error) {
	s := &session{up: u, lost: make(chan struct{}), listChanged: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancel(u.ctx)
	var err error
	if u.cfg.URL != "" {
		s.tr, err = u.httpTransport()
	} else {
		s.tr, err = s.startStdio()
	}
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.client = client.NewClient(s.tr, client.WithProtocolVersion(mcpgo.LATEST_LEGACY_PROTOCOL_VERSION))
	if err := s.client.Start(s.ctx); err != nil {
		s.close()
		return nil, fmt.Errorf("start the transport: %w", err)
	}
	s.client.OnNotification(s.onNotification)
	// Replace the client's handler: toolgate answers ping and refuses the
	// rest, whatever handlers mcp-go may grow.
	if bidi, ok := s.tr.(transport.BidirectionalInterface); ok {
		bidi.SetRequestHandler(s.onRequest)
	}
	ictx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()
	_, err = s.client.Initialize(ictx, mcpgo.InitializeRequest{Params: mcpgo.InitializeParams{
		ProtocolVersion: mcpgo.LATEST_LEGACY_PROTOCOL_VERSION,
		ClientInfo:      mcpgo.Implementation{Name: "toolgate", Version: u.opt.ClientVersion},
	}})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("initialize: %s", describe(err))
	}
	if s.proc != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			select {
			case <-s.proc.exited:
				s.markLost("the stdio server exited")
			case <-s.ctx.Done():
			}
		}()
	}
	return s, nil
}

// httpTransport builds a streamable HTTP transport whose responses are
// capped and whose requests carry the configured headers.
func (u *Upstream) httpTransport() (transport.Interface, error) {
	hc := &http.Client{
		Transport: &capTransport{base: u.httpBase, max: u.cfg.MaxResultBytes},
		// A redirect could carry the configured credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	tr, err := transport.NewStreamableHTTP(u.cfg.URL,
		transport.WithHTTPHeaders(u.cfg.Headers),
		transport.WithHTTPBasicClient(hc),
		transport.WithContinuousListening(),
		transport.WithHTTPLogger(newTransportLogger(u.log)))
	if err != nil {
		return nil, errors.New("the url cannot be used")
	}
	return tr, nil
}

// startStdio starts the server and a transport over its pipes, stdout
// capped per line.
func (s *session) startStdio() (transport.Interface, error) {
	u := s.up
	p, err := startProcess(u.cfg, u.opt.BaseEnv, u.log, u.redactLog)
	if err != nil {
		return nil, err
	}
	s.proc = p
	out := newLineCap(p.stdout, int(u.cfg.MaxResultBytes), func(id *mcpgo.RequestId) {
		if id == nil {
			u.log.Warn("dropped an upstream message over max_result_bytes", zap.Int64("max_result_bytes", u.cfg.MaxResultBytes))
			return
		}
		s.dropped.Store(id.String(), struct{}{})
	})
	return transport.NewIO(out, p.stdin, nil), nil
}

// close ends the session: the transport, then the process group, then
// every goroutine the session started.
func (s *session) close() {
	s.markLost("closed")
	s.cancel()
	if s.client != nil {
		_ = s.client.Close()
	} else if s.tr != nil {
		_ = s.tr.Close()
	}
	if s.proc != nil {
		s.proc.stop()
	}
	s.wg.Wait()
}

// markLost records the first reason the session ended and wakes the
// supervisor.
func (s *session) markLost(why string) {
	s.lostOnce.Do(func() {
		s.lostWhy.Store(why)
		close(s.lost)
	})
}

func (s *session) isLost() bool {
	select {
	case <-s.lost:
		return true
	default:
		return false
	}
}

func (s *session) lostReason() string {
	why, _ := s.lostWhy.Load().(string)
	return why
}

// request sends one JSON-RPC request with an id of toolgate's own and
// returns the raw result. Errors are errTooLarge, *rpcError, *lostError
// (the session is then marked lost) or the context's error.
func (s *session) request(ctx context.Context, id mcpgo.RequestId, method string, params any) (json.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // nothing sent, nothing to cancel
	}
	st := &callState{}
	resp, err := s.tr.SendRequest(withCallState(ctx, st), transport.JSONRPCRequest{
		JSONRPC: mcpgo.JSONRPC_VERSION, ID: id, Method: method, Params: params,
	})
	_, dropped := s.dropped.LoadAndDelete(id.String())
	switch {
	case st.oversized.Load() || dropped || errors.Is(err, errTooLarge):
		return nil, errTooLarge
	case err != nil && ctx.Err() != nil:
		s.cancelUpstream(id, ctx.Err())
		return nil, ctx.Err()
	case err != nil:
		s.markLost(describe(err))
		return nil, &lostError{cause: err}
	case resp == nil:
		return nil, &rpcError{Code: mcpgo.INTERNAL_ERROR, Message: "no response"}
	case resp.Error != nil:
		return nil, &rpcError{Code: resp.Error.Code, Message: resp.Error.Message}
	}
	return resp.Result, nil
}

// nextID returns a request id that cannot collide with mcp-go's numeric ids.
func (s *session) nextID() mcpgo.RequestId {
	return mcpgo.NewRequestId("toolgate-" + strconv.FormatUint(s.seq.Add(1), 10))
}

// cancelUpstream tells the upstream to stop working on a request whose
// caller gave up, off the caller's path and best effort.
func (s *session) cancelUpstream(id mcpgo.RequestId, why error) {
	reason := "the call timed out"
	if errors.Is(why, context.Canceled) {
		reason = "the call was cancelled"
	}
	n := mcpgo.JSONRPCNotification{JSONRPC: mcpgo.JSONRPC_VERSION, Notification: mcpgo.Notification{
		Method: string(mcpgo.MethodNotificationCancelled),
		Params: mcpgo.NotificationParams{AdditionalFields: map[string]any{"requestId": id, "reason": reason}},
	}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, cancelNoticeTimeout)
		defer cancel()
		_ = s.tr.SendNotification(ctx, n)
	}()
}

// onNotification handles what the upstream announces: a changed tool list
// wakes the supervisor, progress goes to the caller that asked for it, and
// everything else (log messages included, which may hold secrets) is
// dropped.
func (s *session) onNotification(n mcpgo.JSONRPCNotification) {
	switch n.Method {
	case string(mcpgo.MethodNotificationToolsListChanged):
		select {
		case s.listChanged <- struct{}{}:
		default:
		}
	case string(mcpgo.MethodNotificationProgress):
		token, _ := n.Params.AdditionalFields["progressToken"].(string)
		r, ok := s.progress.Load(token)
		if !ok {
			return
		}
		progress, _ := n.Params.AdditionalFields["progress"].(float64)
		total, _ := n.Params.AdditionalFields["total"].(float64)
		msg, _ := n.Params.AdditionalFields["message"].(string)
		r.(*progressRelay).relay(progress, total, s.up.relayText(msg))
	}
}

// progressRelay hands one call's upstream progress to its caller. The
// transport may deliver notifications out of order; progress must
// increase with each notification (MCP), so one that does not move past
// the last relayed value is dropped rather than sent backwards.
type progressRelay struct {
	mu   sync.Mutex
	f    broker.ProgressFunc
	last float64
	sent bool
}

func (r *progressRelay) relay(progress, total float64, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent && progress <= r.last {
		return
	}
	r.last, r.sent = progress, true
	r.f(progress, total, msg)
}

// refusedRequests are the upstream-to-client requests toolgate refuses:
// an upstream behind toolgate reaches neither the agent's model nor a
// person nor the client's files.
var refusedRequests = map[string]string{
	string(mcpgo.MethodSamplingCreateMessage): "sampling (it may not use the agent's model)",
	string(mcpgo.MethodElicitationCreate):     "elicitation (it may not ask a person for input)",
	string(mcpgo.MethodListRoots):             "roots (it may not see the client's files)",
}

// onRequest answers the upstream's own requests: ping is answered, the
// rest refused with a JSON-RPC error that says why.
func (s *session) onRequest(_ context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	if req.Method == string(mcpgo.MethodPing) {
		return transport.NewJSONRPCResultResponse(req.ID, json.RawMessage(`{}`)), nil
	}
	what, known := refusedRequests[req.Method]
	if !known {
		return transport.NewJSONRPCErrorResponse(req.ID, mcpgo.METHOD_NOT_FOUND, "toolgate does not serve this request to upstream MCP servers", nil), nil
	}
	reason := fmt.Sprintf("toolgate refuses %s: an upstream MCP server behind toolgate may not ask for %s", req.Method, what)
	s.up.log.Warn("refused an upstream request", zap.String("method", req.Method))
	s.up.emit(Event{Kind: EventRequestRefused, Reason: reason})
	return transport.NewJSONRPCErrorResponse(req.ID, mcpgo.METHOD_NOT_FOUND, reason, nil), nil
}

// callParams are a tools/call request's params.
type callParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	Meta      *callMeta       `json:"_meta,omitempty"`
}

type callMeta struct {
	ProgressToken string `json:"progressToken,omitempty"`
	// TraceParent and TraceState are the W3C trace context of the call
	// (the broker's connector span, or the caller's), unprefixed as the
	// OpenTelemetry MCP conventions write them.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
}

// callTool calls an upstream tool, relaying its progress to the caller's
// broker.ProgressFunc when the caller asked for progress. Only then does
// the request carry a progress token: parsing _meta costs the upstream.
func (s *session) callTool(ctx context.Context, tool string, args json.RawMessage) (json.RawMessage, error) {
	id := s.nextID()
	params := callParams{Name: tool, Arguments: args}
	if broker.HasProgress(ctx) {
		token := id.Value().(string)
		params.Meta = &callMeta{ProgressToken: token}
		s.progress.Store(token, &progressRelay{f: broker.ProgressFrom(ctx)})
		defer s.progress.Delete(token)
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		tc := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, tc)
		if params.Meta == nil {
			params.Meta = &callMeta{}
		}
		params.Meta.TraceParent, params.Meta.TraceState = tc["traceparent"], tc["tracestate"]
	}
	return s.request(ctx, id, string(mcpgo.MethodToolsCall), params)
}

// listTools lists every tool, following pages. Definitions that cannot
// be used come back as invalid entries.
func (s *session) listTools(ctx context.Context) ([]Definition, []Entry, error) {
	var defs []Definition
	var bad []Entry
	seen := map[string]bool{}
	cursor := ""
	for page := 0; ; page++ {
		if page == maxListPages {
			return nil, nil, fmt.Errorf("tools/list has more than %d pages", maxListPages)
		}
		var params any
		if cursor != "" {
			params = map[string]string{"cursor": cursor}
		}
		raw, err := s.request(ctx, s.nextID(), string(mcpgo.MethodToolsList), params)
		if err != nil {
			return nil, nil, fmt.Errorf("tools/list: %s", describe(err))
		}
		var res struct {
			Tools      []json.RawMessage `json:"tools"`
			NextCursor string            `json:"nextCursor"`
		}
		if err := json.Unmarshal(raw, &res); err != nil {
			return nil, nil, errors.New("tools/list: the upstream's answer is not a tools/list result")
		}
		for _, t := range res.Tools {
			d, err := parseDefinition(t)
			if err != nil {
				bad = append(bad, Entry{Tool: d.Tool, State: StateInvalid, Reason: fmt.Sprintf("upstream tool %q cannot be used: %v", d.Tool, err)})
				continue
			}
			defs = append(defs, d)
		}
		if len(defs)+len(bad) > maxTools {
			return nil, nil, fmt.Errorf("tools/list: the upstream lists more than %d tools", maxTools)
		}
		if res.NextCursor == "" {
			return defs, bad, nil
		}
		if seen[res.NextCursor] {
			return nil, nil, errors.New("tools/list: the upstream repeated a page cursor")
		}
		seen[res.NextCursor] = true
		cursor = res.NextCursor
	}
}

// describe says what went wrong in words safe to log and show: it never
// repeats upstream text or a URL, which may carry a secret.
func describe(err error) string {
	var rpc *rpcError
	var ne net.Error
	var auth *transport.AuthorizationRequiredError
	var op *net.OpError
	switch {
	case err == nil:
		return "no error"
	case errors.Is(err, errTooLarge):
		return "a message exceeds max_result_bytes"
	case errors.As(err, &rpc):
		return fmt.Sprintf("the upstream answered with JSON-RPC error %d", rpc.Code)
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, transport.ErrSessionTerminated):
		return "the upstream ended the session"
	case errors.Is(err, transport.ErrLegacySSEServer):
		return "the upstream refused the streamable HTTP handshake (it may speak only the older HTTP+SSE transport, which toolgate does not support)"
	case errors.As(err, &auth):
		return "the upstream refused toolgate's credentials (HTTP 401)"
	case errors.Is(err, transport.ErrTransportClosed):
		return "the connection is closed"
	case errors.As(err, &op):
		return fmt.Sprintf("%s failed: %v", op.Op, op.Err)
	case errors.As(err, &ne):
		return "a network error"
	}
	var unsupported mcpgo.UnsupportedProtocolVersionError
	if errors.As(err, &unsupported) {
		return "the upstream speaks an unsupported protocol version"
	}
	return "a protocol error"
}
