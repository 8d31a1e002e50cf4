// OpenTelemetry SDK for the instrumented Node service (`node --require ./otel.cjs nodesvc.cjs`):
// @opentelemetry/sdk-node with the HTTP instrumentation, W3C trace context propagation (the
// SDK's default propagator), every span sampled (parent-based always-on), and each finished span
// appended to a local file as one JSON line, so the tests can compare the SDK's own trace and
// span ids with espan's. The service name comes from OTEL_SERVICE_NAME, as for any OTel app.
//
// env: TB_OTEL_FILE  where the spans go (NDJSON)
"use strict";
const { appendFileSync } = require("fs");
const { NodeSDK, tracing } = require("@opentelemetry/sdk-node");
const { HttpInstrumentation } = require("@opentelemetry/instrumentation-http");

const file = process.env.TB_OTEL_FILE;
if (!file) throw new Error("otel.cjs: TB_OTEL_FILE is not set");

const hex = (s) => s || "";
// A SpanExporter (the SDK's interface): export(spans, done), shutdown().
const fileExporter = {
  export(spans, done) {
    const lines = spans.map((s) => {
      const ctx = s.spanContext();
      return JSON.stringify({
        traceId: ctx.traceId,
        spanId: ctx.spanId,
        parentSpanId: hex(s.parentSpanContext?.spanId ?? s.parentSpanId),
        name: s.name,
        kind: s.kind, // SpanKind: 1 SERVER, 2 CLIENT
        sampled: (ctx.traceFlags & 1) === 1,
        service: s.resource.attributes["service.name"],
        attributes: s.attributes,
      });
    });
    try {
      appendFileSync(file, lines.join("\n") + "\n");
      done({ code: 0 }); // ExportResultCode.SUCCESS
    } catch (error) {
      done({ code: 1, error });
    }
  },
  shutdown: () => Promise.resolve(),
  forceFlush: () => Promise.resolve(),
};

const sdk = new NodeSDK({
  spanProcessors: [new tracing.SimpleSpanProcessor(fileExporter)],
  instrumentations: [new HttpInstrumentation()],
});
sdk.start();
