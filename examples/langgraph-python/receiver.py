"""receiver.py: resume a LangGraph Server thread when toolgate decides an approval.

Point toolgate's approvals.on_decision at it:

    approvals:
      on_decision: {url: "http://127.0.0.1:9000/toolgate", secret: "${TOOLGATE_WEBHOOK_SECRET}"}

For each decision it checks X-Toolgate-Signature ("t=<unix>,v1=<hex
HMAC-SHA256(secret, '<t>.<raw body>')>", at most 5 minutes off), finds the
interrupts of the event's thread that wait on the event's approval, and
resumes exactly those through the LangGraph SDK:

    client.runs.create(thread, assistant,
        command={"resume": {<interrupt id>: {"approval_id": ..., "outcome": ...}}},
        config={"configurable": {"toolgate_run_id": <event run>}})

toolgate_run_id keeps the resumed tool call on the run its approval is bound
to: LangGraph Server gives every run, a resume too, a new run_id. The
resumed tool call runs exactly once, or reads approval_denied.

Delivery is at least once and decisions may race: an event whose approval no
interrupt waits on any more is answered 204 and changes nothing; a thread
busy with another run is answered 503, so toolgate retries later.

    pip install langgraph-sdk
    TOOLGATE_WEBHOOK_SECRET=... LANGGRAPH_URL=http://127.0.0.1:2024 \\
    LANGGRAPH_ASSISTANT=support-bot python receiver.py
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from langgraph_sdk.errors import LangGraphError

TOLERANCE = 300  # seconds a signature's timestamp may be off
MAX_BODY = 64 << 10


def verify(secret: bytes, header: str, body: bytes, now: float | None = None) -> bool:
    """Check an X-Toolgate-Signature header against the raw body."""
    parts = dict(p.strip().split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > TOLERANCE:
        return False
    want = hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts.get("v1", ""))


def waiting_on(thread: dict[str, Any], approval_id: str) -> list[str]:
    """The ids of the thread's interrupts that wait on an approval."""
    return [
        pause["id"]
        for pauses in (thread.get("interrupts") or {}).values()
        for pause in pauses
        if isinstance(pause.get("value"), dict) and pause["value"].get("approval_id") == approval_id
    ]


def resume(client: SyncLangGraphClient, assistant: str, event: dict[str, Any]) -> str | None:
    """Resume the interrupts waiting on the event's approval; the new run id, or None."""
    ids = waiting_on(client.threads.get(event["thread"]), event["approval_id"])
    if not ids:
        return None
    value = {"approval_id": event["approval_id"], "outcome": event["outcome"]}
    run = client.runs.create(
        event["thread"],
        assistant,
        command={"resume": {pause_id: value for pause_id in ids}},
        config={"configurable": {"toolgate_run_id": event["run"]}},
        multitask_strategy="reject",
    )
    return str(run["run_id"])


def handler(secret: bytes, client: SyncLangGraphClient, assistant: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self.answer(413)
            body = self.rfile.read(length)
            if not verify(secret, self.headers.get("X-Toolgate-Signature", ""), body):
                return self.answer(401)
            event = json.loads(body)
            if not event.get("thread"):
                return self.answer(204)  # the call named no thread: nothing to resume
            try:
                run = resume(client, assistant, event)
            except (httpx.HTTPError, LangGraphError) as err:
                # 409 (the thread is busy with another run), a server error or no
                # answer: a 5xx makes toolgate retry with backoff.
                self.log_message("resume of thread %s failed: %s %s", event["thread"], type(err).__name__, getattr(err, "status_code", ""))
                return self.answer(503)
            self.log_message(
                "approval %s %s: thread %s %s",
                event["approval_id"],
                event["outcome"],
                event["thread"],
                f"resumed by run {run}" if run else "has nothing waiting on it",
            )
            return self.answer(204)

        def answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def main() -> None:
    secret = os.environ.get("TOOLGATE_WEBHOOK_SECRET", "").encode()
    if len(secret) < 16:
        raise SystemExit("set TOOLGATE_WEBHOOK_SECRET to approvals.on_decision.secret (16 characters or more)")
    client = get_sync_client(url=os.environ.get("LANGGRAPH_URL", "http://127.0.0.1:2024"))
    assistant = os.environ.get("LANGGRAPH_ASSISTANT", "support-bot")
    port = int(os.environ.get("PORT", "9000"))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler(secret, client, assistant))
    print(f"receiver listening on http://127.0.0.1:{port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
