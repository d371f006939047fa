// toolgate.mjs: use toolgate from LangGraph.js through @langchain/mcp-adapters.
//
//   const tg = new Toolgate({ url: "http://127.0.0.1:8080/mcp", apiKey, graph: "support-bot" });
//   const billingTools = await tg.tools("billing");   // LangChain tools, listed as node "billing"
//   ... run them with a ToolNode named "billing" (see graph.mjs and the README) ...
//   await tg.close();
//
// What the helper does on every tool call:
//   - identity: X-Toolgate-Graph/Node/Run/Thread/Tool-Call-Id come from the
//     LangGraph runnable config of the call, never from the model. A call
//     without LangGraph config is refused here, before it leaves the process.
//   - approvals: an `approval_pending` result becomes interrupt({approval_id,
//     expires_at, message, ...}); on resume the same call (same args, same run)
//     is sent again, and toolgate runs it exactly once. A denied approval comes
//     back as a tool error the model can read ("approval_denied: ..."). Dispatch
//     each tool call to the ToolNode as its own task (Send), so an approval
//     pauses and resumes only its own call.
//   - grants (optional): startRun() mints per-node grant tokens
//     (POST /v1/grants) that replace the API key for that run; end() revokes them.
//   - tracing (optional): when @opentelemetry/api is installed and a span is
//     active, its trace context goes in the request's params._meta
//     ("traceparent", "tracestate"), injected by the configured propagator, so
//     toolgate's spans continue the graph's trace. Without the package, or
//     without an active span, nothing is sent.
//
// Sessions: toolgate binds an MCP session to the principal, graph and node that
// initialized it, so the helper keeps one MCP client per (node, credential) and
// sends each call on the client of the node that runs it, with the API key or
// the run's grant token. The per-call headers (run, thread, tool call id) ride
// on that session through an AsyncLocalStorage read by the transport's fetch.
// Why not the adapters' beforeToolCall hook: it forks a new MCP client for each
// distinct header set and keeps it until close(), one leaked session per call.
// And interrupt() cannot be thrown from afterToolCall: the adapters wrap every
// error thrown there in a ToolException, which would swallow the interrupt.
// So @langchain/mcp-adapters lists the tools (names, descriptions, schemas) and
// the helper calls them with the MCP SDK client itself.

import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";

import { ToolMessage } from "@langchain/core/messages";
import { DynamicStructuredTool } from "@langchain/core/tools";
import { interrupt } from "@langchain/langgraph";
import { loadMcpTools } from "@langchain/mcp-adapters";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

// @opentelemetry/api is an optional peer dependency: used when the app has it.
const otel = await import("@opentelemetry/api").catch(() => null);

/**
 * traceMeta returns the trace context of ctx (the active OpenTelemetry
 * context by default) as the _meta fields of an MCP request, written by the
 * configured propagator, or undefined when there is no OpenTelemetry API or
 * no span to continue.
 */
export function traceMeta(ctx = otel?.context.active()) {
  if (!otel || !ctx || !otel.trace.getSpanContext(ctx)) return undefined;
  const carrier = {};
  otel.propagation.inject(ctx, carrier);
  const meta = {};
  for (const key of ["traceparent", "tracestate"]) if (typeof carrier[key] === "string") meta[key] = carrier[key];
  return meta.traceparent ? meta : undefined;
}

export const HEADER = Object.freeze({
  graph: "X-Toolgate-Graph",
  node: "X-Toolgate-Node",
  run: "X-Toolgate-Run",
  thread: "X-Toolgate-Thread",
  toolCallId: "X-Toolgate-Tool-Call-Id",
});

/** ToolgateError is a refusal raised by this helper before any request is sent. */
export class ToolgateError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "ToolgateError";
    this.code = code;
  }
}

/**
 * nodePath turns a LangGraph checkpoint namespace into a toolgate node path:
 * "supervisor:3f2a…|research:9c1d…" → "supervisor/research". Task ids after
 * ":" and empty segments are dropped.
 */
export function nodePath(checkpointNs) {
  return String(checkpointNs)
    .split("|")
    .map((segment) => segment.split(":")[0])
    .filter((name) => name !== "")
    .join("/");
}

/**
 * identityFrom reads the LangGraph context of a tool call from its runnable
 * config. The run id is `configurable.toolgate_run_id`, else
 * `configurable.run_id` (LangGraph Server sets it), else `metadata.run_id`:
 * pass the same one when you resume after an approval, because toolgate binds
 * an approval to its run. Throws a ToolgateError when the node or the run
 * cannot be told.
 */
