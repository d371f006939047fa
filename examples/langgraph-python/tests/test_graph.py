"""End to end: the graph of graph.py, the helper, and a real `toolgate dev`."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from conftest import Proxy, Server, new_config
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graph import (
    ScriptedChatModel,
    build_graph,
    connect,
    content_text,
    demo_script,
    new_call_id,
)
from toolgate_langgraph import Toolgate, ToolgateError


def scripted(script: Any = demo_script) -> ScriptedChatModel:
    return ScriptedChatModel(script=script)


def app_with(tools: dict[str, list[Any]], model: ScriptedChatModel) -> Any:
    return build_graph(tools, model=model, checkpointer=InMemorySaver())


def tool_messages(out: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in out["messages"] if isinstance(m, ToolMessage)]


def asked_once_per_turn(model: ScriptedChatModel) -> None:
    """The model was never asked the same turn twice (a resume must not ask it)."""
    assert model.calls_per_turn, "the model was never called"
    assert set(model.calls_per_turn.values()) == {1}, model.calls_per_turn


async def test_each_node_lists_only_its_own_tools(tools: dict[str, list[Any]]) -> None:
    assert sorted(t.name for t in tools["triage"]) == ["crm_find_customer", "crm_list_orders", "crm_search_customers"]
    assert sorted(t.name for t in tools["billing"]) == ["billing_refund", "crm_list_orders"]


async def test_masked_text_result_with_the_identity_of_the_tools_node(server: Server, tools: dict[str, list[Any]]) -> None:
    model = scripted()
    config = new_config()
    out = await app_with(tools, model).ainvoke({"messages": [HumanMessage("find ada@example.com")]}, config)
    [msg] = tool_messages(out)
    assert isinstance(msg.content, str), "the model reads the tool output as text"
    assert msg.status == "success"
    assert json.loads(msg.content)["rows"][0]["card_number"] == "************4242", "the model reads the JSON toolgate sent"
    assert "4242424242424242" not in msg.content and "ada@example.com" not in msg.content
    asked_once_per_turn(model)
    [call] = await server.executed(config["configurable"]["run_id"], "crm_find_customer")
    ai = next(m for m in out["messages"] if isinstance(m, AIMessage) and m.tool_calls)
    assert (call["node"], call["thread"], call["tool_call_id"]) == ("triage", config["configurable"]["thread_id"], ai.tool_calls[0]["id"])


async def test_a_tool_the_node_may_not_call_is_refused_and_nothing_runs(server: Server, tools: dict[str, list[Any]]) -> None:
    # A misconfigured graph: the triage tools node holds billing's refund tool.
    refund = next(t for t in tools["billing"] if t.name == "billing_refund")

    def script(messages: list[BaseMessage]) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            return demo_script(messages)
        call = {"id": new_call_id(), "name": "billing_refund", "args": {"order_id": 105, "amount": 5, "reason": "not mine to do"}}
        return AIMessage(content="", tool_calls=[{**call, "type": "tool_call"}])

    model = scripted(script)
    before = server.all_refunds()
    out = await app_with({"triage": [refund]}, model).ainvoke({"messages": [HumanMessage("triage this")]}, new_config())
    [msg] = tool_messages(out)
    assert msg.status == "error"
    assert "forbidden" in content_text(msg.content)
    assert server.all_refunds() == before
    assert "forbidden" in content_text(out["messages"][-1].content), "the model read the refusal"
    asked_once_per_turn(model)


async def test_approval_interrupts_the_tool_task_and_the_resume_runs_it_once(server: Server, tools: dict[str, list[Any]]) -> None:
    model = scripted()
    app = app_with(tools, model)
    config = new_config()
    start, everything = server.refunds(104), server.all_refunds()
    out = await app.ainvoke({"messages": [HumanMessage("refund 250 on order 104")]}, config)
    [pause] = out["__interrupt__"]
    assert pause.value["type"] == "toolgate_approval"
    assert pause.value["approval_id"].startswith("ap_")
    assert "NOT performed" in pause.value["message"]
    assert (pause.value["tool"], pause.value["args"]["order_id"]) == ("billing_refund", 104)
    assert server.refunds(104) == start, "nothing runs before the approval"

    # Resuming before anyone decided pauses again on the same approval.
    out = await app.ainvoke(Command(resume={"approval_id": pause.value["approval_id"]}), config)
    assert [p.value["approval_id"] for p in out["__interrupt__"]] == [pause.value["approval_id"]]
    assert server.refunds(104) == start

    await server.decide(pause.value["approval_id"], "approve")
    out = await app.ainvoke(Command(resume={"approval_id": pause.value["approval_id"]}), config)
    assert "__interrupt__" not in out
    [result] = tool_messages(out)
    assert result.status == "success", result.content
    assert json.loads(result.content)["rows"][0]["order_id"] == 104
    assert server.refunds(104) == start + 1
    assert server.all_refunds() == everything + 1, "no other refund ran"
    asked_once_per_turn(model)  # the resumes asked the model nothing

    # The same call again in the same run gets the recorded result.
    out = await app.ainvoke({"messages": [HumanMessage("refund 250 on order 104")]}, config)
    assert "__interrupt__" not in out
    assert '"order_id":104' in tool_messages(out)[-1].content
    assert server.refunds(104) == start + 1, "a repeat must not run the refund twice"
    asked_once_per_turn(model)


async def test_a_denied_approval_reaches_the_model_as_a_tool_error(server: Server, tools: dict[str, list[Any]]) -> None:
    model = scripted()
    app = app_with(tools, model)
    config = new_config()
    start = server.refunds(103)
    out = await app.ainvoke({"messages": [HumanMessage("refund 300 on order 103")]}, config)
    [pause] = out["__interrupt__"]
    await server.decide(pause.value["approval_id"], "deny")
    out = await app.ainvoke(Command(resume={"approval_id": pause.value["approval_id"]}), config)
    assert "__interrupt__" not in out
    [msg] = tool_messages(out)
    assert msg.status == "error"
    assert "approval_denied" in msg.content
    assert "approval_denied" in content_text(out["messages"][-1].content), "the model read the denial"
    assert server.refunds(103) == start
    asked_once_per_turn(model)


async def test_parallel_tool_calls_pause_and_resume_each_and_run_each_once(server: Server, tools: dict[str, list[Any]]) -> None:
    model = scripted()
    app = app_with(tools, model)
    config = new_config()
    run = config["configurable"]["run_id"]
    r104, r103, everything = server.refunds(104), server.refunds(103), server.all_refunds()
    request = "refund 250 on order 104, refund 300 on order 103 and the orders of customer 1"
    out = await app.ainvoke({"messages": [HumanMessage(request)]}, config)
    [ai] = [m for m in out["messages"] if isinstance(m, AIMessage)]
    assert [c["name"] for c in ai.tool_calls] == ["billing_refund", "billing_refund", "crm_list_orders"]
    assert len({c["id"] for c in ai.tool_calls}) == 3
    pauses = {p.value["args"]["order_id"]: p for p in out["__interrupt__"]}
    assert sorted(pauses) == [103, 104]
    assert len({p.id for p in pauses.values()}) == 2 and len({p.value["approval_id"] for p in pauses.values()}) == 2
    assert len(await server.executed(run, "crm_list_orders")) == 1, "the call that needs no approval ran"

    # Approve and resume the first; the second pauses again on its own approval.
    first, second = pauses[104], pauses[103]
    await server.decide(first.value["approval_id"], "approve")
    out = await app.ainvoke(Command(resume={first.id: {"approval_id": first.value["approval_id"]}}), config)
    assert [p.value["approval_id"] for p in out["__interrupt__"]] == [second.value["approval_id"]]
    assert (server.refunds(104), server.refunds(103)) == (r104 + 1, r103)

    await server.decide(second.value["approval_id"], "approve")
    out = await app.ainvoke(Command(resume={p.id: {"approval_id": p.value["approval_id"]} for p in out["__interrupt__"]}), config)
    assert "__interrupt__" not in out
    results = {m.tool_call_id: m for m in tool_messages(out)}
    assert sorted(results) == sorted(c["id"] for c in ai.tool_calls), "one result per tool call, matched by id"
    assert all(m.status == "success" for m in results.values()), [m.content for m in results.values()]
    assert (server.refunds(104), server.refunds(103)) == (r104 + 1, r103 + 1)
    assert server.all_refunds() == everything + 2
    assert len(await server.executed(run, "billing_refund")) == 2
    assert len(await server.executed(run, "crm_list_orders")) == 1, "resumes do not re-run finished calls"
    asked_once_per_turn(model)


async def test_grant_tokens_for_one_run(server: Server, tg: Toolgate) -> None:
    tools = {node: await tg.tools(node) for node in ("triage", "billing")}
    model = scripted()
    async with tg.run(nodes=["triage", "billing"], ttl="5m") as run:
        assert run.nodes == ("billing", "triage")
        out = await app_with(tools, model).ainvoke({"messages": [HumanMessage("orders of customer 1")]}, run.config())
        assert '"id":101' in tool_messages(out)[0].content
    [call] = await server.executed(run.run_id, "crm_list_orders")
    assert (call["auth_method"], call["token_id"]) == ("grant", run.grant_id), call
    async with httpx.AsyncClient() as http:
        res = await http.get(f"{server.base}/v1/grants/{run.grant_id}", headers={"Authorization": f"Bearer {server.keys['agent_key']}"})
    assert res.json()["status"] == "revoked", "leaving the block revokes the grant"
    assert not tg._grant_tokens, "the run's tokens are forgotten"
    asked_once_per_turn(model)


async def test_a_grant_the_server_refuses_raises_its_code(tg: Toolgate) -> None:
    with pytest.raises(ToolgateError) as err:
        async with tg.run(nodes=["no-such-node"]):
            pytest.fail("the block must not run")
    assert err.value.code == "invalid_arguments"


async def test_a_call_outside_a_graph_or_without_a_run_is_refused_before_it_is_sent(server: Server, proxy: Proxy) -> None:
    _, tools = await connect(await proxy.start(), server.keys["agent_key"], timeout=5)
    listed = proxy.connections
    find = next(t for t in tools["triage"] if t.name == "crm_find_customer")
    with pytest.raises(ToolgateError, match="unidentified"):
        await find.ainvoke({"email": "ada@example.com"})
    # A graph invoked without a run id.
    with pytest.raises(ToolgateError, match="no run id"):
        await app_with(tools, scripted()).ainvoke(
            {"messages": [HumanMessage("find ada@example.com")]}, {"configurable": {"thread_id": "t"}}
        )
    assert proxy.connections == listed, "nothing was sent"


async def test_a_stopped_toolgate_is_a_tool_error_saying_the_tool_was_not_run(server: Server, proxy: Proxy) -> None:
    _, tools = await connect(await proxy.start(), server.keys["agent_key"], timeout=5)
    await proxy.stop()
    model = scripted()
    out = await app_with(tools, model).ainvoke({"messages": [HumanMessage("orders of customer 1")]}, new_config())
    [msg] = tool_messages(out)
    assert msg.status == "error"
    assert msg.content.startswith("toolgate_unreachable: toolgate at http://127.0.0.1:"), msg.content
    assert msg.content.endswith("; the tool was not run")
    assert "toolgate_unreachable" in content_text(out["messages"][-1].content), "the model read it"
    asked_once_per_turn(model)


async def test_a_hung_toolgate_fails_the_call_within_the_timeout(server: Server, proxy: Proxy) -> None:
    tg = Toolgate(await proxy.start(), api_key=server.keys["agent_key"], graph="support-bot", timeout=1.5)
    tools = {"billing": await tg.tools("billing")}
    proxy.mode = "hang"
    started = time.monotonic()
    out = await app_with(tools, scripted()).ainvoke({"messages": [HumanMessage("orders of customer 1")]}, new_config())
    elapsed = time.monotonic() - started
    [msg] = tool_messages(out)
    assert msg.status == "error"
    assert "could not be reached (no answer within 1.5 s); the tool was not run" in msg.content, msg.content
    # Bounded by the 1.5 s timeout, not by the helper's default (30 s) or the
    # adapters' read timeout (300 s).
    assert elapsed < 20, elapsed
    with pytest.raises(ToolgateError, match="toolgate_unreachable"):
        await tg.tools("triage")


def test_the_server_log_holds_no_key(server: Server) -> None:
    log = server.log()
    assert log, "toolgate logged nothing"
    for key in (server.keys["agent_key"], server.keys["approver_key"]):
        assert key[4:] not in log


async def test_resume_keeps_the_run_of_the_approval(server: Server, tools: dict[str, list[Any]]) -> None:
    """A resume under another run id is another run: the approval does not carry over."""
    model = scripted()
    app = app_with(tools, model)
    thread = str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread, "run_id": str(uuid.uuid4())}}
    start = server.refunds(102)
    out = await app.ainvoke({"messages": [HumanMessage("refund 150 on order 102")]}, config)
    [pause] = out["__interrupt__"]
    await server.decide(pause.value["approval_id"], "approve")
    other = {"configurable": {"thread_id": thread, "run_id": str(uuid.uuid4())}}
    out = await app.ainvoke(Command(resume={"approval_id": pause.value["approval_id"]}), other)
    assert out["__interrupt__"][0].value["approval_id"] != pause.value["approval_id"], "a new approval for the other run"
    assert server.refunds(102) == start
    keep = {"configurable": {**other["configurable"], "toolgate_run_id": config["configurable"]["run_id"]}}
    out = await app.ainvoke(Command(resume={"approval_id": pause.value["approval_id"]}), keep)
    assert "__interrupt__" not in out
    assert server.refunds(102) == start + 1
    asked_once_per_turn(model)
