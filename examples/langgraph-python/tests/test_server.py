"""End to end on LangGraph Server: `langgraph dev` runs graph.py, toolgate calls
receiver.py on each decision, and the receiver resumes the thread with the SDK.

    toolgate serve (approvals.on_decision → receiver) ◀── tools ── langgraph dev (graph.py)
          │ decision webhook                                          ▲ runs.create(command=resume)
          └──────────────────────────▶ receiver.py ───────────────────┘

Nothing leaves the machine: the tests turn off LangGraph's analytics, version
check and tracing, `langgraph dev` gets no LangSmith key, and its HTTP(S)
proxy is a loopback sink that must see no connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import EXAMPLE, Server, free_port, start_toolgate
from langgraph_sdk import get_client

SECRET = "e2e-webhook-secret-0123456789"
QUIET = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}
NOT_PASSED = ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGGRAPH_CLOUD_LICENSE_KEY", "LANGSMITH_ENDPOINT")


class Sink:
    """A loopback listener standing in for the internet: it counts and drops connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds} s:\n{log.read_text()[-4000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def child_env(extra: dict[str, str], sink: Sink) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_PASSED and not k.lower().endswith("_proxy")}
    proxy = {"HTTP_PROXY": sink.url, "HTTPS_PROXY": sink.url, "ALL_PROXY": sink.url, "NO_PROXY": "127.0.0.1,localhost"}
    return {**env, **QUIET, **proxy, **extra}


@pytest.fixture(scope="module")
def stack(toolgate_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("server")
    sink = Sink()
    receiver_port, langgraph_port = free_port(), free_port()

    # toolgate dev prepares the data dir (keys, demo database, quickstart);
    # toolgate serve then runs that quickstart with approvals.on_decision set.
    data = tmp / "data"
    start_toolgate(toolgate_bin, ["dev", "--data", str(data)], data).stop()
    # Its config is <data>/toolgate.yaml (older builds: <data>/quickstart/toolgate.yaml
    # with TOOLGATE_DEV_* placeholders, set below); paths in it are relative to it.
    dev_config = next(p for p in (data / "toolgate.yaml", data / "quickstart" / "toolgate.yaml") if p.exists())
    config = yaml.safe_load(dev_config.read_text())
    config["approvals"]["on_decision"] = {"url": f"http://127.0.0.1:{receiver_port}/toolgate", "secret": "${TOOLGATE_WEBHOOK_SECRET}"}
    served = dev_config.parent / "served.yaml"
    served.write_text(json.dumps(config))  # JSON is YAML
    keys = json.loads((data / "dev-keys.json").read_text())
    env = {
        "TOOLGATE_DEV_DATA": str(data),
        "TOOLGATE_DEV_AGENT_KEY_SHA256": hashlib.sha256(keys["agent_key"].encode()).hexdigest(),
        "TOOLGATE_DEV_APPROVER_KEY_SHA256": hashlib.sha256(keys["approver_key"].encode()).hexdigest(),
        "TOOLGATE_DEV_MASK_KEY": keys["mask_key"],
        "TOOLGATE_WEBHOOK_SECRET": SECRET,
    }
    toolgate = start_toolgate(toolgate_bin, ["serve", "--config", str(served)], data, env)

    # langgraph dev resolves langgraph.json's paths and writes its
    # .langgraph_api folder against its working directory: run it in tmp on
    # the example's langgraph.json with the paths made absolute.
    lg_config = json.loads((EXAMPLE / "langgraph.json").read_text())
    lg_config["dependencies"] = [str((EXAMPLE / d).resolve()) for d in lg_config["dependencies"]]
    lg_config["graphs"] = {name: str(EXAMPLE / spec) for name, spec in lg_config["graphs"].items()}
    (tmp / "langgraph.json").write_text(json.dumps(lg_config))
    bin_dir = Path(sys.executable).parent
    lg_log = tmp / "langgraph.log"
    with open(lg_log, "wb") as log:
        langgraph = subprocess.Popen(
            [
                str(bin_dir / "langgraph"),
                "dev",
                "--config",
                str(tmp / "langgraph.json"),
                "--no-browser",
                "--no-reload",
                "--host",
                "127.0.0.1",
                "--port",
                str(langgraph_port),
            ],
            cwd=tmp,  # its .langgraph_api folder goes here
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env({"TOOLGATE_URL": toolgate.mcp_url, "TOOLGATE_KEY": keys["agent_key"]}, sink),
        )
    langgraph_url = f"http://127.0.0.1:{langgraph_port}"
    rx_log = tmp / "receiver.log"
    with open(rx_log, "wb") as log:
        receiver = subprocess.Popen(
            [sys.executable, str(EXAMPLE / "receiver.py")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(
                {
                    "TOOLGATE_WEBHOOK_SECRET": SECRET,
                    "LANGGRAPH_URL": langgraph_url,
                    "LANGGRAPH_ASSISTANT": "support-bot",
                    "PORT": str(receiver_port),
                },
                sink,
            ),
        )
    try:
        wait_http(f"{langgraph_url}/ok", langgraph, lg_log)
        wait_http(f"http://127.0.0.1:{receiver_port}/", receiver, rx_log)
        yield {"toolgate": toolgate, "langgraph_url": langgraph_url, "receiver_log": rx_log, "sink": sink}
    finally:
        stop(receiver)
        stop(langgraph)
        toolgate.stop()
        sink.close()


@pytest.fixture
async def client(stack: dict[str, Any]) -> AsyncIterator[Any]:
    yield get_client(url=stack["langgraph_url"])


async def wait_thread(client: Any, thread_id: str, done: Any, seconds: float = 60) -> dict[str, Any]:
    """Poll a thread until done(thread) holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        thread = await client.threads.get(thread_id)
        if done(thread):
            return dict(thread)
        await asyncio.sleep(0.2)
    raise AssertionError(f"thread {thread_id} did not settle: {thread['status']} {thread.get('interrupts')}")


def messages_of(thread: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [m for m in thread["values"]["messages"] if m["type"] == kind]


async def test_an_approval_decided_in_toolgate_resumes_the_server_thread_and_runs_once(stack: dict[str, Any], client: Any) -> None:
    tg: Server = stack["toolgate"]
    start, everything = tg.refunds(104), tg.all_refunds()
    thread = await client.threads.create()
    first = await client.runs.create(
        thread["thread_id"], "support-bot", input={"messages": [{"role": "human", "content": "refund 250 on order 104"}]}
    )
    paused = await wait_thread(client, thread["thread_id"], lambda t: t["status"] == "interrupted")
    [[pause]] = paused["interrupts"].values()
    assert pause["value"]["type"] == "toolgate_approval"
    assert tg.refunds(104) == start, "nothing ran before the approval"

    # The server's run id is what the helper sent: the approval is bound to it.
    [held] = [e for e in await tg.trace(first["run_id"]) if e.get("kind") == "tool_call" and e.get("status") == "pending"]
    assert held["thread"] == thread["thread_id"]

    await tg.decide(pause["value"]["approval_id"], "approve")
    done = await wait_thread(client, thread["thread_id"], lambda t: t["status"] == "idle" and len(messages_of(t, "tool")) == 1)
    [result] = messages_of(done, "tool")
    assert result["status"] == "success" and '"order_id":104' in result["content"], result
    assert tg.refunds(104) == start + 1 and tg.all_refunds() == everything + 1, "the refund ran exactly once"

    runs = await client.runs.list(thread["thread_id"])
    assert len(runs) == 2, "the receiver resumed the thread with one new run"
    assert {r["run_id"] for r in runs} - {first["run_id"]}, "LangGraph Server gives the resume a new run id"
    executed = await tg.executed(first["run_id"], "billing_refund")
    assert len(executed) == 1, "the resumed call ran on the run of its approval (configurable.toolgate_run_id)"
    ai = [m for m in messages_of(done, "ai") if m.get("tool_calls")]
    assert len(ai) == 1, "the model was asked for tool calls once: the resume re-ran only the tools node"
    assert "resumed by run" in stack["receiver_log"].read_text()


async def test_a_denial_decided_in_toolgate_reaches_the_model_on_the_server(stack: dict[str, Any], client: Any) -> None:
    tg: Server = stack["toolgate"]
    start = tg.refunds(103)
    thread = await client.threads.create()
    await client.runs.create(
        thread["thread_id"], "support-bot", input={"messages": [{"role": "human", "content": "refund 300 on order 103"}]}
    )
    paused = await wait_thread(client, thread["thread_id"], lambda t: t["status"] == "interrupted")
    [[pause]] = paused["interrupts"].values()
    await tg.decide(pause["value"]["approval_id"], "deny")
    done = await wait_thread(client, thread["thread_id"], lambda t: t["status"] == "idle" and len(messages_of(t, "tool")) == 1)
    [result] = messages_of(done, "tool")
    assert result["status"] == "error" and "approval_denied" in result["content"], result
    assert "approval_denied" in done["values"]["messages"][-1]["content"]
    assert tg.refunds(103) == start


async def test_parallel_approvals_decided_together_each_resume_and_run_once(stack: dict[str, Any], client: Any) -> None:
    """Two webhooks for one thread race: the second finds the thread busy (503) and toolgate retries."""
    tg: Server = stack["toolgate"]
    r104, r103, everything = tg.refunds(104), tg.refunds(103), tg.all_refunds()
    thread = await client.threads.create()
    request = "refund 250 on order 104 and refund 300 on order 103"
    first = await client.runs.create(thread["thread_id"], "support-bot", input={"messages": [{"role": "human", "content": request}]})
    paused = await wait_thread(client, thread["thread_id"], lambda t: t["status"] == "interrupted")
    pauses = [p for ps in paused["interrupts"].values() for p in ps]
    assert len(pauses) == 2 and len({p["value"]["approval_id"] for p in pauses}) == 2
    for pause in pauses:
        await tg.decide(pause["value"]["approval_id"], "approve")
    done = await wait_thread(client, thread["thread_id"], lambda t: t["status"] == "idle" and len(messages_of(t, "tool")) == 2)
    assert all(m["status"] == "success" for m in messages_of(done, "tool"))
    assert (tg.refunds(104), tg.refunds(103), tg.all_refunds()) == (r104 + 1, r103 + 1, everything + 2)
    assert len(await tg.executed(first["run_id"], "billing_refund")) == 2
    assert len([m for m in messages_of(done, "ai") if m.get("tool_calls")]) == 1


def test_nothing_left_the_machine(stack: dict[str, Any]) -> None:
    """Runs after the cases above: LangGraph Server and the receiver reached out to no one."""
    assert stack["sink"].connections == 0
