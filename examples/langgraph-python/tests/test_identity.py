"""The identity of a call, read from the LangGraph config (no server needed)."""

from __future__ import annotations

import pytest

from toolgate_langgraph import (
    Identity,
    Toolgate,
    ToolgateError,
    identity_from,
    node_path,
)


@pytest.mark.parametrize(
    ("ns", "want"),
    [
        ("supervisor:3f2a|research:9c1d", "supervisor/research"),
        ("billing:1b2c", "billing"),
        ("a:1|b:2|c:3", "a/b/c"),
        ("triage", "triage"),
        ("|triage:1|", "triage"),
    ],
)
def test_node_path(ns: str, want: str) -> None:
    assert node_path(ns) == want


def test_identity_fields_and_run_precedence() -> None:
    config = {
        "configurable": {"thread_id": "t1", "run_id": "r1", "checkpoint_ns": "ignored:1"},
        "metadata": {"langgraph_checkpoint_ns": "supervisor:x|research:y", "run_id": "meta"},
    }
    assert identity_from(config, "support-bot", "call_1") == Identity("support-bot", "supervisor/research", "r1", "t1", "call_1")
    keep = identity_from({"configurable": {"toolgate_run_id": "keep", "run_id": "server"}, "metadata": {"langgraph_node": "triage"}}, "g")
    assert (keep.node, keep.run, keep.thread, keep.tool_call_id) == ("triage", "keep", None, None)
    meta = identity_from({"metadata": {"langgraph_node": "triage", "run_id": "m1", "thread_id": "t2"}}, "g")
    assert (meta.run, meta.thread) == ("m1", "t2")


def test_headers_carry_identity_and_the_runs_grant_token_only() -> None:
    tg = Toolgate("http://127.0.0.1:1/mcp", api_key="tgk_key", graph="g")
    tg._grant_tokens[("r1", "billing")] = "tg_token"
    ident = Identity("g", "billing", "r1", "t1", "call_1")
    assert tg.headers_for(ident) == {
        "Authorization": "Bearer tg_token",
        "X-Toolgate-Graph": "g",
        "X-Toolgate-Node": "billing",
        "X-Toolgate-Run": "r1",
        "X-Toolgate-Thread": "t1",
        "X-Toolgate-Tool-Call-Id": "call_1",
    }
    # Another run or another node never gets the token.
    assert tg.headers_for(Identity("g", "billing", "r2"))["Authorization"] == "Bearer tgk_key"
    assert tg.headers_for(Identity("g", "triage", "r1"))["Authorization"] == "Bearer tgk_key"
    assert "tgk_key" not in repr(tg)


@pytest.mark.parametrize(
    ("config", "why"),
    [
        (None, "outside a LangGraph node"),
        ({"configurable": {"run_id": "r1"}}, "outside a LangGraph node"),
        ({"metadata": {"langgraph_node": "triage"}}, "no run id"),
    ],
)
def test_unidentified(config: dict | None, why: str) -> None:
    with pytest.raises(ToolgateError, match=why) as err:
        identity_from(config, "g")
    assert err.value.code == "unidentified"


def test_a_value_no_header_can_carry_is_refused() -> None:
    with pytest.raises(ToolgateError) as err:
        identity_from(
            {"metadata": {"langgraph_node": "triage"}, "configurable": {"run_id": "r1", "thread_id": "t\r\nX-Toolgate-Node: billing"}}, "g"
        )
    assert err.value.code == "invalid_identity"
