/**
 * When the export falls behind (here: the collector down), a shard holds the decided spans until
 * the collector takes them, and once more than ESPAN_MAX_EXPORT_BACKLOG wait it refuses new
 * batches with 429 and Retry-After (which the agent honours) instead of holding ever more: what
 * it accepted is never dropped, and what it holds stays bounded. Once the collector is back,
 * every accepted span is delivered once and batches are accepted again.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { generateTraffic } from "../../gen/traffic.ts";
import { postSpans, startIngest, waitFor, type Ingest } from "./ingest-server.ts";
import { metrics, settled } from "./metrics.ts";
import { startReceiver, type Receiver } from "./otlp-receiver.ts";

const BOUND = 200;
const traffic = generateTraffic({ seed: 41, traces: 150, clientRootFraction: 0.5, dbCallFraction: 0.3 });

let ingest: Ingest;
let receiver: Receiver;
beforeAll(async () => {
  receiver = await startReceiver();
  ingest = await startIngest({
    shards: 1, samplingRate: 1, useAppTraceId: false, window: "1s", settle: "100ms", otlpEndpoint: receiver.url,
    extraEnv: { ESPAN_MAX_EXPORT_BACKLOG: String(BOUND) },
  });
});
afterAll(async () => {
  await ingest?.stop();
  await receiver?.close();
});

it("answers 429 with Retry-After past the export backlog bound, drops nothing, and delivers everything once the collector is back", async () => {
  receiver.failNext(1e9, 503, "1");
  const batches: (typeof traffic.spans)[] = [];
  for (let i = 0; i < traffic.spans.length; i += 100) batches.push(traffic.spans.slice(i, i + 100));
  expect(batches.length).toBeGreaterThan(6);

  // Accepted while the backlog is under the bound; then, once the decided spans pile up, refused.
  const accepted: string[] = [];
  let next = 0;
  let refused: Response | undefined;
  while (next < batches.length && !refused) {
    const res = await postSpans(ingest.url, batches[next]);
    if (res.status === 202) {
      accepted.push(...batches[next].map((s) => s.span_id));
      next++;
      // Let the window pass: the batch's spans are decided and wait for the collector.
      await waitFor("the batch decided", async () => ((await metrics(ingest.url)).espan_pending_spans === 0 ? true : undefined));
    } else refused = res;
  }
  expect(refused?.status).toBe(429);
  expect(Number(refused!.headers.get("retry-after"))).toBeGreaterThan(0);
  expect(((await refused!.json()) as { error: string }).error).toContain("ESPAN_MAX_EXPORT_BACKLOG");
  const during = await metrics(ingest.url);
  expect(during.espan_export_backlog_spans).toBeGreaterThan(BOUND);
  // Bounded: the backlog is at most the bound and one batch over it.
  expect(during.espan_export_backlog_spans).toBeLessThanOrEqual(BOUND + 100);
  expect(receiver.spans.length).toBe(0);
  // Still refused while the collector is down.
  expect((await postSpans(ingest.url, batches[next])).status).toBe(429);

  // The collector is back: the backlog drains, every accepted span arrives once, batches are taken again.
  receiver.failNext(0);
  await settled(ingest.url, 60_000);
  expect(receiver.spans.map((s) => s.spanId).sort()).toEqual([...accepted].sort());
  const rest = batches.slice(next).flat();
  expect((await postSpans(ingest.url, rest)).status).toBe(202);
  const m = await settled(ingest.url, 60_000);
  const got = receiver.spans.map((s) => s.spanId);
  expect(new Set(got).size).toBe(got.length);
  expect(got.sort()).toEqual(traffic.spans.map((s) => s.span_id).sort());
  expect(m.espan_export_failures_total).toBeGreaterThan(0);
});
