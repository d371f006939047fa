package broker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// traced returns a config hook that traces into an in-memory exporter.
func traced(exp *tracetest.InMemoryExporter) func(*Config) {
	return func(c *Config) {
		c.Tracer = sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)).Tracer("test")
	}
}

func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	for _, s := range spans {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no span %q", name)
	return tracetest.SpanStub{}
}

func attrOf(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestPassthroughStatementSpan: a passthrough statement is one span with
// its class, command and tables, never its text, and its policy and record
// steps as children; its record carries the span's trace id.
func TestPassthroughStatementSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	e := passEnv(t, traced(exp))
	c := e.caller(t, "tgk_good", "triage")
	st := Statement{Kind: KindSQL, Class: ClassRead, Command: "SELECT", Tables: []string{"customers"}, Text: "SELECT '4242424242424242' FROM customers"}
	if _, err := e.b.Statement(context.Background(), StatementCall{Caller: c, Door: "pgwire", Target: "db", Session: "ses_1", Statement: st}); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	root := spanNamed(t, spans, "toolgate.statement pg:db")
	for k, v := range map[string]string{"toolgate.statement.class": "read", "toolgate.statement.command": "SELECT", "toolgate.statement.tables": `["customers"]`,
		"toolgate.decision": "allow", "toolgate.node": "triage", "toolgate.passthrough.session": "ses_1", "toolgate.door": "pgwire"} {
		if got := attrOf(root, k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for _, name := range []string{SpanPolicy, SpanRecord} {
		if s := spanNamed(t, spans, name); s.Parent.SpanID() != root.SpanContext.SpanID() {
			t.Errorf("%s is not a child of the statement span", name)
		}
	}
	for _, s := range spans {
		for _, kv := range s.Attributes {
			if strings.Contains(kv.Value.Emit(), "4242") {
				t.Errorf("span %s carries the statement text: %s", s.Name, kv.Key)
			}
		}
	}
	if ev := e.rec.last(t); ev.TraceID != root.SpanContext.TraceID().String() {
		t.Errorf("record trace id %q, want the span's %s", ev.TraceID, root.SpanContext.TraceID())
	}
}

// TestRefusedIdentifyIsASpan: a credential Identify refuses shows in the
// caller's trace as a failed identify span.
func TestRefusedIdentifyIsASpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	e := newEnv(t, traced(exp))
	if _, err := e.b.Identify(context.Background(), Credentials{Token: "tgk_unknown"}); CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("err = %v", err)
	}
	s := spanNamed(t, exp.GetSpans(), SpanIdentify)
	if attrOf(s, "toolgate.error.code") != "unauthenticated" || s.Status.Description != "unauthenticated" {
		t.Errorf("identify span: %v %v", s.Attributes, s.Status)
	}
}

// TestTracingOffCostsNothing: without a tracer the helpers the gate calls
// on every step allocate nothing, and a call's record still has a trace
// id: the caller's when it sent one.
func TestTracingOffCostsNothing(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	ev := &Event{ID: "call_1", Status: StatusOK}
	if n := testing.AllocsPerRun(100, func() {
		c, sp := e.b.startSpan(ctx, SpanPolicy)
		sp.end(nil)
		c, sp = e.b.startClientSpan(c, SpanConnector)
		sp.approved("ap_1", nil)
		_, sp = e.b.callSpan(c, Call{Tool: "read"})
		sp.passageDone(ev)
		_ = sp.into(c)
	}); n != 0 {
		t.Errorf("tracing off: %v allocations per step set, want 0", n)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	cctx := trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true}))
	if _, err := e.b.Call(cctx, Call{Caller: e.caller(t, "tgk_good", "triage"), Tool: "read", Args: json.RawMessage(`{"q":1}`)}); err != nil {
		t.Fatal(err)
	}
	if got := e.rec.last(t).TraceID; got != tid.String() {
		t.Errorf("record trace id %q, want the caller's", got)
	}
}
