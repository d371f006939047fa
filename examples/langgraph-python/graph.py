"""graph.py: a LangGraph supervisor graph whose tools run through toolgate.

    supervisor ─┬─▶ triage_model  ⇄ triage   (ToolNode: crm_* tools)
                └─▶ billing_model ⇄ billing  (ToolNode: crm_list_orders, billing_refund)

LangGraph's standard shape: a model node only asks for tool calls; the tool
node named after the toolgate node (``triage``, ``billing``) runs them, one
task per tool call (Send), with the helper of toolgate_langgraph. An approval
interrupts that tool task, so a resume re-runs only the tool call, with the
arguments already in the graph state: the model is never asked again.

No LLM service: ScriptedChatModel answers as a model would, with tool calls
picked from the request. Swap in ``ChatOpenAI(...)`` (or any chat model that
supports ``bind_tools``) and nothing else changes.

    pip install ./examples/langgraph-python
    TOOLGATE_URL=http://127.0.0.1:8080/mcp TOOLGATE_KEY=tgk_... \\
    TOOLGATE_APPROVER_KEY=tgk_... python graph.py "refund 250 on order 102"

For LangGraph Server (``langgraph dev``), langgraph.json points at
``make_graph``, which reads TOOLGATE_URL and TOOLGATE_KEY.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, Send
from pydantic import PrivateAttr

from toolgate_langgraph import Toolgate

Script = Callable[[Sequence[BaseMessage]], AIMessage]


class ScriptedChatModel(BaseChatModel):
    """A chat model whose replies come from a function of the messages.

    It counts the calls per turn (the exact messages it is given). A second
    call for the same turn answers with DIFFERENT arguments, as a real model
    may: a graph that asks the model again on resume would then run or hold
    another call, and the tests would see it.
    """

    script: Script
    _turns: Counter[str] = PrivateAttr(default_factory=Counter)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def calls_per_turn(self) -> dict[str, int]:
        """How often each turn was asked (1 everywhere when nothing was asked twice)."""
        return dict(self._turns)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, BaseMessage]:
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        turn = turn_key(messages)
        self._turns[turn] += 1
        message = self.script(messages)
        if self._turns[turn] > 1:
            message = _perturbed(message, self._turns[turn])
        return ChatResult(generations=[ChatGeneration(message=message)])


def turn_key(messages: Sequence[BaseMessage]) -> str:
    """A fingerprint of the conversation a model is asked about."""
    parts = [
        [m.type, m.content, [c["id"] for c in getattr(m, "tool_calls", None) or []], getattr(m, "tool_call_id", None)] for m in messages
    ]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _perturbed(message: AIMessage, attempt: int) -> AIMessage:
    """The same tool calls with other arguments and ids: what a model asked twice may do."""
    calls = []
    for call in message.tool_calls:
        args = {k: v + attempt - 1 if isinstance(v, int | float) else v for k, v in call["args"].items()}
        calls.append({**call, "args": args, "id": new_call_id()})
    return AIMessage(content=message.content, tool_calls=calls)


def new_call_id() -> str:
    """A tool call id as a model gives one: unique per call."""
    return f"call_{uuid.uuid4().hex[:24]}"


def last_human(messages: Sequence[BaseMessage]) -> str:
    return next((str(m.content) for m in reversed(messages) if isinstance(m, HumanMessage)), "")


def content_text(content: Any) -> str:
    """The text of a message content (a string, or a list of blocks)."""
    if isinstance(content, str):
        return content
    return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content or [])


_REQUESTS = re.compile(
    r"refund (?P<amount>\d+(?:\.\d+)?) on order (?P<order>\d+)"
    r"|orders of customer (?P<customer>\d+)"
    r"|find (?P<email>\S+@[\w.-]+\w)"
    r"|search (?P<name>\S+)",
    re.I,
)


def demo_script(messages: Sequence[BaseMessage]) -> AIMessage:
    """Play the model of a node: the tool calls the request asks for, then an answer.

    "refund 250 on order 102"  → billing_refund       "orders of customer 1" → crm_list_orders
    "find ada@example.com"     → crm_find_customer    "search Ada"           → crm_search_customers
    Several requests in one message give several tool calls in one AIMessage.
    """
    if messages and isinstance(messages[-1], ToolMessage):
        results = []
        for m in reversed(messages):
            if not isinstance(m, ToolMessage):
                break
            results.insert(0, content_text(m.content))
        return AIMessage(content="Done. The tools said: " + " | ".join(results))
    calls = []
    for m in _REQUESTS.finditer(last_human(messages)):
        if m["order"]:
            name, args = "billing_refund", {"order_id": int(m["order"]), "amount": float(m["amount"]), "reason": "customer request"}
        elif m["customer"]:
            name, args = "crm_list_orders", {"customer_id": int(m["customer"])}
        elif m["email"]:
            name, args = "crm_find_customer", {"email": m["email"]}
        else:
            name, args = "crm_search_customers", {"name": m["name"]}
        calls.append({"id": new_call_id(), "name": name, "args": args, "type": "tool_call"})
    if not calls:
        return AIMessage(content="I cannot help with that.")
    return AIMessage(content="", tool_calls=calls)


def model_node(model: Runnable[Any, BaseMessage]) -> Callable[..., Any]:
    """A node that only asks the model; the tools node runs what it asks for."""

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    return call_model


def route_tool_calls(tools_node: str) -> Callable[[MessagesState], Any]:
    """Send each tool call of the last AIMessage to the tools node as its own task.

    One task per call: an approval pauses only its own call, and a resume
    re-runs only the calls that have not finished.
    """

    def route(state: MessagesState) -> Any:
        last = state["messages"][-1]
        if not isinstance(last, AIMessage) or not last.tool_calls:
            return END
        return [Send(tools_node, {"__type": "tool_call_with_context", "tool_call": call, "state": state}) for call in last.tool_calls]

    return route


def supervisor(state: MessagesState) -> Command[Any]:
    """Route money matters to billing, the rest to triage."""
    node = "billing" if re.search(r"refund|orders", last_human(state["messages"]), re.I) else "triage"
    return Command(goto=f"{node}_model")


def build_graph(
    tools: Mapping[str, Sequence[BaseTool]],
    model: BaseChatModel | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The supervisor graph; ``tools`` maps a toolgate node (triage, billing) to its tools."""
    model = model or ScriptedChatModel(script=demo_script)
    g = StateGraph(MessagesState)
    g.add_node("supervisor", supervisor, destinations=tuple(f"{node}_model" for node in tools))
    for node, node_tools in tools.items():
        g.add_node(f"{node}_model", model_node(model.bind_tools(node_tools)))
        g.add_node(node, ToolNode(list(node_tools)))
        g.add_conditional_edges(f"{node}_model", route_tool_calls(node), [node, END])
        g.add_edge(node, f"{node}_model")
    g.add_edge(START, "supervisor")
    return g.compile(checkpointer=checkpointer)


