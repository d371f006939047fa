"""receiver.py: resume an interrupted LangGraph Server thread when toolgate decides.

Point toolgate's approvals.on_decision at this receiver:

    approvals:
      on_decision: {url: "http://127.0.0.1:9000/toolgate", secret: "${TOOLGATE_WEBHOOK_SECRET}"}

It verifies X-Toolgate-Signature ("t=<unix>,v1=<hex HMAC-SHA256 of '<t>.<body>'>"),
then resumes the thread named in the event through the LangGraph Server API:

    POST {LANGGRAPH_URL}/threads/{thread}/runs
    {"assistant_id": ..., "command": {"resume": {...}},
     "config": {"configurable": {"toolgate_run_id": run}}}

toolgate_run_id keeps the resumed run on the toolgate run the approval is bound
to (LangGraph Server gives every run, resumes included, a new run_id). The
resumed tool call then runs exactly once, or reads approval_denied.

Standard library only:
    TOOLGATE_WEBHOOK_SECRET=... LANGGRAPH_URL=http://127.0.0.1:2024 \
    LANGGRAPH_ASSISTANT=support-bot python receiver.py
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("TOOLGATE_WEBHOOK_SECRET", "").encode()
LANGGRAPH_URL = os.environ.get("LANGGRAPH_URL", "http://127.0.0.1:2024").rstrip("/")
ASSISTANT = os.environ.get("LANGGRAPH_ASSISTANT", "support-bot")
TOLERANCE = 300  # seconds


def verify(header: str, body: bytes, now: float | None = None) -> bool:
    """Check an X-Toolgate-Signature header against the raw body."""
    parts = dict(p.strip().split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - ts) > TOLERANCE:
        return False
    want = hmac.new(SECRET, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts.get("v1", ""))


def resume(event: dict) -> int:
    body = {
        "assistant_id": ASSISTANT,
        "command": {"resume": {"approval_id": event["approval_id"], "outcome": event["outcome"]}},
        "config": {"configurable": {"toolgate_run_id": event["run"]}},
    }
    req = urllib.request.Request(
        f"{LANGGRAPH_URL}/threads/{event['thread']}/runs",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as res:
        return res.status


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not verify(self.headers.get("X-Toolgate-Signature", ""), body):
            self.send_response(401)
            self.end_headers()
            return
        event = json.loads(body)
        if not event.get("thread"):
            # Nothing to resume: the call was made without a thread id.
            self.send_response(204)
            self.end_headers()
            return
        try:
            status = resume(event)
        except OSError as err:
            # 502 makes toolgate retry with backoff.
            self.log_message("resume of thread %s failed: %s", event["thread"], err)
            self.send_response(502)
            self.end_headers()
            return
        self.log_message("approval %s %s: thread %s resumed (HTTP %d)", event["approval_id"], event["outcome"], event["thread"], status)
        self.send_response(204)
        self.end_headers()


if __name__ == "__main__":
    if len(SECRET) < 16:
        raise SystemExit("set TOOLGATE_WEBHOOK_SECRET to approvals.on_decision.secret")
    ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "9000"))), Handler).serve_forever()
