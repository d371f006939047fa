// Package mcp is the connector to an upstream MCP server, a target of kind
// mcp: it puts the tools of an MCP server a team already runs behind
// toolgate, so each call passes the same policy, approvals, masking and
// audit as a declared tool, and it pins what a person reviewed.
//
// # Configuration
//
// The wiring fills a Config from the target's YAML (values after ${ENV}
// substitution):
//
//	targets:
//	  github:
//	    kind: mcp
//	    url: http://127.0.0.1:3001/mcp        # streamable HTTP, or:
//	    headers: {Authorization: "Bearer ${GITHUB_MCP_TOKEN}"}
//	  files:
//	    kind: mcp
//	    command: [npx, -y, "@modelcontextprotocol/server-filesystem", /srv/share]
//	    env: {NODE_OPTIONS: --max-old-space-size=256}   # stdio only
//	    timeout: 30s             # per call and per handshake (default 30s)
//	    max_result_bytes: 4194304  # per upstream message (default 4 MiB)
//	    prefix: fs_              # catalog name prefix (default "<target>_")
//	    rename: {read_text_file: fs_read}   # upstream name → full catalog name
//	    expose: pinned           # pinned (default) | all
//	tools_lock: tools.lock       # top level; default: tools.lock beside the config
//
// # Sessions
//
// New validates; Start connects in the background (waiting for the first
// attempt) and keeps one session per upstream, shared by every call:
// requests carry ids of their own, so concurrent calls multiplex on it. A
// session is lost when a stdio server exits, a request fails at the
// transport, the server forgets the session, or the periodic listing of
// its tools (every 15s, which also catches unannounced changes) fails; the
// connector then reconnects and re-initialises with jittered exponential
// backoff (250ms to 30s). A stdio server runs in a process group of its own
// with only a neutral environment (Options.BaseEnv, from NeutralEnv) plus
// env; its stderr is logged line by line with configured secrets removed;
// on loss or Close the whole group gets SIGTERM, then SIGKILL, and is
// reaped. Close stops everything the connector started.
//
// The connector speaks the session-based protocol (2025-11-25, the newest
// with an initialize handshake): toolgate needs a session to hear
// notifications/tools/list_changed. It sends tools/list and tools/call
// through mcp-go's transport with its own request ids rather than through
// the typed client, because the typed client decodes a definition into
// structs that drop schema keywords, and a pin must cover what the upstream
// actually sent.
//
// # Definitions and pinning
//
// Each listed tool becomes a *broker.Tool named prefix+tool (or its
// rename), with the upstream's description, input and output schemas
// (compiled by Options.Compile, the rules of declared tools) and
// annotations; its Spec's Operation sets broker.Operation.MCP. A tool whose
// name cannot be mapped to ^[a-zA-Z0-9_-]{1,64}$, whose catalog name
// collides, or whose schemas do not compile is reported (StateInvalid),
// not exposed. The lock file (Lock, ReadLock, Pin, Diff) holds per target
// and tool the SHA-256 of the RFC 8785 canonical JSON of the name, title,
// description, input schema, output schema and annotations, and one digest
// per part so a change can be named. A tool whose definition differs from
// its pin is quarantined (StateChanged): not in Snapshot.Tools, its calls
// refused with tool_definition_changed naming what changed. A tool with no
// pin is exposed only with expose: all. Tools are evaluated at start, on
// reconnect, on notifications/tools/list_changed, on Refresh and at each
// periodic listing; each evaluation publishes an immutable Snapshot and
// sends events to Options.OnEvent (EventEvaluated, EventQuarantined; a
// periodic listing only when something changed). While the upstream is
// down the last snapshot's tools stay listed and their calls fail with
// target_unavailable.
//
// # Calls
//
// Execute returns {"content": [...], "structuredContent": {...},
// "isError": false}: the upstream's content blocks as sent, and its
// structured content when it gave any; a text block whose text is that
// structured content as JSON carries it as a JSON object, so that a tool's
// JSON paths, applied under structuredContent, mask it too (the MCP door
// sends it as text again). Detectors apply to every value. An isError
// result and a JSON-RPC error are target_error carrying the upstream's
// text, clipped (the pipeline masks error messages). A timeout, a lost
// connection or an upstream that is down is target_unavailable. Each
// upstream message is capped at max_result_bytes where it is read: a
// stdio line is never held past the cap (an oversized response is replaced
// by an error for its request id and the session lives on), an HTTP body
// or event-stream event is cut at the cap, and the call is refused with
// target_error whose Field is targets.<name>.max_result_bytes; results are
// not truncated. The cap holds for every
// message, tools/list pages included: an upstream whose listing exceeds it
// cannot be used, and the log says why. Upstream progress is relayed to
// the broker.ProgressFunc in the call's context (broker.WithProgress);
// its message text only through Options.Redact. Upstream requests for
// sampling, elicitation or roots are refused with a JSON-RPC error saying
// why, and reported as EventRequestRefused.
//
// The connector must never pass toolgate's environment, a configured
// header or env value, or an upstream's free text to a log or an event; it
// must never call a tool that is not exposed in the current snapshot, let
// an upstream reach the agent's model, a person or the client's files, or
// follow an HTTP redirect with the configured headers.
package mcp
