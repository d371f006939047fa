"""toolgate_langgraph: use toolgate from LangGraph (Python).

    from toolgate_langgraph import Toolgate

    tg = Toolgate("http://127.0.0.1:8080/mcp", api_key=KEY, graph="support-bot")
    billing_tools = await tg.tools("billing")   # a ToolNode named "billing" runs them
    config = {"configurable": {"thread_id": "t-1", "run_id": "r-1"}}

Every call is identified from the LangGraph config of the tools node that runs
it (X-Toolgate-Graph/Node/Run/Thread/Tool-Call-Id), never from the model. An
``approval_pending`` answer becomes ``interrupt({type: "toolgate_approval",
approval_id, expires_at, message, tool, args})``; resuming sends the same call
again and toolgate runs it exactly once once approved, or answers
``approval_denied``, which the model reads as a tool error. ``async with
tg.run(nodes=[...]) as run`` mints per-node grant tokens for one run and
revokes them at the end.
"""

from toolgate_langgraph.client import Run, Toolgate, pending_of
from toolgate_langgraph.identity import (
    HEADER_GRAPH,
    HEADER_NODE,
    HEADER_RUN,
    HEADER_THREAD,
    HEADER_TOOL_CALL_ID,
    Identity,
    ToolgateError,
    identity_from,
    node_path,
)

__all__ = [
    "HEADER_GRAPH",
    "HEADER_NODE",
    "HEADER_RUN",
    "HEADER_THREAD",
    "HEADER_TOOL_CALL_ID",
    "Identity",
    "Run",
    "Toolgate",
    "ToolgateError",
    "identity_from",
    "node_path",
    "pending_of",
]
