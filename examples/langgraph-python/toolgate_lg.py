"""toolgate_lg: use toolgate from LangGraph (Python) through langchain-mcp-adapters.

    from toolgate_lg import Toolgate

    tg = Toolgate(url="http://127.0.0.1:8080/mcp", api_key=KEY, graph="support-bot")
    billing_tools = await tg.tools("billing")   # listed as node "billing"
    # use them in a ToolNode inside the "billing" node; invoke the graph with
    # config={"configurable": {"thread_id": ..., "run_id": ...}}

On every tool call the interceptor:
  - sets X-Toolgate-Graph/Node/Run/Thread/Tool-Call-Id from the LangGraph
    runtime of the call (never from the model); a call without LangGraph
    context is refused before it is sent;
  - turns an `approval_pending` result into interrupt({approval_id,
    expires_at, message, ...}); on resume it sends the same call again (same
    args, same run) and toolgate runs it exactly once; a denied approval comes
    back as a tool error the model can read ("approval_denied: ...").

`async with tg.run(nodes=[...]) as run:` mints per-node grant tokens
(POST /v1/grants) used instead of the API key for that run, and revokes them
(DELETE /v1/grants/{id}) at the end.

Written against the documented API of langchain-mcp-adapters 0.2/0.3
(`tool_interceptors`, `MCPToolCallRequest.override(headers=...)`,
`request.runtime`). It is compiled (python3 -m py_compile) but not run in
toolgate's CI, which cannot install Python packages; the LangGraph.js example
next door is the one tested end to end.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.interceptors import MCPToolCallRequest
from langgraph.types import interrupt
from mcp.types import CallToolResult

HEADER_GRAPH = "X-Toolgate-Graph"
HEADER_NODE = "X-Toolgate-Node"
HEADER_RUN = "X-Toolgate-Run"
HEADER_THREAD = "X-Toolgate-Thread"
HEADER_TOOL_CALL_ID = "X-Toolgate-Tool-Call-Id"


class ToolgateError(Exception):
    """A refusal raised by this helper before any request is sent."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def node_path(checkpoint_ns: str) -> str:
    """"supervisor:3f2a…|research:9c1d…" → "supervisor/research"."""
    parts = (segment.split(":", 1)[0] for segment in str(checkpoint_ns).split("|"))
    return "/".join(p for p in parts if p)


def identity_from(config: dict[str, Any] | None, graph: str, tool_call_id: str | None = None) -> dict[str, str]:
    """Read graph, node, run, thread and tool call id from a runnable config.

    The run id is configurable.toolgate_run_id, else configurable.run_id
    (LangGraph Server sets it), else metadata.run_id: pass the same one when you
    resume after an approval, because toolgate binds an approval to its run.
    """
    config = config or {}
    conf = config.get("configurable") or {}
    meta = config.get("metadata") or {}
    ns = meta.get("langgraph_checkpoint_ns") or conf.get("checkpoint_ns")
    node = node_path(ns) if ns else meta.get("langgraph_node")
    if not node:
        raise ToolgateError(
            "unidentified",
            "this toolgate tool was called outside a LangGraph node (no langgraph_checkpoint_ns "
            "or langgraph_node in its config), so the call was not sent; call it from a graph node",
        )
    run = conf.get("toolgate_run_id") or conf.get("run_id") or meta.get("run_id")
    if not run:
        raise ToolgateError(
            "unidentified",
            "no run id in the LangGraph config, so the call was not sent; invoke the graph with "
            "configurable.run_id (and the same run_id when you resume it)",
        )
    ident = {"graph": graph, "node": node, "run": str(run)}
    thread = conf.get("thread_id") or meta.get("thread_id")
    if thread:
        ident["thread"] = str(thread)
    if tool_call_id:
        ident["tool_call_id"] = str(tool_call_id)
    return ident


def pending_of(result: CallToolResult) -> dict[str, Any] | None:
    """Return the approval_pending structured content of a result, or None."""
    sc = getattr(result, "structuredContent", None)
    if isinstance(sc, dict) and sc.get("status") == "approval_pending" and not result.isError:
        return sc
    return None


