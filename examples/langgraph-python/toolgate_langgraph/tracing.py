"""The trace context a call carries to toolgate (optional OpenTelemetry).

When ``opentelemetry-api`` is installed and a span is current, its W3C trace
context (``traceparent``, ``tracestate``, written by the configured
propagator) goes with each tool call as HTTP headers, so toolgate's spans
continue the graph's trace down to the SQL it runs. Without the package, or
without a current span, nothing is added. Baggage is not forwarded.
"""

from __future__ import annotations

try:
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
except ImportError:  # opentelemetry-api is optional
    _propagate = None  # type: ignore[assignment]
    _trace = None  # type: ignore[assignment]

TRACE_HEADERS = ("traceparent", "tracestate")


def trace_headers() -> dict[str, str]:
    """The trace context headers of the current span, {} when there is none."""
    if _propagate is None or _trace is None or not _trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in TRACE_HEADERS}
