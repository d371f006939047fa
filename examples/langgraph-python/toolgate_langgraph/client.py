"""Toolgate: toolgate's tools for LangGraph through langchain-mcp-adapters."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
import httpx
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.interceptors import MCPToolCallRequest
from langchain_mcp_adapters.sessions import StreamableHttpConnection
from langgraph.types import interrupt
from mcp.shared.exceptions import McpError
from mcp.types import CallToolResult, TextContent

from toolgate_langgraph.identity import HEADER_GRAPH, HEADER_NODE, Identity, ToolgateError, identity_from
from toolgate_langgraph.tracing import trace_headers

Handler = Callable[[MCPToolCallRequest], Awaitable[Any]]


@dataclass(frozen=True)
class Run:
    """A run whose calls carry per-node grant tokens (see Toolgate.run)."""

    run_id: str
    grant_id: str
    nodes: tuple[str, ...]
    expires_at: str | None = None
    thread_id: str | None = None

    def config(self, thread_id: str | None = None) -> dict[str, Any]:
        """A runnable config that puts the graph's calls on this run."""
        thread = thread_id or self.thread_id or str(uuid.uuid4())
        return {"configurable": {"thread_id": thread, "toolgate_run_id": self.run_id}}


def pending_of(result: CallToolResult) -> dict[str, Any] | None:
    """The structured content of an ``approval_pending`` result, or None."""
    sc = result.structuredContent
    if not result.isError and isinstance(sc, dict) and sc.get("status") == "approval_pending":
        return sc
    return None


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (possibly nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


class Toolgate:
    """Lists toolgate's tools per node and identifies every call from LangGraph.

    ``tools(node)`` returns LangChain tools for a ToolNode. On every call the
    helper reads the identity from the call's ToolRuntime, turns
    ``approval_pending`` into ``interrupt()``, gives the model the result as
    text, and turns an unreachable or hung toolgate into an error ToolMessage.
    ``timeout`` (seconds or a timedelta) bounds each request to toolgate as a
    whole: keep it above the server's ``approvals.wait``.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        graph: str,
        *,
        timeout: float | timedelta = 30.0,
        server_name: str = "toolgate",
    ) -> None:
        if not url or not api_key or not graph:
            raise ValueError("Toolgate needs url, api_key and graph")
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        if seconds <= 0:
            raise ValueError("Toolgate timeout must be positive")
        self.url = url
        self.graph = graph
        self.timeout = seconds
        self.server_name = server_name
        self._api_key = api_key
        self._grant_tokens: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"Toolgate(url={self.url!r}, graph={self.graph!r}, timeout={self.timeout:g})"

    @property
    def origin(self) -> str:
        """scheme://host:port of toolgate, without credentials or path."""
        u = httpx.URL(self.url)
        return f"{u.scheme}://{u.host}" + (f":{u.port}" if u.port else "")

    def connection(self, node: str) -> StreamableHttpConnection:
        """The langchain-mcp-adapters connection that lists tools as ``node``.

        The adapters' ``timeout`` does not bound a call (an httpx read of the
        response stream is governed by ``sse_read_timeout``), so both are set.
        """
        return {
            "transport": "streamable_http",
            "url": self.url,
            "headers": {"Authorization": f"Bearer {self._api_key}", HEADER_GRAPH: self.graph, HEADER_NODE: node},
            "timeout": self.timeout,
            "sse_read_timeout": self.timeout,
        }

    def client(self, node: str) -> MultiServerMCPClient:
        """A MultiServerMCPClient for ``node`` whose calls go through this helper."""
        return MultiServerMCPClient({self.server_name: self.connection(node)}, tool_interceptors=[self.interceptor])

    async def tools(self, node: str) -> list[BaseTool]:
        """The tools toolgate lets ``node`` call, as LangChain tools."""
        try:
            with anyio.fail_after(self.timeout):
                return await self.client(node).get_tools(server_name=self.server_name)
        except Exception as exc:
            why = self._failure(exc)
            if why is None:
                raise
            raise ToolgateError(why[0], f"listing the tools of node {node!r} failed: {why[1]}") from exc

    def headers_for(self, ident: Identity) -> dict[str, str]:
        """The request headers of a call: identity, the run's grant token or the API key,
        and the current span's trace context when OpenTelemetry is in use."""
        token = self._grant_tokens.get((ident.run, ident.node), self._api_key)
        return {"Authorization": f"Bearer {token}", **ident.headers(), **trace_headers()}

    async def interceptor(self, request: MCPToolCallRequest, handler: Handler) -> Any:
        """Identify the call, send it, pause on approval_pending, answer with text."""
        runtime = request.runtime
        if runtime is None:
            raise ToolgateError(
                "unidentified",
                "this toolgate tool was called without a LangGraph ToolRuntime, so the call was not "
                "sent; call it from a ToolNode (langgraph-prebuilt >= 1.0.5)",
            )
        config = getattr(runtime, "config", None)
        tool_call_id = getattr(runtime, "tool_call_id", None)
        ident = identity_from(config, self.graph, tool_call_id)
        call = request.override(headers={**(request.headers or {}), **self.headers_for(ident)})
        result = await self._send(call, handler)
        # Each pending answer pauses the graph. On resume the tools node runs
        # again and the same call is sent again: toolgate answers pending (we
        # pause again), the result of the approved call (run exactly once), or
        # approval_denied.
        while (pending := pending_of(result)) is not None:
            interrupt(
                {
                    "type": "toolgate_approval",
                    "approval_id": pending.get("approval_id"),
                    "expires_at": pending.get("expires_at"),
                    "message": _text_of(result) or pending.get("message"),
                    "tool": request.name,
                    "args": request.args,
                }
            )
            result = await self._send(call, handler)
        return _as_message(result, request.name, tool_call_id)

    async def _send(self, call: MCPToolCallRequest, handler: Handler) -> CallToolResult:
        """One request to toolgate, bounded by the timeout; failures become error results."""
        try:
            with anyio.fail_after(self.timeout):
                result = await handler(call)
        except Exception as exc:
            why = self._failure(exc)
            if why is None:
                raise
            return CallToolResult(content=[TextContent(type="text", text=f"{why[0]}: {why[1]}")], isError=True)
        if not isinstance(result, CallToolResult):
            raise TypeError(f"the MCP tool call answered {type(result).__name__}, not a CallToolResult")
        return result

    def _failure(self, exc: BaseException) -> tuple[str, str] | None:
        """(code, message) for a failure to reach toolgate, or None for anything else."""
        leaves = list(_leaves(exc))
        unreachable = f"toolgate at {self.origin} could not be reached"
        for e in leaves:
            if isinstance(e, TimeoutError | httpx.TimeoutException):
                return "toolgate_unreachable", f"{unreachable} (no answer within {self.timeout:g} s); the tool was not run"
        for e in leaves:
            if isinstance(e, httpx.HTTPStatusError):
                status = e.response.status_code
                if status >= 500:
                    return "toolgate_unreachable", f"{unreachable} (HTTP {status}); the tool was not run"
                return "toolgate_refused", f"toolgate at {self.origin} refused the request (HTTP {status}); the tool was not run"
            if isinstance(e, httpx.TransportError):
                return "toolgate_unreachable", f"{unreachable} ({type(e).__name__}: {e}); the tool was not run"
            if isinstance(e, McpError):
                return "toolgate_error", e.error.message
        return None

    @contextlib.asynccontextmanager
    async def run(
        self,
        nodes: Sequence[str],
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        ttl: str | int = "15m",
        scope: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Run]:
        """Mint one grant token per node for a run; revoke them on exit.

        Inside the block, calls whose run is ``run.run_id`` (pass
        ``run.config()`` to the graph) carry the token of their node instead of
        the API key. Raises ToolgateError("grants_unavailable") when the server
        serves no /v1/grants, or the server's error code when it refuses.
        """
        if not nodes:
            raise ValueError("run() needs the nodes to mint tokens for")
        run_id = run_id or str(uuid.uuid4())
        body: dict[str, Any] = {"graph": self.graph, "run_id": run_id, "nodes": list(nodes), "ttl": ttl}
        if thread_id:
            body["thread_id"] = thread_id
        if scope:
            body["scope"] = dict(scope)
        out = await self._mint(body)
        tokens: dict[str, str] = out["tokens"]
        grant = Run(run_id, out["grant_id"], tuple(sorted(tokens)), out.get("expires_at"), thread_id)
        for node, token in tokens.items():
            self._grant_tokens[(run_id, node)] = token
        try:
            yield grant
        except BaseException:
            self._forget(run_id, tokens)
            with contextlib.suppress(ToolgateError):
                await self._api("DELETE", f"/v1/grants/{grant.grant_id}")
            raise
        self._forget(run_id, tokens)
        res = await self._api("DELETE", f"/v1/grants/{grant.grant_id}")
        if res.is_error and res.status_code != 404:
            raise _api_error(res, f"revoking grant {grant.grant_id} failed")

    async def _mint(self, body: dict[str, Any]) -> dict[str, Any]:
        res = await self._api("POST", "/v1/grants", body)
        if res.status_code == 404:
            raise ToolgateError("grants_unavailable", "this toolgate serves no /v1/grants endpoint; run without grants")
        if res.is_error:
            raise _api_error(res, "minting grants failed")
        out = res.json()
        if not isinstance(out, dict) or not isinstance(out.get("tokens"), dict) or not out.get("grant_id"):
            raise ToolgateError("bad_response", "POST /v1/grants answered without grant_id and tokens")
        return out

    def _forget(self, run_id: str, tokens: Mapping[str, str]) -> None:
        for node in tokens:
            self._grant_tokens.pop((run_id, node), None)

    async def _api(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """One request to toolgate's HTTP API (same origin as the MCP URL)."""
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                return await http.request(
                    method,
                    httpx.URL(self.url).join(path),
                    json=body,
                    headers={"Authorization": f"Bearer {self._api_key}"},
                )
        except httpx.TransportError as exc:
            why = f"no answer within {self.timeout:g} s" if isinstance(exc, httpx.TimeoutException) else f"{type(exc).__name__}: {exc}"
            raise ToolgateError(
                "toolgate_unreachable", f"toolgate at {self.origin} could not be reached for {method} {path} ({why})"
            ) from exc


def _api_error(res: httpx.Response, what: str) -> ToolgateError:
    try:
        err = res.json().get("error") or {}
    except ValueError:
        err = {}
    return ToolgateError(str(err.get("code") or f"http_{res.status_code}"), f"{what}: {err.get('message') or res.reason_phrase}")


def _text_of(result: CallToolResult) -> str | None:
    """The text of a result made of text blocks only, else None."""
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    return "\n".join(texts) if len(texts) == len(result.content) else None


def _as_message(result: CallToolResult, name: str, tool_call_id: str | None) -> CallToolResult | ToolMessage:
    """The result as a ToolMessage with text content (what the model reads).

    A result with non-text blocks, or a call without a tool call id, is left
    to the adapters' own conversion (content blocks).
    """
    text = _text_of(result)
    if text is None or not tool_call_id:
        return result
    artifact = {"structured_content": result.structuredContent} if result.structuredContent is not None else None
    return ToolMessage(
        content=text,
        tool_call_id=tool_call_id,
        name=name,
        status="error" if result.isError else "success",
        artifact=artifact,
    )
