// Package mcp is toolgate's MCP front door: it serves the catalog's tools
// over MCP streamable HTTP (every protocol revision mcp-go serves: the
// session-based 2025-06-18 and 2025-11-25 revisions and the stateless
// 2026-07-28 core, on one endpoint) and over stdio, using mark3labs/mcp-go.
//
// Each HTTP request is authenticated before any JSON-RPC is read
// (door.Authenticate: one broker Identify per request); the identified
// broker.Caller travels in the request context to the tools/list filter and
// the tool handlers. Every tools/call, including one for a tool the caller
// may not call, goes to broker.Pipeline.Call, so the broker refuses and
// records it; a tool the catalog does not hold is a JSON-RPC error. A
// tools/list the broker refuses (a caller naming no graph or node, or an
// unknown one) is a JSON-RPC error "<code>: <message>", never an empty
// list. The Origin check (door.Origins) is mounted in front of Handler by
// the binary, beside mcp-go's own Host check for loopback listeners.
//
// Sessions: an Mcp-Session-Id is minted at initialize for the caller that
// initialized it and bound to its principal, graph and node
// ("mcp-session-<nonce>.<sum>", sum = SHA-256 of the nonce and that
// identity), so no per-process table is needed: sessions work across
// broker instances and restarts, and nothing grows without bound. A
// request presenting a session id that was not minted for its own
// identity is answered 404, as an unknown session, on every method: POST,
// the GET notification stream (which mcp-go itself does not check) and
// DELETE. 2026-07-28 requests carry no session at all. Sessions hold
// protocol state only; the caller is re-identified on every request.
//
// The door holds no catalog: tools/list is answered from the broker's live
// snapshot (Pipeline.ListTools, per caller) by an after-list hook, not
// mcp-go's WithToolFilter: that filter also runs at call time and turns a
// forbidden call into a bare "tool not found" that the broker never sees or
// records. mcp-go's tool table only routes tools/call by name; it follows
// the broker's snapshot, rebuilt before a request whenever a reload swapped
// it, so a reload is one step.
//
// The package holds no policy. It must never decide whether a call is
// allowed, never take identity from the MCP session id, clientInfo or
// tool arguments, never serve a session to anyone but the identity it was
// minted for, never disable mcp-go's DNS-rebinding protection, and never
// send a client a Go error's cause, a token or an unmasked value.
package mcp
