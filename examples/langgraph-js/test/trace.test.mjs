// Unit: the helper forwards the active OpenTelemetry trace context in an MCP
// request's params._meta, through the configured propagator, and nothing
// without a span. No toolgate needed.

import assert from "node:assert/strict";
import { test } from "node:test";

import { defaultTextMapGetter, propagation, ROOT_CONTEXT } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";

import { traceMeta } from "../toolgate.mjs";

test("traceMeta writes the span's traceparent and tracestate for _meta", () => {
  const w3c = new W3CTraceContextPropagator();
  propagation.setGlobalPropagator(w3c);
  try {
    const incoming = { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "rojo=00f067aa0ba902b7" };
    const ctx = w3c.extract(ROOT_CONTEXT, incoming, defaultTextMapGetter);
    assert.deepEqual(traceMeta(ctx), incoming);
    assert.equal(traceMeta(ROOT_CONTEXT), undefined, "no span, no _meta");
    assert.equal(traceMeta(), undefined, "no active span outside a traced context");
  } finally {
    propagation.disable();
  }
});
