/**
 * The shards' state survives the loss of every Durable Object instance (memory gone, storage
 * kept: what a restart or an eviction does): replaying the log links what was accepted, and
 * nothing is exported twice.
 */
import { abortAllDurableObjects } from "cloudflare:test";
import { expect, it } from "vitest";
import type { Scenario } from "../scenarios.case.ts";
// Inside workerd there is no file system: the scenario comes in as a module.
import chainScenario from "../../../shared/scenarios/chain-3-hop.json";
import { get, post, settle } from "./helpers.ts";

it("a trace half accepted before the restart and half after links whole, each span stored once", async () => {
  const chain = (chainScenario as unknown as Scenario).spans.map((s) => ({ ...s, req_seq: s.req_seq + 7000, resp_seq: s.resp_seq + 7000 }));
  expect((await post(JSON.stringify({ spans: chain.slice(0, 3) }))).status).toBe(202);
  await abortAllDurableObjects(); // every shard loses its memory
  expect((await post(JSON.stringify({ spans: chain.slice(3) }))).status).toBe(202);
  await settle();
  const root = await (await get("/api/spans/e100000000000001")).json();
  const trace = await (await get(`/api/traces/${root.trace_id}`)).json();
  expect(trace.spans.map((s: { span_id: string }) => s.span_id).sort()).toEqual(chain.map((s) => s.span_id).sort());
  const parents = Object.fromEntries(trace.spans.map((s: { span_id: string; parent_id: string }) => [s.span_id, s.parent_id]));
  expect(parents).toEqual({
    e100000000000001: "", c100000000000001: "e100000000000001", e200000000000002: "c100000000000001",
    c200000000000002: "e200000000000002", e300000000000003: "c200000000000002",
  });

  // Another restart after the export: the replay decides the same, and exports nothing again.
  const before = await (await get("/metrics")).text();
  await abortAllDurableObjects();
  await settle(200);
  const after = await (await get("/metrics")).text();
  const exported = (t: string) => Number(/^espan_spans_exported_total (\d+)$/m.exec(t)![1]);
  expect(exported(before)).toBeGreaterThanOrEqual(5);
  expect(exported(after)).toBe(0); // the replayed shards had nothing left to export
  // Every span exported: no shard holds a body any more, before or after the replay.
  const bodyBytes = (t: string) => [...t.matchAll(/^espan_held_body_bytes\{shard="\d+"\} (\d+)$/gm)].map((m) => Number(m[1]));
  expect(bodyBytes(before).length).toBeGreaterThan(0);
  expect([...bodyBytes(before), ...bodyBytes(after)].every((n) => n === 0)).toBe(true);
  expect((await (await get(`/api/traces/${root.trace_id}`)).json()).spans).toHaveLength(5);
});

it("/metrics speaks Prometheus text with the counters and per-shard gauges", async () => {
  const text = await (await get("/metrics")).text();
  for (const name of ["espan_spans_received_total", "espan_spans_rejected_total", "espan_spans_linked_total", "espan_roots_total",
    "espan_late_total", "espan_spans_sampled_out_total", "espan_spans_exported_total", "espan_export_failures_total",
    "espan_cross_shard_messages_total"]) {
    expect(text).toMatch(new RegExp(`^# TYPE ${name} counter$`, "m"));
    expect(text).toMatch(new RegExp(`^${name} \\d+$`, "m"));
  }
  expect(text).toMatch(/^espan_pending_spans\{shard="\d+"\} \d+$/m);
});
