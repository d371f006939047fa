package broker

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing (OpenTelemetry). With Config.Tracer set, every tool call is one
// span with a child per gate step that does work (identify, policy,
// approval, connector, mask, record), and every passthrough statement is
// one span with its policy, approval and record children. Without it
// nothing here allocates or reads a clock: each helper returns at once.
//
// Spans carry names, codes and identifiers only, never an argument value,
// a result, a statement's text or a token: the attributes below are the
// whole list.

// The span names of the gate's steps.
const (
	SpanIdentify  = "toolgate.identify"
	SpanPolicy    = "toolgate.policy"
	SpanApproval  = "toolgate.approval"
	SpanConnector = "toolgate.connector"
	SpanMask      = "toolgate.mask"
	SpanRecord    = "toolgate.record"
	// SpanStatement is a passthrough statement or HTTP request at the
	// gate, "toolgate.statement <pg|http>:<target>".
	SpanStatement = "toolgate.statement"
)

// Attribute keys: the OpenTelemetry semantic conventions for GenAI and MCP
// (development status; the Go semconv packages no longer carry them), then
// toolgate's own.
const (
	AttrGenAIOperation  = attribute.Key("gen_ai.operation.name")
	AttrGenAIToolName   = attribute.Key("gen_ai.tool.name")
	AttrGenAIToolCallID = attribute.Key("gen_ai.tool.call.id")
	AttrMCPMethod       = attribute.Key("mcp.method.name")
	AttrMCPSession      = attribute.Key("mcp.session.id")
	AttrMCPProtocol     = attribute.Key("mcp.protocol.version")
	AttrJSONRPCID       = attribute.Key("jsonrpc.request.id")
	AttrNetTransport    = attribute.Key("network.transport")
	AttrErrorType       = attribute.Key("error.type")

	AttrDoor       = attribute.Key("toolgate.door")
	AttrGraph      = attribute.Key("toolgate.graph")
	AttrNode       = attribute.Key("toolgate.node")
	AttrRun        = attribute.Key("toolgate.run")
	AttrThread     = attribute.Key("toolgate.thread")
	AttrAuthMethod = attribute.Key("toolgate.auth.method")
	AttrTarget     = attribute.Key("toolgate.target")
	AttrRecordID   = attribute.Key("toolgate.record.id")
	AttrDecision   = attribute.Key("toolgate.decision")
	AttrRule       = attribute.Key("toolgate.rule")
	AttrApprovalID = attribute.Key("toolgate.approval.id")
	AttrStatus     = attribute.Key("toolgate.status")
	AttrErrorCode  = attribute.Key("toolgate.error.code")
	AttrClass      = attribute.Key("toolgate.statement.class")
	AttrCommand    = attribute.Key("toolgate.statement.command")
	AttrTables     = attribute.Key("toolgate.statement.tables")
	AttrMethod     = attribute.Key("toolgate.http.method")
	AttrSession    = attribute.Key("toolgate.passthrough.session")
	AttrRows       = attribute.Key("toolgate.rows")
	AttrReused     = attribute.Key("toolgate.identify.reused")
)

// MCPRequest is what the MCP door knows of the request a call came in,
// for the call's span: the semantic conventions' mcp.* attributes. Other
// doors leave it empty.
type MCPRequest struct {
	// Method is the MCP method, "tools/call".
	Method string
	// Session is the Mcp-Session-Id, "" without a session.
	Session string
	// RequestID is the JSON-RPC id as a string.
	RequestID string
	// Protocol is the MCP protocol version.
	Protocol string
	// Transport is "tcp" (streamable HTTP) or "pipe" (stdio).
	Transport string
}

// span is a step's span; the zero span (tracing off) does nothing.
type span struct{ s trace.Span }

// startSpan starts a child of ctx's span, when tracing is on. It takes no
// options slice: a variadic one would escape to the tracer and cost an
// allocation even when tracing is off.
func (b *Broker) startSpan(ctx context.Context, name string) (context.Context, span) {
	if b.tracer == nil {
		return ctx, span{}
	}
	ctx, s := b.tracer.Start(ctx, name)
	return ctx, span{s}
}

// startClientSpan is startSpan for a step that calls out (the connector).
func (b *Broker) startClientSpan(ctx context.Context, name string) (context.Context, span) {
	if b.tracer == nil {
		return ctx, span{}
	}
	ctx, s := b.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
	return ctx, span{s}
}

// end ends the span; a non-nil err marks it failed with its code (never
// its message, which may quote what the caller sent).
func (s span) end(err error) {
	if s.s == nil {
		return
	}
	if err != nil {
		code := string(CodeOf(err))
		s.s.SetAttributes(AttrErrorCode.String(code))
		s.s.SetStatus(codes.Error, code)
	}
	s.s.End()
}

