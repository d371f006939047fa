"""graph.py: the supervisor graph of examples/langgraph-js, in Python.

supervisor ─┬─▶ triage  (crm_* tools)
            └─▶ billing (crm_list_orders, billing_refund)

No LLM service: ScriptedChatModel answers with AIMessages carrying
tool_calls, picked from the conversation, as a model would. Replace it with
ChatOpenAI(...).bind_tools(tools) and nothing else changes.

    pip install -r requirements.txt
    TOOLGATE_URL=http://127.0.0.1:8080/mcp TOOLGATE_KEY=tgk_... \
    TOOLGATE_APPROVER_KEY=tgk_... python graph.py "refund 250 on order 102"
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command

from toolgate_lg import Toolgate


class ScriptedChatModel(BaseChatModel):
    """A chat model whose replies come from a function of the messages."""

    script: Callable[[Sequence[BaseMessage]], AIMessage]

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.script(messages))])


def tool_call(name: str, args: dict[str, Any], messages: Sequence[BaseMessage]) -> AIMessage:
    """One tool call whose id is stable when the node runs again after a resume."""
    digest = hashlib.sha256(f"{len(messages)}|{name}|{json.dumps(args, sort_keys=True)}".encode()).hexdigest()[:16]
    return AIMessage(content="", tool_calls=[{"id": f"call_{digest}", "name": name, "args": args, "type": "tool_call"}])


def last_human(messages: Sequence[BaseMessage]) -> str:
    return next((str(m.content) for m in reversed(messages) if isinstance(m, HumanMessage)), "")


def demo_script(messages: Sequence[BaseMessage]) -> AIMessage:
    if messages and messages[-1].type == "tool":
        return AIMessage(content=f"Done. The tool said: {messages[-1].content}")
    text = last_human(messages)
    if m := re.search(r"refund (\d+(?:\.\d+)?) on order (\d+)", text, re.I):
        return tool_call("billing_refund", {"order_id": int(m[2]), "amount": float(m[1]), "reason": "customer request"}, messages)
    if m := re.search(r"orders of customer (\d+)", text, re.I):
        return tool_call("crm_list_orders", {"customer_id": int(m[1])}, messages)
    if m := re.search(r"find (\S+@\S+)", text, re.I):
        return tool_call("crm_find_customer", {"email": m[1]}, messages)
    return AIMessage(content="I cannot help with that.")


def agent_node(model: BaseChatModel, tools: list[Any], max_steps: int = 4):
    """A model + tools loop inside one graph node, so its calls carry that node's identity."""
    tool_node = ToolNode(tools)

    async def node(state: MessagesState, config: dict[str, Any]) -> dict[str, Any]:
        added: list[BaseMessage] = []
        for _ in range(max_steps):
            ai = await model.ainvoke([*state["messages"], *added], config)
            added.append(ai)
            if not ai.tool_calls:
                break
            out = await tool_node.ainvoke({"messages": [*state["messages"], *added]}, config)
            added.extend(out["messages"])
        return {"messages": added}

    return node


def build_graph(tools: dict[str, list[Any]], script=demo_script, checkpointer=None):
    model = ScriptedChatModel(script=script)

    def supervisor(state: MessagesState) -> Command:
        goto = "billing" if re.search(r"refund|orders", last_human(state["messages"]), re.I) else "triage"
        return Command(goto=goto)

    g = StateGraph(MessagesState)
    g.add_node("supervisor", supervisor, destinations=("triage", "billing"))
    g.add_node("triage", agent_node(model, tools["triage"]))
    g.add_node("billing", agent_node(model, tools["billing"]))
    g.add_edge(START, "supervisor")
    g.add_edge("triage", END)
    g.add_edge("billing", END)
    return g.compile(checkpointer=checkpointer or InMemorySaver())


async def main() -> None:
    url = os.environ.get("TOOLGATE_URL", "http://127.0.0.1:8080/mcp")
    key = os.environ["TOOLGATE_KEY"]
    tg = Toolgate(url=url, api_key=key, graph="support-bot")
    app = build_graph({"triage": await tg.tools("triage"), "billing": await tg.tools("billing")})
    config = {"configurable": {"thread_id": str(uuid.uuid4()), "run_id": str(uuid.uuid4())}}
    request = " ".join(sys.argv[1:]) or "find ada@example.com"
    out = await app.ainvoke({"messages": [HumanMessage(request)]}, config)
    while out.get("__interrupt__"):
        pause = out["__interrupt__"][0].value
        print(f"paused: {pause['message']}")
        approver = os.environ.get("TOOLGATE_APPROVER_KEY")
        if not approver:
            print(f"approve it: POST /v1/approvals/{pause['approval_id']}/approve with the approver key")
            return
        async with httpx.AsyncClient() as http:
            res = await http.post(str(httpx.URL(url).join(f"/v1/approvals/{pause['approval_id']}/approve")), headers={"Authorization": f"Bearer {approver}"})
        print(f"approved: HTTP {res.status_code}")
        out = await app.ainvoke(Command(resume={"approval_id": pause["approval_id"]}), config)
    print(out["messages"][-1].content)


if __name__ == "__main__":
    asyncio.run(main())