async def connect(url: str, api_key: str, graph: str = "support-bot", timeout: float = 30.0) -> tuple[Toolgate, dict[str, list[BaseTool]]]:
    """A Toolgate helper and the tools of each node, listed from toolgate."""
    tg = Toolgate(url, api_key=api_key, graph=graph, timeout=timeout)
    return tg, {node: await tg.tools(node) for node in ("triage", "billing")}


_server_graph: dict[str, CompiledStateGraph[Any, Any, Any, Any]] = {}


async def make_graph() -> CompiledStateGraph[Any, Any, Any, Any]:
    """The graph for LangGraph Server (langgraph.json); tools are listed once per process."""
    if "graph" not in _server_graph:
        _, tools = await connect(os.environ.get("TOOLGATE_URL", "http://127.0.0.1:8080/mcp"), os.environ["TOOLGATE_KEY"])
        _server_graph["graph"] = build_graph(tools)
    return _server_graph["graph"]


async def approve_all(url: str, pauses: Sequence[Any], approver_key: str | None) -> dict[str, Any] | None:
    """Approve each paused call with the approver key; the resume map, or None without a key."""
    resume = {}
    for pause in pauses:
        print(f"paused: {pause.value['tool']} {json.dumps(pause.value['args'])}\n  {pause.value['message']}")
        decide = httpx.URL(url).join(f"/v1/approvals/{pause.value['approval_id']}/approve")
        if not approver_key:
            print(f"  approve it: curl -X POST {decide} -H 'Authorization: Bearer <approver key>'")
            continue
        async with httpx.AsyncClient() as http:
            res = await http.post(decide, headers={"Authorization": f"Bearer {approver_key}"})
        print(f"  approved with TOOLGATE_APPROVER_KEY: HTTP {res.status_code}")
        resume[pause.id] = {"approval_id": pause.value["approval_id"]}
    return resume if approver_key else None


async def main() -> None:
    url = os.environ.get("TOOLGATE_URL", "http://127.0.0.1:8080/mcp")
    key = os.environ.get("TOOLGATE_KEY")
    if not key:
        raise SystemExit("set TOOLGATE_KEY to the agent key that `toolgate dev` printed")
    _, tools = await connect(url, key)
    app = build_graph(tools, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": str(uuid.uuid4()), "run_id": str(uuid.uuid4())}}
    request = " ".join(sys.argv[1:]) or "find ada@example.com"
    out = await app.ainvoke({"messages": [HumanMessage(request)]}, config)
    while out.get("__interrupt__"):
        resume = await approve_all(url, out["__interrupt__"], os.environ.get("TOOLGATE_APPROVER_KEY"))
        if resume is None:
            return
        out = await app.ainvoke(Command(resume=resume), config)
    print(content_text(out["messages"][-1].content))
    print(f"trace: toolgate audit export --run {config['configurable']['run_id']}")


if __name__ == "__main__":
    asyncio.run(main())
