/**
 * Every scenario of ../shared/scenarios posted over HTTP to the ingest on `workerd serve`, with
 * 1 and 16 shards, checked through the OTLP export (protobuf decoded with the official
 * definitions for 1 shard, JSON for 16) and through /api.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LinkResult } from "../../../src/linker/config.ts";
import { checkScenario, loadScenarios, type Scenario } from "../../scenarios.case.ts";
import { postSpans, startIngest, type Ingest } from "./ingest-server.ts";
import { settled } from "./metrics.ts";
import { startReceiver, type Receiver } from "./otlp-receiver.ts";

const groups = new Map<string, Scenario[]>();
for (const s of loadScenarios()) {
  const key = `${s.config.sampling_rate}/${s.config.use_app_trace_id}`;
  groups.set(key, [...(groups.get(key) ?? []), s]);
}

for (const shards of [1, 16]) {
  for (const [key, scenarios] of groups) {
    const [rate, useApp] = key.split("/");
    describe(`scenarios over HTTP, ${shards} shard(s), sampling ${rate}, use_app_trace_id ${useApp}`, () => {
      let ingest: Ingest;
      let receiver: Receiver;
      beforeAll(async () => {
        receiver = await startReceiver();
        ingest = await startIngest({
          // settle covers the propagation of app-context summaries between 16 shards over RPC, and
          // with 16 shards the window covers a link message delayed by a loaded machine (the full
          // suite runs test files in parallel on 2 cores: a 1 s window once lost a parent there).
          shards, samplingRate: Number(rate), useAppTraceId: useApp === "true", window: shards === 1 ? "1s" : "3s", settle: "1s",
          otlpEndpoint: receiver.url, otlpProtocol: shards === 1 ? "http/protobuf" : "http/json",
        });
      });
      afterAll(async () => {
        await ingest?.stop();
        await receiver?.close();
      });

      for (const s of scenarios) {
        it(`${s.name}: ${s.description}`, async () => {
          const before = receiver.spans.length;
          const res = await postSpans(ingest.url, s.spans);
          expect(res.status).toBe(202);
          expect(await res.json()).toEqual({ accepted: s.spans.length });
          await settled(ingest.url);

          const exported = receiver.spans.slice(before);
          const results: LinkResult[] = exported.map((r) => ({ span_id: r.spanId, trace_id: r.traceId, parent_id: r.parentSpanId, sampled: true }));
          checkScenario(s, results);

          // The built-in store agrees with the export, span by span.
          for (const r of results) {
            const got = await (await fetch(`${ingest.url}/api/spans/${r.span_id}`)).json();
            expect({ trace_id: got.trace_id, parent_id: got.parent_id }).toEqual({ trace_id: r.trace_id, parent_id: r.parent_id });
          }
          for (const id of s.dropped ?? []) expect((await fetch(`${ingest.url}/api/spans/${id}`)).status).toBe(404);
          if (results.length > 0) {
            const trace = await (await fetch(`${ingest.url}/api/traces/${results[0].trace_id}`)).json();
            expect(trace.spans.map((x: { span_id: string }) => x.span_id).sort()).toEqual(
              results.filter((r) => r.trace_id === results[0].trace_id).map((r) => r.span_id).sort());
          }
        });
      }
    });
  }
}
