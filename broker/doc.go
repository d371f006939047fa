// Package broker is toolgate's core: the shared vocabulary (Call, Caller,
// Decision, Result, error codes) and the one pipeline every front door uses.
//
// Every privileged call, whatever door it came through (MCP, the HTTP JSON
// API, a passthrough proxy), goes through Broker.Identify and then
// Broker.Call: authenticate, identify the LangGraph caller, resolve the tool,
// validate arguments, decide, (approve), execute, mask, record, respond.
//
// The broker reaches policy, approvals, masking, recordings and connectors
// only through the small interfaces declared in this package; it must never
// import those packages. It must never log or return a secret, a token or an
// unmasked value, and it fails closed: when a check cannot answer, the call
// is refused.
package broker
