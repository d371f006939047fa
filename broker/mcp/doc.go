// Package mcp is toolgate's MCP front door: it serves the catalog's tools
// over MCP streamable HTTP (every protocol revision mcp-go serves: the
// session-based 2025-06-18 and 2025-11-25 revisions and the stateless
// 2026-07-28 core, on one endpoint) and over stdio, using mark3labs/mcp-go.
//
// Each HTTP request is authenticated before any JSON-RPC is read
// (httpapi.Authenticate: one broker Identify per request); the identified
// broker.Caller travels in the request context to the tools/list filter and
// the tool handlers. Every tools/call, including one for a tool the caller
// may not call, goes to broker.Pipeline.Call, so the broker refuses and
// records it; a tool the catalog does not hold is a JSON-RPC error.
//
// Sessions: the streamable HTTP server keeps mcp-go's default session
// manager, which mints an Mcp-Session-Id at initialize and checks its format
// but keeps no per-process table, so 2025-06-18/2025-11-25 clients get
// sessions that also work across several broker instances, and nothing
// grows without bound. 2026-07-28 requests carry no session at all. Sessions
// hold protocol state only; the caller is re-identified on every request.
//
// Tools are copied from the catalog at New and on SetCatalog. tools/list is
// narrowed per caller by an after-list hook, not mcp-go's WithToolFilter:
// that filter also runs at call time and turns a forbidden call into a bare
// "tool not found" that the broker never sees or records.
//
// The package holds no policy. It must never decide whether a call is
// allowed, never take identity from the MCP session id, clientInfo or
// tool arguments, never disable mcp-go's DNS-rebinding protection, and never
// send a client a Go error's cause, a token or an unmasked value.
package mcp