@dataclass
class Toolgate:
    url: str
    api_key: str
    graph: str
    timeout: timedelta = timedelta(seconds=30)  # keep it above approvals.wait
    server_name: str = "toolgate"
    _grant_tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def headers_for(self, ident: dict[str, str]) -> dict[str, str]:
        token = self._grant_tokens.get((ident["run"], ident["node"]), self.api_key)
        headers = {
            "Authorization": f"Bearer {token}",
            HEADER_GRAPH: ident["graph"],
            HEADER_NODE: ident["node"],
            HEADER_RUN: ident["run"],
        }
        if "thread" in ident:
            headers[HEADER_THREAD] = ident["thread"]
        if "tool_call_id" in ident:
            headers[HEADER_TOOL_CALL_ID] = ident["tool_call_id"]
        return headers

    async def interceptor(
        self,
        request: MCPToolCallRequest,
        handler: Callable[[MCPToolCallRequest], Awaitable[CallToolResult]],
    ) -> CallToolResult:
        """Identify the call from its LangGraph runtime; pending approvals → interrupt()."""
        runtime = request.runtime
        if runtime is None:
            raise ToolgateError("unidentified", "no LangGraph runtime: call toolgate tools from a graph node")
        ident = identity_from(getattr(runtime, "config", None), self.graph, getattr(runtime, "tool_call_id", None))
        call = request.override(headers={**(request.headers or {}), **self.headers_for(ident)})
        result = await handler(call)
        # Each pending answer pauses the graph; on resume interrupt() returns
        # the resume value and the same call goes again: toolgate answers
        # "pending", the result (run exactly once) or approval_denied.
        while (pending := pending_of(result)) is not None:
            interrupt(
                {
                    "type": "toolgate_approval",
                    "approval_id": pending.get("approval_id"),
                    "expires_at": pending.get("expires_at"),
                    "message": pending.get("message"),
                    "tool": request.name,
                    "args": request.args,
                }
            )
            result = await handler(call)
        return result

    def client(self, node: str) -> MultiServerMCPClient:
        """An MCP client that lists tools as `node` and identifies every call."""
        return MultiServerMCPClient(
            {
                self.server_name: {
                    "transport": "streamable_http",
                    "url": self.url,
                    "timeout": self.timeout,
                    "headers": {
                        "Authorization": f"Bearer {self.api_key}",
                        HEADER_GRAPH: self.graph,
                        HEADER_NODE: node,
                    },
                }
            },
            tool_interceptors=[self.interceptor],
        )

    async def tools(self, node: str) -> list[Any]:
        """The LangChain tools toolgate lets `node` call."""
        return await self.client(node).get_tools()

    @contextlib.asynccontextmanager
    async def run(
        self,
        nodes: list[str],
        run_id: str | None = None,
        thread_id: str | None = None,
        ttl: str = "15m",
        scope: dict[str, Any] | None = None,
    ) -> AsyncIterator[str]:
        """Mint per-node grant tokens for one run; revoke them on exit.

        Yields the run id to pass as configurable.toolgate_run_id. Raises
        ToolgateError("grants_unavailable") when the server has no /v1/grants.
        """
        run_id = run_id or str(uuid.uuid4())
        body: dict[str, Any] = {"graph": self.graph, "run_id": run_id, "nodes": nodes, "ttl": ttl}
        if thread_id:
            body["thread_id"] = thread_id
        if scope:
            body["scope"] = scope
        auth = {"Authorization": f"Bearer {self.api_key}"}
        base = httpx.URL(self.url).join("/")
        async with httpx.AsyncClient(base_url=str(base), headers=auth, timeout=self.timeout.total_seconds()) as http:
            res = await http.post("/v1/grants", json=body)
            if res.status_code == 404:
                raise ToolgateError("grants_unavailable", "this toolgate serves no /v1/grants endpoint")
            if res.is_error:
                err = (res.json() or {}).get("error", {}) if res.headers.get("content-type", "").startswith("application/json") else {}
                raise ToolgateError(err.get("code", f"http_{res.status_code}"), err.get("message", "minting grants failed"))
            out = res.json()
            grant_id = out.get("id") or out.get("grant_id")
            tokens = out.get("tokens")
            if isinstance(tokens, list) or tokens is None:
                tokens = {g["node"]: g["token"] for g in (tokens or out.get("grants") or [])}
            for node, token in tokens.items():
                self._grant_tokens[(run_id, node)] = token
            try:
                yield run_id
            finally:
                for node in tokens:
                    self._grant_tokens.pop((run_id, node), None)
                if grant_id:
                    await http.delete(f"/v1/grants/{grant_id}")
