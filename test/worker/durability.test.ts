/**
 * The shards' state survives the loss of every Durable Object instance (memory gone, storage
 * kept: what a restart or an eviction does): replaying the log links what was accepted, and
 * nothing is exported twice. A bug in a shard's engine restarts that shard the same way.
 */
import { abortAllDurableObjects, runInDurableObject } from "cloudflare:test";
import { expect, it } from "vitest";
import type { ESpan } from "../../contract/espan.ts";
import type { Scenario } from "../scenarios.case.ts";
// Inside workerd there is no file system: the scenario comes in as a module.
import chainScenario from "../../../shared/scenarios/chain-3-hop.json";
import { shardName } from "../../src/env.ts";
import { EngineBug, type LinkerEngine } from "../../src/linker/engine.ts";
import { shardOfNet } from "../../src/linker/ids.ts";
import { LOG_BATCH, LOG_BATCH_DOC, LOG_BATCH_NDJSON, ShardLog } from "../../src/linker/shard-log.ts";
import { bindings, get, post, settle } from "./helpers.ts";

/**
 * The 3-hop chain with its span ids renamed by `own` and its seqs moved by `seq`: each test its
 * own spans (this file's shards and stores keep what earlier tests left).
 */
function ownChain(own: (id: string) => string, seq: number): ESpan[] {
  return (chainScenario as unknown as Scenario).spans.map((s) => ({
    ...s, span_id: own(s.span_id), thread_trace_id: s.thread_trace_id && own(s.thread_trace_id), req_seq: s.req_seq + seq, resp_seq: s.resp_seq + seq,
  })) as ESpan[];
}

/** The parent of each span of the chain once linked (ids renamed by `own`). */
function chainParents(own = (id: string) => id): Record<string, string> {
  return {
    [own("e100000000000001")]: "", [own("c100000000000001")]: own("e100000000000001"), [own("e200000000000002")]: own("c100000000000001"),
    [own("c200000000000002")]: own("e200000000000002"), [own("e300000000000003")]: own("c200000000000002"),
  };
}

/** Each stored span of a trace (from /api/traces/:id) by id: its parent. */
const parentsOf = (trace: { spans: { span_id: string; parent_id: string }[] }) => Object.fromEntries(trace.spans.map((s) => [s.span_id, s.parent_id]));

it("a trace half accepted before the restart and half after links whole, each span stored once", async () => {
  const chain = ownChain((id) => id, 7000);
  expect((await post(JSON.stringify({ spans: chain.slice(0, 3) }))).status).toBe(202);
  await abortAllDurableObjects(); // every shard loses its memory
  expect((await post(JSON.stringify({ spans: chain.slice(3) }))).status).toBe(202);
  await settle();
  const root = await (await get("/api/spans/e100000000000001")).json();
  const trace = await (await get(`/api/traces/${root.trace_id}`)).json();
  expect(trace.spans.map((s: { span_id: string }) => s.span_id).sort()).toEqual(chain.map((s) => s.span_id).sort());
  expect(parentsOf(trace)).toEqual(chainParents());

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

it("a bug in a shard's engine restarts the shard from its log: the request is answered 503, its retry is taken, the trace links whole", async () => {
  const own = (id: string) => id.replace(/^e/, "d").replace(/^c/, "f");
  const chain = ownChain(own, 11000);
  expect((await post(JSON.stringify({ spans: chain.slice(0, 3) }))).status).toBe(202);
  // The homes of the rest that run an engine already: it aborts at their next batch (once, as a
  // bug would: the restarted shard has a new engine).
  const shards = Number(bindings.ESPAN_SHARDS);
  const homes = new Set(chain.slice(3).map((s) => shardOfNet(s.req_seq, s.resp_seq, shards)));
  let broken = 0;
  for (const shard of homes) {
    await runInDurableObject(bindings.LINKER_SHARD.get(bindings.LINKER_SHARD.idFromName(shardName(shard))), (instance) => {
      const engine = (instance as unknown as { engine?: LinkerEngine }).engine;
      if (!engine) return;
      engine.ingestRecords = () => {
        throw new EngineBug("linker engine aborted (a bug) at assembly line 0");
      };
      broken++;
    });
  }
  expect(broken).toBeGreaterThan(0);
  const statuses: number[] = [];
  for (let attempt = 0; attempt < 3 && statuses.at(-1) !== 202; attempt++) statuses.push((await post(JSON.stringify({ spans: chain.slice(3) }))).status);
  expect(statuses).toEqual([503, 202]);
  await settle();
  const root = await (await get(`/api/spans/${own("e100000000000001")}`)).json();
  const trace = await (await get(`/api/traces/${root.trace_id}`)).json();
  expect(trace.spans).toHaveLength(5); // each span once, though part of the failed request was taken before it failed
  expect(parentsOf(trace)).toEqual(chainParents(own));
});

it("a log an earlier version wrote (JSON arrays, bodies as they came, in any shape) replays, links and exports", async () => {
  const chain = ownChain((id) => id.replace(/^e/, "a").replace(/^c/, "b").replace(/^0000/, "9999"), 9000);
  const shards = Number(bindings.ESPAN_SHARDS);
  const at = Date.now();
  for (let shard = 0; shard < shards; shard++) {
    const home = chain.filter((s) => shardOfNet(s.req_seq, s.resp_seq, shards) === shard);
    if (home.length === 0) continue;
    const stub = bindings.LINKER_SHARD.get(bindings.LINKER_SHARD.idFromName(shardName(shard)));
    await runInDurableObject(stub, (_instance, state) => {
      const log = new ShardLog(state.storage.sql);
      log.setMeta("shard", String(shard));
      // One span per row, each row in another of the old kinds; the document has another key
      // before "spans" (a shape the fast path leaves to the full parser).
      home.forEach((s, i) => {
        if (i % 3 === 0) log.appendBatch(at, JSON.stringify([s]), 1, LOG_BATCH);
        else if (i % 3 === 1) log.appendBatch(at, JSON.stringify({ agent: "old", spans: [s] }), 1, LOG_BATCH_DOC);
        else log.appendBatch(at, `\n${JSON.stringify(s)}\n`, 1, LOG_BATCH_NDJSON);
      });
    });
  }
  await abortAllDurableObjects(); // the shards start again, from those logs
  // The replayed shards exchange messages before the trace is decided: a few rounds on a busy machine.
  let trace: { spans: ESpan[] } = { spans: [] };
  for (let round = 0; round < 20 && trace.spans.length < chain.length; round++) {
    await settle(round === 0 ? 1300 : 300);
    const root = await get("/api/spans/a100000000000001");
    if (root.ok) trace = await (await get(`/api/traces/${(await root.json()).trace_id}`)).json();
  }
  expect(trace.spans.map((s: ESpan) => s.span_id).sort()).toEqual(chain.map((s) => s.span_id).sort());
  const stored = trace.spans.find((s: ESpan) => s.span_id === chain[2].span_id);
  expect({ ...stored, trace_id: undefined, parent_id: undefined }).toEqual({ ...chain[2], trace_id: undefined, parent_id: undefined });
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
