/**
 * Linking accuracy on the multi-host testbed (testbed/): the default workload, then for every
 * client request the edges the linker made against the known call graph. Found / expected,
 * false edges (an edge the call graph does not have, or one into another request), and what
 * nginx's event loop left unlinked. Prints JSON with --json.
 *
 *   node dist/bench-testbed.js [--scale 1] [--json]
 */
import { parseArgs } from "node:util";
import { edgesOf, fromOtlp, groupBy, requestOf } from "../testbed/analyze.ts";
import { runWorkload, startTestbed, waitLinked, type Testbed } from "../testbed/testbed.ts";
import { expectedEdges, HOST_NAMES } from "../testbed/topology.ts";
import { defaultPlan } from "../testbed/workload.ts";
import { startReceiver } from "../test/e2e/ingest/otlp-receiver.ts";
import { machine } from "./report.ts";

const { values: args } = parseArgs({ options: { scale: { type: "string", default: "1" }, json: { type: "boolean", default: false } } });

const receiver = await startReceiver();
let tb: Testbed | undefined;
try {
  tb = await startTestbed({
    ingest: { shards: 4, samplingRate: 1, useAppTraceId: true, window: "5s", settle: "3s", otlpEndpoint: receiver.url, otlpProtocol: "http/protobuf" },
  });
  const requests = await runWorkload(tb, defaultPlan(Number(args.scale)));
  await tb.waitShipped();
  const raw = HOST_NAMES.flatMap((h) => tb!.agentSpans(h));
  await waitLinked(tb.ingestUrl, raw.length, 120_000);
  const spans = receiver.spans.map(fromOtlp);
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const byRequest = groupBy(spans, (s) => requestOf(s.path)?.id ?? "?");
  const sdk = tb.otelSpans();
  let expected = 0;
  let found = 0;
  let falseEdges = 0;
  let oneTrace = 0;
  const marker = (e: string) => /^(root|app|sdk-client|sdk-server|missing:[0-9a-f]+)>/.test(e);
  for (const r of requests) {
    const mine = byRequest.get(r.id) ?? [];
    const external = new Map<string, string>();
    if (r.parent_id) external.set(r.parent_id, "app");
    const server = sdk.find((s) => s.kind === 1 && requestOf(String(s.attributes["url.path"] ?? s.attributes["http.target"] ?? ""))?.id === r.id);
    const client = server && sdk.find((c) => c.kind === 2 && c.parentSpanId === server.spanId);
    if (server && client) external.set(client.spanId, "sdk-client").set(server.spanId, "sdk-server");
    const want = expectedEdges(r.flow, { client: r.client, traceparent: r.traceparent, nginxLinked: true }).filter((e) => !marker(e));
    const got = edgesOf(mine, byId, external).filter((e) => !marker(e));
    expected += want.length;
    found += got.filter((e) => want.includes(e)).length;
    falseEdges += got.filter((e) => !want.includes(e)).length;
    if (new Set(mine.map((s) => s.traceId)).size === 1) oneTrace++;
  }
  const status = tb.agentStatus("h1");
  const result = {
    machine: machine(),
    requests: requests.length,
    spans: spans.length,
    edgesExpected: expected,
    edgesFound: found,
    accuracy: +(found / expected).toFixed(4),
    falseEdges,
    requestsWithOneTrace: oneTrace,
    nginxUnlinkedAmbiguous: status.unlinked_ambiguous,
  };
  if (args.json) console.log(JSON.stringify(result, null, 2));
  else console.log(`testbed: ${found}/${expected} call-graph edges found (${(result.accuracy * 100).toFixed(1)}%), ${falseEdges} false edges, ${oneTrace}/${requests.length} requests in one trace, nginx left ${status.unlinked_ambiguous} calls unlinked`);
} finally {
  await tb?.stop();
  await receiver.close();
}
