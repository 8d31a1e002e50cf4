/** The OTLP export checked field by field (protobuf, decoded with the official definitions). */
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadScenarios } from "../../scenarios.case.ts";
import { postSpans, startIngest, type Ingest } from "./ingest-server.ts";
import { settled } from "./metrics.ts";
import { startReceiver, type Receiver } from "./otlp-receiver.ts";

let ingest: Ingest;
let receiver: Receiver;
beforeAll(async () => {
  receiver = await startReceiver();
  ingest = await startIngest({ shards: 2, samplingRate: 1, useAppTraceId: false, window: "1s", settle: "100ms", otlpEndpoint: receiver.url });
});
afterAll(async () => {
  await ingest?.stop();
  await receiver?.close();
});

it("maps eSpan fields to OTLP spans and resources by the OTel semantic conventions", async () => {
  const chain = loadScenarios().find((s) => s.name === "chain-3-hop")!;
  const spans = chain.spans.map((s) => (s.span_id === "c100000000000001" ? { ...s, http_status_code: 503, bytes_read: 120, custom_field: "kept" } : s));
  expect((await postSpans(ingest.url, spans)).status).toBe(202);
  await settled(ingest.url);
  expect(receiver.requests.every((r) => r.contentType === "application/x-protobuf")).toBe(true);
  const byId = new Map(receiver.spans.map((s) => [s.spanId, s]));

  const root = byId.get("e100000000000001")!;
  expect(root.kind).toBe(2); // SPAN_KIND_SERVER
  expect(root.parentSpanId).toBe("");
  expect(root.name).toBe("GET /");
  expect(root.startTimeUnixNano).toBe("1764000000000000000");
  expect(root.endTimeUnixNano).toBe("1764000000050000000");
  expect(root.resource).toMatchObject({ "service.name": "front", "host.name": "node-1", "process.pid": 100, "process.executable.name": "front" });
  expect(root.attributes).toMatchObject({
    "http.request.method": "GET", "http.route": "/", "http.response.status_code": 200, "network.transport": "tcp",
    "server.address": "10.0.0.1", "server.port": 8080, "client.address": "10.0.0.2", "client.port": 40000,
    "espan.req_seq": 1, "espan.resp_seq": 2, "espan.thread_trace_id": "0000000000000100",
  });
  expect(root.status).toBe(0); // UNSET

  const exit = byId.get("c100000000000001")!;
  expect(exit.kind).toBe(3); // SPAN_KIND_CLIENT
  expect(exit.parentSpanId).toBe("e100000000000001");
  expect(exit.traceId).toBe(root.traceId);
  expect(exit.attributes).toMatchObject({ "server.address": "10.0.0.2", "server.port": 40000, "espan.bytes_read": 120, custom_field: "kept" });
  expect(exit.status).toBe(2); // ERROR: a client span answered 5xx
  expect(byId.get("e300000000000003")!.resource["service.name"]).toBe("back");
});

it("retries while the collector answers 503, then delivers every span once", async () => {
  const before = receiver.spans.length;
  receiver.failNext(3, 503, "0");
  const spans = loadScenarios().find((s) => s.name === "keepalive-reuse")!.spans;
  expect((await postSpans(ingest.url, spans)).status).toBe(202);
  const m = await settled(ingest.url, 60_000);
  const got = receiver.spans.slice(before).map((s) => s.spanId).sort();
  expect(got).toEqual(spans.map((s) => s.span_id).sort());
  expect(m.espan_export_failures_total).toBeGreaterThanOrEqual(3);
});
