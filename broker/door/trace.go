package door

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
)

// TraceContext returns ctx continuing the W3C trace context of the
// request's traceparent and tracestate headers, so the call's spans join
// the caller's trace and its connectors propagate it; ctx as is when the
// request carries none or an invalid one.
func TraceContext(ctx context.Context, h http.Header) context.Context {
	if len(h["Traceparent"]) == 0 { // the canonical key: Get would allocate it on every request
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(h))
}

// MetaTraceContext returns ctx continuing the W3C trace context an MCP
// request carries in params._meta ("traceparent", "tracestate", as the
// OpenTelemetry MCP conventions and SEP-414 write them). It takes
// precedence over the HTTP request's: one HTTP request may carry several
// MCP messages. ctx as is when _meta carries none or an invalid one.
func MetaTraceContext(ctx context.Context, meta map[string]any) context.Context {
	tp, _ := meta["traceparent"].(string)
	if tp == "" {
		return ctx
	}
	carrier := propagation.MapCarrier{"traceparent": tp}
	if ts, ok := meta["tracestate"].(string); ok {
		carrier["tracestate"] = ts
	}
	return propagation.TraceContext{}.Extract(ctx, carrier)
}
