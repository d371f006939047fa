// Package broker is toolgate's core: the shared vocabulary (Call, Caller,
// Decision, Result, error codes) and the one pipeline every front door uses.
//
// Every privileged call, whatever door it came through (MCP, the HTTP JSON
// API, a passthrough proxy), goes through Broker.Identify and then the gate
// (gate.go reads top to bottom like the pipeline): identified, resolve the
// tool and the caller's node, arguments, decided, approve; a tool call then
// runs its connector and is masked (call.go), a passthrough statement is
// handed back to its proxy (passthrough.go). Whatever the outcome, finish
// (finish.go) records it and logs an internal failure, once, under an
// incident id the caller sees.
//
// At the approve step a held call's effect is previewed (approvepreview.go:
// the connector's dry run, masked like a result and capped) for the
// approval gate to store with the request; the call that runs on the
// approval must then match the preview's row count (ExecuteExpecting), or
// nothing changes and it is refused with approval_stale.
//
// What a reload replaces (catalog, policy, masking) is one Snapshot,
// prepared when the configuration loads (each tool's masking compiled, the
// policy engine's optional abilities found) and swapped atomically by
// Broker.Reload: a call reads it once.
//
// The broker reaches policy, approvals, masking, recordings and connectors
// only through the small interfaces declared in this package; it must never
// import those packages, nor net/http (the front doors speak HTTP). It must
// never log or return a secret, a token or an unmasked value, and it fails
// closed: when a check cannot answer, the call is refused.
//
// With a tracer (Config.Tracer, the OpenTelemetry API), each call and
// passthrough statement is a span with one child per gate step (trace.go),
// continuing the trace context the door put in the call's context; its
// attributes are names, codes and ids, never an argument, a result, a
// statement's text or a token. Without one, tracing costs nothing.
package broker
