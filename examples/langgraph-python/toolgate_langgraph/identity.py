"""Who makes a tool call: the LangGraph context toolgate reads from headers.

Every value comes from the runnable config LangGraph hands the tools node
(``ToolRuntime.config``), never from the model, except the tool call id,
which is the model's own id for the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HEADER_GRAPH = "X-Toolgate-Graph"
HEADER_NODE = "X-Toolgate-Node"
HEADER_RUN = "X-Toolgate-Run"
HEADER_THREAD = "X-Toolgate-Thread"
HEADER_TOOL_CALL_ID = "X-Toolgate-Tool-Call-Id"


class ToolgateError(Exception):
    """A refusal or failure of this helper, with a stable code.

    Raised for problems the graph's author must fix (a tool called outside a
    graph node, no run id, toolgate unreachable while listing tools, a grant
    that cannot be minted). Failures of a single tool call reach the model as
    an error ToolMessage instead.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class Identity:
    """The LangGraph context of one tool call."""

    graph: str
    node: str
    run: str
    thread: str | None = None
    tool_call_id: str | None = None

    def headers(self) -> dict[str, str]:
        """The X-Toolgate-* headers that carry this identity."""
        headers = {HEADER_GRAPH: self.graph, HEADER_NODE: self.node, HEADER_RUN: self.run}
        if self.thread:
            headers[HEADER_THREAD] = self.thread
        if self.tool_call_id:
            headers[HEADER_TOOL_CALL_ID] = self.tool_call_id
        return headers


def node_path(checkpoint_ns: str) -> str:
    """Turn a checkpoint namespace into a toolgate node path.

    ``"supervisor:3f2a…|research:9c1d…"`` → ``"supervisor/research"``: task
    ids after ``:`` and empty segments are dropped.
    """
    names = (segment.split(":", 1)[0] for segment in str(checkpoint_ns).split("|"))
    return "/".join(name for name in names if name)


def identity_from(config: Mapping[str, Any] | None, graph: str, tool_call_id: str | None = None) -> Identity:
    """Read the identity of a tool call from its runnable config.

    The node is the path of ``metadata.langgraph_checkpoint_ns`` (else
    ``configurable.checkpoint_ns``, else ``metadata.langgraph_node``). The run
    is ``configurable.toolgate_run_id``, else ``configurable.run_id`` (LangGraph
    Server sets it, a new one for every run, resumes included), else
    ``metadata.run_id``. An approval is bound to its run, so a resume must
    carry the run of the call it resumes (``toolgate_run_id`` on LangGraph
    Server). The thread is ``configurable.thread_id``.

    Raises ToolgateError("unidentified") when the node or the run cannot be
    told, and ToolgateError("invalid_identity") for a value no HTTP header can
    carry; nothing is sent in either case.
    """
    config = config or {}
    conf: Mapping[str, Any] = config.get("configurable") or {}
    meta: Mapping[str, Any] = config.get("metadata") or {}
    ns = meta.get("langgraph_checkpoint_ns") or conf.get("checkpoint_ns")
    node = node_path(ns) if ns else meta.get("langgraph_node")
    if not node:
        raise ToolgateError(
            "unidentified",
            "this toolgate tool was called outside a LangGraph node (no langgraph_checkpoint_ns or "
            "langgraph_node in its config), so the call was not sent; call it from a graph node, "
            "e.g. through a ToolNode",
        )
    run = conf.get("toolgate_run_id") or conf.get("run_id") or meta.get("run_id")
    if not run:
        raise ToolgateError(
            "unidentified",
            "no run id in the LangGraph config, so the call was not sent; invoke the graph with "
            'config={"configurable": {"run_id": ...}} and keep the same run id when you resume it',
        )
    thread = conf.get("thread_id") or meta.get("thread_id")
    ident = Identity(
        graph=graph,
        node=str(node),
        run=str(run),
        thread=str(thread) if thread else None,
        tool_call_id=str(tool_call_id) if tool_call_id else None,
    )
    for name, value in ident.headers().items():
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise ToolgateError("invalid_identity", f"{name} would contain a control character, so the call was not sent")
    return ident