export function identityFrom(config, graph) {
  const conf = config?.configurable ?? {};
  const meta = config?.metadata ?? {};
  const ns = meta.langgraph_checkpoint_ns ?? conf.checkpoint_ns;
  const node = ns ? nodePath(ns) : meta.langgraph_node;
  if (!node) {
    throw new ToolgateError(
      "unidentified",
      "this toolgate tool was called outside a LangGraph node (no langgraph_checkpoint_ns or langgraph_node in its config), so the call was not sent; call it from a graph node, e.g. through a ToolNode",
    );
  }
  const run = conf.toolgate_run_id ?? conf.run_id ?? meta.run_id;
  if (!run) {
    throw new ToolgateError(
      "unidentified",
      "no run id in the LangGraph config, so the call was not sent; invoke the graph with configurable.run_id (and the same run_id when you resume it)",
    );
  }
  const id = { graph, node, run: String(run) };
  const thread = conf.thread_id ?? meta.thread_id;
  if (thread) id.thread = String(thread);
  if (config?.toolCall?.id) id.toolCallId = String(config.toolCall.id);
  return id;
}

/** pendingOf returns the approval_pending structured content of an MCP tool result, or undefined. */
export function pendingOf(result) {
  const sc = result?.structuredContent;
  return !result?.isError && sc?.status === "approval_pending" ? sc : undefined;
}

/** textOf is the text of a result made of text blocks only (the JSON toolgate sent), else undefined. */
function textOf(result) {
  const blocks = result.content ?? [];
  return blocks.every((b) => b?.type === "text") ? blocks.map((b) => b.text).join("\n") : undefined;
}

/**
 * toolOutput is what the model reads: a ToolMessage with the result's text
 * (status "error" for an error result such as forbidden or approval_denied),
 * its structured content as the artifact. Non-text content is left as blocks.
 */
function toolOutput(result, name, toolCallId) {
  const text = textOf(result);
  if (!toolCallId) {
    if (result.isError) throw new Error(text ?? `toolgate answered ${name} with an error`);
    return text ?? result.content;
  }
  if (text === undefined && !result.isError) return result.content;
  return new ToolMessage({
    status: result.isError ? "error" : "success",
    content: text ?? `toolgate answered ${name} with an error`,
    artifact: result.structuredContent,
    tool_call_id: toolCallId,
    name,
  });
}

export class Toolgate {
  /**
   * @param {object} opts
   * @param {string} opts.url        the MCP endpoint, e.g. http://127.0.0.1:8080/mcp
   * @param {string} opts.apiKey     the graph's API key (tgk_…), used unless a grant token covers the call
   * @param {string} opts.graph      the toolgate graph name, e.g. "support-bot"
   * @param {number} [opts.timeoutMs=30000] bound on one HTTP request to toolgate; keep it above approvals.wait
   * @param {string} [opts.serverName="toolgate"]
   */
  constructor({ url, apiKey, graph, timeoutMs = 30_000, serverName = "toolgate" }) {
    if (!url || !apiKey || !graph) throw new TypeError("Toolgate needs url, apiKey and graph");
    this.url = new URL(url);
    this.apiKey = apiKey;
    this.graph = graph;
    this.timeoutMs = timeoutMs;
    this.serverName = serverName;
    this.callContext = new AsyncLocalStorage();
    this.clients = new Map(); // `${node}\u0000${token}` → Promise<Client>
    this.grantTokens = new Map(); // `${run}\u0000${node}` → token
  }

  /** fetchFor sends one request of a (node, token) session, with the identity of the call in progress. */
  fetchFor(node, token) {
    return async (input, init = {}) => {
      const id = this.callContext.getStore();
      const headers = new Headers(init.headers);
      headers.set("Authorization", `Bearer ${token}`);
      headers.set(HEADER.graph, this.graph);
      headers.set(HEADER.node, node);
      if (id) {
        headers.set(HEADER.run, id.run);
        if (id.thread) headers.set(HEADER.thread, id.thread);
        if (id.toolCallId) headers.set(HEADER.toolCallId, id.toolCallId);
      }
      const timeout = AbortSignal.timeout(this.timeoutMs);
      const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
      try {
        return await fetch(input, { ...init, headers, signal });
      } catch (err) {
        const why = timeout.aborted ? `no answer within ${this.timeoutMs} ms` : (err?.cause?.code ?? err?.message ?? String(err));
        throw new ToolgateError("toolgate_unreachable", `toolgate at ${this.url.origin} could not be reached (${why}); the tool was not run`);
      }
    };
  }

