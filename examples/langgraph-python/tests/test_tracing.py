"""The current OpenTelemetry span's trace context goes with each call (no server needed)."""

from __future__ import annotations

import pytest

from toolgate_langgraph import Identity, Toolgate
from toolgate_langgraph.tracing import trace_headers

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")


def test_trace_context_of_the_current_span_becomes_headers() -> None:
    tracer = sdk_trace.TracerProvider().get_tracer("test")
    tg = Toolgate("http://127.0.0.1:9/mcp", api_key="tgk_x", graph="support-bot")
    ident = Identity(graph="support-bot", node="billing", run="r-1")
    assert "traceparent" not in tg.headers_for(ident), "no span, no traceparent"
    with tracer.start_as_current_span("billing") as span:
        sc = span.get_span_context()
        want = f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"
        assert trace_headers() == {"traceparent": want}
        headers = tg.headers_for(ident)
    assert headers["traceparent"] == want
    assert headers["X-Toolgate-Node"] == "billing"
    assert trace_headers() == {}
