"""Fixtures: a real `toolgate dev` over loopback and the helper pointed at it.

The binary is TOOLGATE_BIN when set, else built from this repository with
`go build` into a temporary folder. Every test uses its own thread and run.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent
REPO = EXAMPLE.parent.parent
sys.path.insert(0, str(EXAMPLE))  # graph.py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def toolgate_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    if bin_ := os.environ.get("TOOLGATE_BIN"):
        return bin_
    out = tmp_path_factory.mktemp("bin") / "toolgate"
    subprocess.run(["go", "build", "-o", str(out), "./cmd/toolgate"], cwd=REPO, check=True)
    return str(out)


@dataclass
class Server:
    """A running toolgate and what the tests read from it."""

    base: str
    data: Path
    keys: dict[str, str]
    process: subprocess.Popen[bytes]
    log_file: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mcp_url(self) -> str:
        return f"{self.base}/mcp"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def refunds(self, order_id: int) -> int:
        """Rows the refund tool wrote for an order, read from the demo database."""
        with sqlite3.connect(f"file:{self.data / 'demo.db'}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM refunds WHERE order_id = ?", (order_id,)).fetchone()[0])

    def all_refunds(self) -> int:
        with sqlite3.connect(f"file:{self.data / 'demo.db'}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM refunds").fetchone()[0])

    async def decide(self, approval_id: str, verb: str) -> None:
        async with httpx.AsyncClient() as http:
            res = await http.post(
                f"{self.base}/v1/approvals/{approval_id}/{verb}",
                headers={"Authorization": f"Bearer {self.keys['approver_key']}"},
                json={"reason": f"e2e {verb}"},
            )
        assert res.status_code == 200, f"{verb} {approval_id}: HTTP {res.status_code} {res.text}"

    async def trace(self, run: str) -> list[dict[str, Any]]:
        """The audit events of a run (GET /v1/runs/{run}/trace, as an auditor)."""
        async with httpx.AsyncClient() as http:
            res = await http.get(f"{self.base}/v1/runs/{run}/trace", headers={"Authorization": f"Bearer {self.keys['approver_key']}"})
        assert res.status_code == 200, res.text
        return list(res.json()["events"])

    async def executed(self, run: str, tool: str) -> list[dict[str, Any]]:
        """The calls of a tool in a run that reached the target (status ok)."""
        return [e for e in await self.trace(run) if e.get("kind") == "tool_call" and e.get("tool") == tool and e.get("status") == "ok"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_toolgate(bin_: str, args: list[str], data: Path, env: dict[str, str] | None = None) -> Server:
    """Start toolgate with args, wait for /healthz, read the dev keys of data."""
    port = free_port()
    log_file = data.parent / f"{data.name}-{port}.log"
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            [bin_, *args, "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,  # the dev banner prints the keys on purpose
            stderr=log,
            env={**os.environ, **(env or {})},
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"toolgate exited with {process.returncode}:\n{log_file.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("toolgate did not answer /healthz within 60 s")
        time.sleep(0.1)
    keys = json.loads((data / "dev-keys.json").read_text())
    return Server(base=base, data=data, keys=keys, process=process, log_file=log_file)


@pytest.fixture(scope="session")
def server(toolgate_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("toolgate") / "data"
    srv = start_toolgate(toolgate_bin, ["dev", "--data", str(data)], data)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
async def tools(server: Server) -> dict[str, list[Any]]:
    from graph import connect

    _, node_tools = await connect(server.mcp_url, server.keys["agent_key"], timeout=10)
    return node_tools


@pytest.fixture(scope="session")
async def tg(server: Server) -> Any:
    from toolgate_langgraph import Toolgate

    return Toolgate(server.mcp_url, api_key=server.keys["agent_key"], graph="support-bot", timeout=10)


def new_config(**configurable: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": str(uuid.uuid4()), "run_id": str(uuid.uuid4()), **configurable}}


class Proxy:
    """A loopback TCP proxy in front of toolgate that can stop answering.

    mode "forward" relays bytes, "hang" accepts and never answers; stop()
    closes the listener (connections are then refused). `connections` counts
    what reached it.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = "forward"
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/mcp"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.mode == "hang":
                await asyncio.sleep(3600)
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await self._server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@pytest.fixture
async def proxy(server: Server) -> AsyncIterator[Proxy]:
    p = Proxy(int(server.base.rsplit(":", 1)[1]))
    yield p
    await p.stop()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """A skipped test is a failure here: every case must run against the real libraries."""
    skipped = terminalreporter.stats.get("skipped", [])
    if skipped:
        terminalreporter.write_line(f"FAILED: {len(skipped)} test(s) skipped; none may be", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and reporter.stats.get("skipped") and exitstatus == 0:
        session.exitstatus = 1
