"""The README's Python snippet for LangGraph, run as written against toolgate dev.

Only the placeholders change: the URL, the key, the ids, the chat model (the
scripted one) and the human's approval.
"""

from __future__ import annotations

import textwrap
import uuid
from typing import Any

from conftest import REPO, Server
from langchain_core.messages import ToolMessage

from graph import ScriptedChatModel, demo_script

APPROVE_LINE = "# ... a human approves (Slack, POST /v1/approvals/{id}/approve, or `toolgate approvals approve`) ..."


def readme_snippet(lang: str) -> str:
    """The code block that follows the README marker for lang."""
    readme = (REPO / "README.md").read_text()
    rest = readme[readme.index(f"<!-- README snippet {lang}:") :]
    start = rest.index(f"```{lang}\n") + len(f"```{lang}\n")
    return rest[start : rest.index("```\n", start)]


async def test_the_readme_python_snippet_runs_as_written(server: Server) -> None:
    code = readme_snippet("python")
    assert APPROVE_LINE in code
    code = (
        code.replace('"http://127.0.0.1:8080/mcp"', repr(server.mcp_url))
        .replace('"tgk_..."', repr(server.keys["agent_key"]))
        .replace('"t-1"', repr(str(uuid.uuid4())))
        .replace('"r-1"', repr(str(uuid.uuid4())))
        .replace(APPROVE_LINE, 'for i in out["__interrupt__"]:\n    await approve(i.value["approval_id"])')
    )
    scope: dict[str, Any] = {}
    source = "async def snippet(chat_model, approve):\n" + textwrap.indent(code + "return out\n", "    ")
    # dont_inherit: compile it as a user's file is, without this module's __future__ imports.
    exec(compile(source, "README.md", "exec", dont_inherit=True), scope)
    chat_model = ScriptedChatModel(script=demo_script)
    start = server.refunds(102)

    async def approve(approval_id: str) -> None:
        assert server.refunds(102) == start, "nothing ran before the approval"
        await server.decide(approval_id, "approve")

    out = await scope["snippet"](chat_model, approve)
    assert "__interrupt__" not in out
    [result] = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert result.status == "success" and '"order_id":102' in result.content, result.content
    assert server.refunds(102) == start + 1
    assert set(chat_model.calls_per_turn.values()) == {1}
