// Package door holds what every HTTP front door shares (the HTTP JSON API,
// the MCP door, the console to come, the HTTP passthrough): reading a
// request's bearer credential and LangGraph headers (Credentials), one way
// to authenticate a request (Authenticate: one broker Identify per
// request), the JSON error envelope and the HTTP status of each error code
// (WriteError, Status), the 401 challenge (Challenge), panic recovery
// (Recover), the caller's W3C trace context from headers or MCP _meta
// (TraceContext, MetaTraceContext), and the checks every request of a door
// passes before it is identified: the web page origins it serves (Origins,
// the MCP transport's DNS rebinding defence) and the cap on request heads
// (CapHeaders).
//
// It translates between HTTP and the broker's vocabulary and nothing more:
// it holds no policy, never decides whether a call is allowed, and never
// logs an incident itself. An internal failure is logged once, by the
// broker (Reporter), and a door only writes the *broker.Error it got back.
// It never sends a client a Go error's cause, a stack trace, a token or an
// unmasked value.
package door