// callSpan starts a tool call's span: "tools/call <tool>" through MCP,
// "execute_tool <tool>" through the other doors (the GenAI execute_tool
// span), a server span continuing the caller's trace context, which the
// door put in ctx. A caller identified for this request is shown as the
// call's first child, with the times Identify measured.
func (b *Broker) callSpan(ctx context.Context, call Call) (context.Context, span) {
	if b.tracer == nil {
		return ctx, span{}
	}
	attrs := make([]attribute.KeyValue, 0, 9)
	attrs = append(attrs, AttrGenAIOperation.String("execute_tool"), AttrGenAIToolName.String(call.Tool), AttrDoor.String(call.Door))
	name := "execute_tool " + call.Tool
	if m := call.MCP; m.Method != "" {
		name = m.Method + " " + call.Tool
		attrs = append(attrs, AttrMCPMethod.String(m.Method))
		attrs = appendNonEmpty(attrs, AttrMCPSession, m.Session)
		attrs = appendNonEmpty(attrs, AttrJSONRPCID, m.RequestID)
		attrs = appendNonEmpty(attrs, AttrMCPProtocol, m.Protocol)
		attrs = appendNonEmpty(attrs, AttrNetTransport, m.Transport)
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...)}
	id := call.Caller.identified
	fresh := id != nil && id.shown.CompareAndSwap(false, true)
	if fresh {
		opts = append(opts, trace.WithTimestamp(id.start))
	}
	ctx, s := b.tracer.Start(ctx, name, opts...)
	if fresh {
		_, is := b.tracer.Start(ctx, SpanIdentify, trace.WithTimestamp(id.start))
		is.SetAttributes(AttrAuthMethod.String(string(call.Caller.Principal.Method)))
		is.End(trace.WithTimestamp(id.end))
	}
	return ctx, span{s}
}

// identifyTiming is when Identify authenticated a caller, kept (tracing
// on) so the call it admits can show it. A caller identified once for
// many calls (stdio) shows it on its first call only.
type identifyTiming struct {
	start, end time.Time
	shown      atomic.Bool
}

// traced is Identify with its span: timed for the call it admits, or a
// span of its own when it refuses, so a refused credential shows in the
// caller's trace.
func (b *Broker) traced(ctx context.Context, cr Credentials, identify func(context.Context, Credentials) (Caller, error)) (Caller, error) {
	if b.tracer == nil {
		return identify(ctx, cr)
	}
	start := time.Now()
	c, err := identify(ctx, cr)
	if err == nil {
		c.identified = &identifyTiming{start: start, end: time.Now()}
		return c, nil
	}
	_, s := b.tracer.Start(ctx, SpanIdentify, trace.WithTimestamp(start))
	span{s}.end(err)
	return c, err
}

// passageDone writes the outcome of a passage into its span: who called,
// what policy decided, how it ended, and the audit record that has the
// rest.
func (s span) passageDone(ev *Event) {
	if s.s == nil {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 14)
	attrs = append(attrs, AttrRecordID.String(ev.ID), AttrStatus.String(string(ev.Status)))
	for _, kv := range [...]struct {
		k attribute.Key
		v string
	}{
		{AttrGraph, ev.Graph}, {AttrNode, ev.Node}, {AttrRun, ev.Run}, {AttrThread, ev.Thread},
		{AttrGenAIToolCallID, ev.ToolCallID}, {AttrAuthMethod, ev.AuthMethod}, {AttrTarget, ev.Target},
		{AttrDecision, ev.Decision}, {AttrRule, ev.Rule}, {AttrApprovalID, ev.ApprovalID},
	} {
		attrs = appendNonEmpty(attrs, kv.k, kv.v)
	}
	if ev.ErrorCode != "" {
		attrs = append(attrs, AttrErrorCode.String(ev.ErrorCode), AttrErrorType.String(ev.ErrorCode))
		s.s.SetStatus(codes.Error, ev.ErrorCode)
	}
	s.s.SetAttributes(attrs...)
}

// statementSpan starts a passthrough statement's span with what the proxy
// classified: class, command and tables or method, never the text or
// path.
func (b *Broker) statementSpan(ctx context.Context, sc StatementCall) (context.Context, span) {
	if b.tracer == nil {
		return ctx, span{}
	}
	st := sc.Statement
	attrs := []attribute.KeyValue{AttrDoor.String(sc.Door), AttrTarget.String(sc.Target)}
	attrs = appendNonEmpty(attrs, AttrSession, sc.Session)
	attrs = appendNonEmpty(attrs, AttrClass, st.Class)
	attrs = appendNonEmpty(attrs, AttrCommand, st.Command)
	attrs = appendNonEmpty(attrs, AttrMethod, st.Method)
	if len(st.Tables) > 0 {
		attrs = append(attrs, AttrTables.StringSlice(st.Tables))
	}
	ctx, s := b.tracer.Start(ctx, SpanStatement+" "+PassthroughTool(st.Kind, sc.Target), trace.WithAttributes(attrs...))
	return ctx, span{s}
}

func appendNonEmpty(attrs []attribute.KeyValue, k attribute.Key, v string) []attribute.KeyValue {
	if v == "" {
		return attrs
	}
	return append(attrs, k.String(v))
}

// approved ends an approval wait's span with the approval it waited on.
func (s span) approved(id string, err error) {
	if s.s != nil && id != "" {
		s.s.SetAttributes(AttrApprovalID.String(id))
	}
	s.end(err)
}

// recordTraced is record in its span.
func (b *Broker) recordTraced(ctx context.Context, p *passage) error {
	ctx, sp := b.startSpan(ctx, SpanRecord)
	err := b.record(ctx, p)
	sp.end(err)
	return err
}

// into puts the span in ctx, for a step that runs after the span ended
// (a deferred record); ctx as is when tracing is off.
func (s span) into(ctx context.Context) context.Context {
	if s.s == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, s.s)
}

// traceOf is the trace id in ctx, "" when there is none.
func traceOf(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}