  /**
   * client returns the MCP client of a session bound to node and token (the
   * API key unless given a grant token): toolgate binds a session to the
   * principal, graph and node that initialized it.
   */
  client(node, token = this.apiKey) {
    const key = `${node}\u0000${token}`;
    if (!this.clients.has(key)) {
      const made = (async () => {
        const transport = new StreamableHTTPClientTransport(this.url, {
          fetch: this.fetchFor(node, token),
          reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 },
        });
        const client = new Client({ name: "toolgate-langgraph-js", version: "0.1.0" });
        await client.connect(transport);
        return client;
      })();
      made.catch(() => this.clients.delete(key));
      this.clients.set(key, made);
    }
    return this.clients.get(key);
  }

  /**
   * tools lists the tools toolgate lets `node` call and returns them as
   * LangChain tools that identify every call from its LangGraph config and
   * turn pending approvals into interrupt().
   */
  async tools(node) {
    const listed = await loadMcpTools(this.serverName, await this.client(node), { throwOnLoadError: true });
    return listed.map((t) => this.wrap(t));
  }

  /** wrap turns a listed tool into one whose calls go on the session of the node that runs them. */
  wrap(listed) {
    const name = listed.name;
    const call = async (args, config) => {
      const id = identityFrom(config, this.graph);
      const token = this.grantTokens.get(`${id.run}\u0000${id.node}`) ?? this.apiKey;
      try {
        const client = await this.client(id.node, token);
        // The SDK's own request timeout comes after the fetch's, whose error says more.
        const params = { name, arguments: args };
        const meta = traceMeta();
        if (meta) params._meta = meta;
        return await this.callContext.run(id, () => client.callTool(params, undefined, { timeout: this.timeoutMs + 1000 }));
      } catch (err) {
        // An unreachable or hung toolgate is an error result the model reads.
        if (err instanceof ToolgateError && err.code === "toolgate_unreachable") return { isError: true, content: [{ type: "text", text: err.message }] };
        throw err;
      }
    };
    return new DynamicStructuredTool({
      name,
      description: listed.description,
      schema: listed.schema,
      metadata: listed.metadata,
      func: async (args, _runManager, config) => {
        const toolCallId = config?.toolCall?.id;
        let result = await call(args, config);
        // Each pending answer pauses the graph; on resume interrupt() returns
        // the resume value and the same call goes again. Toolgate answers
        // "pending" until a human decides, the result once approved (running
        // the tool exactly once), or approval_denied.
        for (let pending = pendingOf(result); pending; pending = pendingOf(result)) {
          interrupt({
            type: "toolgate_approval",
            approval_id: pending.approval_id,
            expires_at: pending.expires_at,
            message: textOf(result) ?? pending.message,
            tool: name,
            args,
          });
          result = await call(args, config);
        }
        return toolOutput(result, name, toolCallId);
      },
    });
  }

  /**
   * startRun mints one grant token per node for a run (POST /v1/grants) so the
   * run's calls carry a token bound to graph, node, run and scope instead of
   * the API key. Returns {grantId, tokens, end()}; end() revokes the grant
   * (DELETE /v1/grants/{id}). Throws a ToolgateError with code
   * "grants_unavailable" when the server has no grants endpoint (HTTP 404).
   */
  async startRun({ runId = randomUUID(), threadId, nodes, ttl = "15m", scope } = {}) {
    if (!nodes?.length) throw new TypeError("startRun needs the nodes to mint tokens for");
    const body = { graph: this.graph, run_id: runId, nodes, ttl };
    if (threadId) body.thread_id = threadId;
    if (scope) body.scope = scope;
    const res = await this.api("POST", "/v1/grants", body);
    if (res.status === 404) {
      throw new ToolgateError("grants_unavailable", "this toolgate serves no /v1/grants endpoint; run without grants (the API key is used)");
    }
    const out = await res.json().catch(() => ({}));
    if (!res.ok) {
      const e = out.error ?? {};
      throw new ToolgateError(e.code ?? `http_${res.status}`, e.message ?? `minting grants failed with HTTP ${res.status}`);
    }
    const grantId = out.id ?? out.grant_id;
    const tokens = {};
    if (out.tokens && !Array.isArray(out.tokens)) Object.assign(tokens, out.tokens);
    for (const g of Array.isArray(out.tokens) ? out.tokens : (out.grants ?? [])) tokens[g.node] = g.token;
    for (const [node, token] of Object.entries(tokens)) this.grantTokens.set(`${runId}\u0000${node}`, token);
    return {
      runId,
      grantId,
      nodes: Object.keys(tokens),
      end: async () => {
        for (const node of Object.keys(tokens)) this.grantTokens.delete(`${runId}\u0000${node}`);
        await this.closeSessions(new Set(Object.values(tokens)));
        if (!grantId) return;
        const del = await this.api("DELETE", `/v1/grants/${encodeURIComponent(grantId)}`);
        if (!del.ok && del.status !== 404) throw new ToolgateError(`http_${del.status}`, `revoking grant ${grantId} failed`);
      },
    };
  }

  async api(method, path, body) {
    try {
      return await fetch(new URL(path, this.url), {
        method,
        headers: { Authorization: `Bearer ${this.apiKey}`, ...(body ? { "Content-Type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new ToolgateError("toolgate_unreachable", `toolgate at ${this.url.origin} could not be reached (${err?.cause?.code ?? err?.message}); ${method} ${path} was not sent`);
    }
  }

  /** closeSessions ends the MCP sessions opened with the given tokens. */
  async closeSessions(tokens) {
    const ended = [];
    for (const [key, client] of this.clients) {
      if (tokens.has(key.split("\u0000")[1])) {
        this.clients.delete(key);
        ended.push(client);
      }
    }
    await Promise.allSettled(ended.map(async (c) => (await c).close()));
  }

  /** close ends every MCP session. */
  async close() {
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.allSettled(clients.map(async (c) => (await c).close()));
  }
}
