/** The engine's own contract: ids, sampling, memory bounds, snapshot, bad input. */
import { describe, expect, it } from "vitest";
import type { ESpan } from "../../contract/espan.ts";
import { DEFAULT_LINK_CONFIG, type LinkConfig } from "../../src/linker/config.ts";
import { LinkerEngine } from "../../src/linker/engine.ts";
import { hex16, hex32, keepTrace, mix64, samplingThreshold, shardOfNet, shardOfThread, traceIdOfRoot } from "../../src/linker/ids.ts";
import { loadEngineModule } from "../../src/linker/load-node.ts";
import { LocalCluster } from "../../src/linker/local-cluster.ts";

const module = loadEngineModule({ debug: true });
const ALL: LinkConfig = { ...DEFAULT_LINK_CONFIG, samplingRate: 1, useAppTraceId: false, windowMs: 1000, settleMs: 100 };

function span(o: Partial<ESpan> & Pick<ESpan, "span_id" | "kind" | "req_seq" | "resp_seq">): ESpan {
  return {
    start_ns: "1764000000000000000", duration_ns: 1000, host: "h", pid: 1, tid: 1, process_name: "p", service: "s",
    src_ip: "127.0.0.1", dst_ip: "127.0.0.1", src_port: 1, dst_port: 2, l7_proto: "http", ...o,
  };
}

/** A client root and the server entry it reached: the smallest trace. */
function pair(i: number, startNs = 1764000000000000000n + BigInt(i) * 1000n): ESpan[] {
  const key = { req_seq: (i * 7919) >>> 0, resp_seq: (i * 104729 + 1) >>> 0 };
  return [
    span({ ...key, span_id: hex16(BigInt(i) * 2n + 0x100000n), kind: "exit", start_ns: startNs.toString() }),
    span({ ...key, span_id: hex16(BigInt(i) * 2n + 0x100001n), kind: "entry", thread_trace_id: hex16(BigInt(i) + 1n), start_ns: startNs.toString() }),
  ];
}

describe("trace ids and sampling (the engine agrees with src/linker/ids.ts)", () => {
  it("a root's trace id is a ULID of its start and span id", () => {
    const e = new LinkerEngine(module, ALL);
    const spans = Array.from({ length: 200 }, (_, i) => pair(i)).flat();
    e.ingest(spans, 0);
    e.tick(10_000);
    const out = e.drainResults();
    expect(out).toHaveLength(400);
    for (const r of out.filter((r) => r.parent_id === "")) {
      const root = spans.find((s) => s.span_id === r.span_id)!;
      expect(r.trace_id).toBe(hex32(traceIdOfRoot(BigInt("0x" + root.span_id), BigInt(root.start_ns))));
      // The first 12 hex digits are the root's start in unix ms: trace ids sort by time.
      expect(BigInt("0x" + r.trace_id.slice(0, 12))).toBe(BigInt(root.start_ns) / 1_000_000n);
    }
  });

  it("samples on the trace id, as the TS function does, close to the rate", () => {
    for (const rate of [0, 0.1, 0.5]) {
      const e = new LinkerEngine(module, { ...ALL, samplingRate: rate });
      e.ingest(Array.from({ length: 4000 }, (_, i) => pair(i)).flat(), 0);
      e.tick(10_000);
      const out = e.drainResults();
      const threshold = samplingThreshold(rate);
      const traces = new Map<string, boolean>();
      for (const r of out) {
        const t = { hi: BigInt("0x" + r.trace_id.slice(0, 16)), lo: BigInt("0x" + r.trace_id.slice(16)) };
        expect(r.sampled).toBe(keepTrace(t, rate, threshold));
        if (traces.has(r.trace_id)) expect(traces.get(r.trace_id)).toBe(r.sampled); // whole traces
        traces.set(r.trace_id, r.sampled);
      }
      const kept = [...traces.values()].filter(Boolean).length / traces.size;
      expect(Math.abs(kept - rate)).toBeLessThan(0.03);
    }
  });

  it("drain(true) formats ids for sampled spans only, and otherwise drains the same", () => {
    const cfg = { ...ALL, samplingRate: 0.5 };
    const [a, b] = [new LinkerEngine(module, cfg), new LinkerEngine(module, cfg)];
    const spans = Array.from({ length: 400 }, (_, i) => pair(i)).flat();
    for (const e of [a, b]) {
      e.ingest(spans, 0);
      e.tick(100_000);
    }
    const all = a.drain();
    const lean = b.drain(true);
    expect(lean.map((r) => [r.ref, r.sampled])).toEqual(all.map((r) => [r.ref, r.sampled]));
    expect(new Set(all.map((r) => r.sampled))).toEqual(new Set([true, false]));
    lean.forEach((r, i) => {
      if (r.sampled) expect(r).toEqual(all[i]);
      else expect([r.spanId, r.traceId, r.parentId]).toEqual(["", "", ""]);
    });
  });

  it("the same input twice gives the same ids", () => {
    const run = () => {
      const e = new LinkerEngine(module, { ...ALL, samplingRate: 0.3 });
      e.ingest(Array.from({ length: 300 }, (_, i) => pair(i)).flat(), 0);
      e.tick(10_000);
      return e.drainResults().sort((a, b) => a.span_id.localeCompare(b.span_id));
    };
    expect(run()).toEqual(run());
  });
});

describe("memory", () => {
  it("holds spans for their window only; steady load does not grow memory; all freed at the end", () => {
    const e = new LinkerEngine(module, ALL);
    let i = 0;
    let sizeAfterWarmup = 0;
    let maxHeld = 0;
    // 100 pairs every 10 ms for 6 s with a 1 s window: about (1000 + 100) ms of spans held.
    for (let t = 0; t <= 6000; t += 10) {
      e.tick(t);
      const batch: ESpan[] = [];
      for (let k = 0; k < 100; k++) batch.push(...pair(i++));
      e.ingest(batch, t);
      e.drain();
      maxHeld = Math.max(maxHeld, e.heldRecords);
      if (t === 3000) sizeAfterWarmup = e.memoryUsed;
    }
    expect(maxHeld).toBeLessThanOrEqual(200 * 111);
    expect(e.memoryUsed).toBe(sizeAfterWarmup); // tables and pools reuse their space
    const bytesPerHeld = e.memoryUsed / maxHeld;
    expect(bytesPerHeld).toBeLessThan(400); // generous: the benchmark measures the real figure
    e.tick(20_000);
    expect(e.heldRecords).toBe(0);
    expect(e.pendingTimers).toBe(0);
  });
});

describe("snapshot and restore", () => {
  it("a restored engine continues exactly as the original would", () => {
    const spans = Array.from({ length: 500 }, (_, i) => pair(i)).flat();
    const straight = new LinkerEngine(module, { ...ALL, samplingRate: 0.5 });
    straight.ingest(spans.slice(0, 500), 0);
    straight.ingest(spans.slice(500), 500);
    straight.tick(60_000);

    const first = new LinkerEngine(module, { ...ALL, samplingRate: 0.5 });
    first.ingest(spans.slice(0, 500), 0);
    const early = first.drainResults();
    const snap = first.snapshot();
    const second = new LinkerEngine(module, { ...ALL, samplingRate: 0.5 }, {}, snap);
    second.ingest(spans.slice(500), 500);
    second.tick(60_000);
    const resumed = [...early, ...second.drainResults()];
    const key = (a: { span_id: string }, b: { span_id: string }) => a.span_id.localeCompare(b.span_id);
    expect(resumed.sort(key)).toEqual(straight.drainResults().sort(key));
  });

  it("refuses bytes that are not a snapshot", () => {
    expect(() => new LinkerEngine(module, ALL, {}, new Uint8Array(70_000))).toThrow(/not a snapshot/);
  });
});

describe("bad input never hangs or crashes", () => {
  it("a cycle (an exit that is its own entry's parent) is forced to a root after the horizon", () => {
    const e = new LinkerEngine(module, ALL);
    // entry E (thread T, key K) and exit X (thread T, key K): E.parent = X and X.parent = E.
    e.ingest([
      span({ span_id: "00000000000000e1", kind: "entry", req_seq: 5, resp_seq: 6, thread_trace_id: "00000000000000aa" }),
      span({ span_id: "00000000000000c1", kind: "exit", req_seq: 5, resp_seq: 6, thread_trace_id: "00000000000000aa" }),
    ], 0);
    e.tick(100_000);
    const out = e.drainResults();
    expect(out.map((r) => r.span_id).sort()).toEqual(["00000000000000c1", "00000000000000e1"]);
    expect(new Set(out.map((r) => r.trace_id)).size).toBe(1);
    expect(out.filter((r) => r.parent_id === "")).toHaveLength(1);
    expect(e.stats().forced).toBe(1);
    expect(e.heldRecords).toBe(0);
  });

  it("a net group with two exits links one, counts the conflict, and exports all", () => {
    const e = new LinkerEngine(module, ALL);
    e.ingest([
      span({ span_id: "00000000000000c1", kind: "exit", req_seq: 5, resp_seq: 6 }),
      span({ span_id: "00000000000000c2", kind: "exit", req_seq: 5, resp_seq: 6 }),
      span({ span_id: "00000000000000e1", kind: "entry", req_seq: 5, resp_seq: 6, thread_trace_id: "00000000000000aa" }),
    ], 0);
    e.tick(100_000);
    const out = e.drainResults();
    expect(out).toHaveLength(3);
    expect(out.find((r) => r.span_id === "00000000000000e1")!.parent_id).toBe("00000000000000c1");
    expect(e.stats().conflicts).toBe(1);
  });

  it("a span whose parent arrives after its window is a root, counted as an orphan", () => {
    const e = new LinkerEngine(module, ALL);
    const [exit, entry] = pair(1);
    e.ingest([{ ...entry }], 0);
    e.tick(1500);
    e.ingest([{ ...exit, thread_trace_id: "0000000000000777" }], 1500);
    e.tick(100_000);
    const out = e.drainResults();
    expect(out.every((r) => r.parent_id === "")).toBe(true);
    expect(e.stats().orphans).toBe(2);
  });
});

describe("timers", () => {
  it("a horizon whose record was decided, freed and reused does not touch the span now in it", () => {
    // Exits linked under an orphan entry are still undecided when their own window ends (the
    // entry decides only after its window and settle), so each gets a horizon; the decision frees
    // them soon after, and new spans reuse their records while those horizons are pending. The
    // horizon must see that its record is not the one it was set for (the generation), or it would
    // force a waiting span of another trace to a root.
    const e = new LinkerEngine(module, ALL); // window 1000, settle 100: horizons due at 2200
    const group = (g: number, tag: number, exitFirst: boolean) => {
      const tid = hex16(BigInt(tag * 1000 + g) + 1n);
      const exit = span({ span_id: hex16(BigInt(tag * 1000 + g) * 2n + 0x500000n), kind: "exit", req_seq: tag * 1000 + g, resp_seq: 1, thread_trace_id: tid });
      const entry = span({ span_id: hex16(BigInt(tag * 1000 + g) * 2n + 0x500001n), kind: "entry", req_seq: tag * 1000 + g, resp_seq: 2, thread_trace_id: tid });
      return exitFirst ? [exit, entry] : [entry, exit];
    };
    const first = Array.from({ length: 50 }, (_, g) => group(g, 1, true)).flat();
    e.ingest(first, 0);
    e.tick(1100); // windows over at 1000 (the exits get horizons), orphan entries decided at 1100
    expect(e.drainResults()).toHaveLength(100);
    expect(e.heldRecords).toBe(0);
    // Exits first: each waits in its thread group and is linked when its entry arrives.
    const second = Array.from({ length: 50 }, (_, g) => group(g, 2, true)).flat();
    e.ingest(second, 1500);
    e.tick(2300); // the first spans' horizons are due at 2200
    expect(e.drainResults()).toHaveLength(0);
    e.tick(100_000);
    const out = new Map(e.drainResults().map((r) => [r.span_id, r.parent_id]));
    for (let g = 0; g < 50; g++) {
      const [exit, entry] = group(g, 2, true);
      expect(out.get(exit.span_id)).toBe(entry.span_id);
    }
    expect(e.stats().forced).toBe(0);
  });
});

describe("thread groups: members waiting for their entry", () => {
  it("a thread's calls made before its entry arrives wait on one list: members whose window ends leave it (the head handing over its table slot), the rest are linked when the entry arrives", () => {
    const e = new LinkerEngine(module, ALL); // window 1000
    const tid = hex16(0x77n);
    const exit = (i: number) => span({ span_id: hex16(BigInt(i) + 0x700000n), kind: "exit", req_seq: 0x7000 + i, resp_seq: 1, thread_trace_id: tid });
    // Another thread's members share the table: each list holds its own thread's members only.
    const other = (i: number) => span({ span_id: hex16(BigInt(i) + 0x800000n), kind: "exit", req_seq: 0x8000 + i, resp_seq: 1, thread_trace_id: hex16(0x78n) });
    for (let t = 0; t < 10; t++) {
      e.tick(t * 100);
      e.ingest([exit(t * 3), exit(t * 3 + 1), exit(t * 3 + 2), other(t)], t * 100);
      expect(e.checkTables(), `after batch ${t}`).toBe(0);
    }
    // Windows end at 1000, 1100, ...: the oldest members leave their lists, heads first.
    for (const t of [1000, 1100, 1250, 1400]) {
      e.tick(t);
      expect(e.checkTables(), `at ${t}`).toBe(0);
    }
    // The entry arrives at 1450: members that arrived at 500 and later are still waiting.
    const entry = span({ span_id: hex16(0x7fffffn), kind: "entry", req_seq: 0x6fff, resp_seq: 1, thread_trace_id: tid });
    e.ingest([entry], 1450);
    expect(e.checkTables()).toBe(0);
    e.ingest([exit(30)], 1460); // after its entry: linked at once, never listed
    expect(e.checkTables()).toBe(0);
    e.tick(100_000);
    expect(e.checkTables()).toBe(0);
    expect(e.heldRecords).toBe(0);
    const parents = new Map(e.drainResults().map((r) => [r.span_id, r.parent_id]));
    for (let i = 0; i <= 30; i++) expect(parents.get(exit(i).span_id), `exit ${i}`).toBe(i >= 15 ? entry.span_id : "");
    for (let i = 0; i < 10; i++) expect(parents.get(other(i).span_id)).toBe("");
    expect(e.stats().orphans).toBe(15 + 10 + 1); // 15 of this thread, all 10 of the other, and the entry (no caller)
  });

  it("with shards, members whose home is another shard wait as stubs on their thread shard's list: the same links as one engine, every table and list consistent", () => {
    const tid = hex16(0x99n);
    const exit = (i: number) => span({ span_id: hex16(BigInt(i) + 0x900000n), kind: "exit", req_seq: 0x9100 + i * 7, resp_seq: 3, thread_trace_id: tid });
    const entry = span({ span_id: hex16(0x9fffffn), kind: "entry", req_seq: 0x9000, resp_seq: 3, thread_trace_id: tid });
    const run = (shards: number) => {
      const c = new LocalCluster(module, ALL, shards);
      const check = (when: string) => c.engines.forEach((e, s) => expect(e.checkTables(), `${when}, shard ${s} of ${shards}`).toBe(0));
      for (let t = 0; t < 8; t++) {
        c.tick(t * 100);
        c.ingest([exit(t * 4), exit(t * 4 + 1), exit(t * 4 + 2), exit(t * 4 + 3)], t * 100);
        check(`after batch ${t}`);
      }
      c.tick(1250); // the first three batches' windows are over
      check("at 1250");
      c.ingest([entry], 1300);
      check("after the entry");
      c.ingest([exit(40)], 1310); // after its entry: linked at once
      c.flush();
      check("at the end");
      expect(c.engines.reduce((n, e) => n + e.heldRecords, 0)).toBe(0);
      return { parents: new Map(c.drainResults().map((r) => [r.span_id, r.parent_id])), stubs: c.engines.reduce((n, e) => n + e.stats().stubs, 0) };
    };
    const one = run(1);
    for (let i = 0; i <= 40; i++) if (i < 32 || i === 40) expect(one.parents.get(exit(i).span_id), `exit ${i}`).toBe(i >= 12 ? entry.span_id : "");
    for (const shards of [3, 8]) {
      const many = run(shards);
      expect(many.stubs).toBeGreaterThan(10); // most members' homes are not their thread's shard
      expect(Object.fromEntries([...many.parents].sort()), `${shards} shards`).toEqual(Object.fromEntries([...one.parents].sort()));
    }
  });

  it("with shards, a member stub filed apart whose bucket and tag coincide with its owner's is not mistaken for a second owner", () => {
    // White-box: stubs not heading their list are filed by thread id and span id (assembly/table.ts,
    // link.ts), so one can land in the bucket of its thread id with the tag an owner has there;
    // its key (the thread id) matches too, and only its flags tell it from an owner. The span id
    // is searched for that coincidence in the thread table as a new engine sizes it.
    const SALT_TABLE = 0xe7037ed1a0b428dbn, SALT_ALT = 0x8ebc6af09c88c6e3n, BUCKETS = 171n; // 2048 slots, 12 a bucket
    const home = (h: bigint) => ((h >> 32n) * BUCKETS) >> 32n;
    const shards = 2;
    const tid = 0xabcdn;
    const tidHash = mix64(tid ^ SALT_TABLE);
    const onOtherShard = (i: number) => shardOfNet(i, 5, shards) !== shardOfThread(tid, shards); // a stub at the thread shard
    let crafted = 0n;
    for (let x = 1n; crafted === 0n; x++) {
      const h = mix64((tid ^ mix64(x ^ SALT_ALT)) ^ SALT_TABLE);
      if (home(h) === home(tidHash) && ((h & 0x7fn) ^ 0x40n) === (tidHash & 0x7fn)) crafted = x;
    }
    const seqs = Array.from({ length: 100 }, (_, i) => i).filter(onOtherShard);
    const exits = [
      span({ span_id: hex16(0xffff0001n), kind: "exit", req_seq: seqs[0], resp_seq: 5, thread_trace_id: hex16(tid) }), // heads the list
      span({ span_id: hex16(crafted), kind: "exit", req_seq: seqs[1], resp_seq: 5, thread_trace_id: hex16(tid) }), // filed apart
    ];
    const entry = span({ span_id: hex16(0xffff0009n), kind: "entry", req_seq: 0xf000, resp_seq: 6, thread_trace_id: hex16(tid) });
    const c = new LocalCluster(module, ALL, shards);
    c.ingest(exits, 0);
    c.ingest([entry], 10);
    c.engines.forEach((e) => expect(e.checkTables()).toBe(0));
    c.flush();
    expect(c.stats().conflicts).toBe(0);
    const parents = new Map(c.drainResults().map((r) => [r.span_id, r.parent_id]));
    for (const x of exits) expect(parents.get(x.span_id)).toBe(entry.span_id);
  });
});

describe("tables", () => {
  it("grow through many rehashes (wrapped runs included) and still find every span", () => {
    const e = new LinkerEngine(module, { ...ALL, windowMs: 3_600_000 });
    const N = 60_000;
    const spans: ESpan[] = [];
    let x = 0x9e3779b9;
    for (let i = 0; i < N; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0; // keys spread over the whole hash range
      spans.push(span({ span_id: hex16(BigInt(i + 1)), req_seq: x, resp_seq: i >>> 0, kind: "exit", thread_trace_id: hex16(BigInt((i % 997) + 1)) }));
    }
    for (let i = 0; i < N; i += 2000) {
      e.ingest(spans.slice(i, i + 2000), 0);
      expect(e.checkTables(), `after ${i + 2000} spans`).toBe(0);
    }
    e.ingest(spans, 1); // every one again: each must be found as a duplicate
    expect(e.stats().duplicates).toBe(N);
    expect(e.heldRecords).toBe(N);
  });

  it("stay consistent under churn: colliding keys, seq wrap-around, expiry and reuse, no tombstone growth", () => {
    const e = new LinkerEngine(module, ALL);
    let id = 1;
    let sizeAtWarmup = 0;
    let decided = 0;
    for (let round = 0; round < 40; round++) {
      const at = round * 300;
      e.tick(at);
      const spans: ESpan[] = [];
      for (let k = 0; k < 300; k++) {
        // Keys near 2^32 (wrapped seqs), and every fifth key shared by three spans (a conflict).
        const n = (round * 300 + k) % 1500;
        const key = k % 5 === 0 ? { req_seq: 4294967295 - (n % 7), resp_seq: n % 3 } : { req_seq: (4294967200 + n * 977) >>> 0, resp_seq: (n * 31) >>> 0 };
        spans.push(span({ ...key, span_id: hex16(BigInt(id++)), kind: k % 2 ? "entry" : "exit", thread_trace_id: hex16(BigInt(k % 40 + 1)) }));
      }
      e.ingest(spans, at);
      decided += e.drain().length;
      expect(e.checkTables(), `round ${round}`).toBe(0);
      if (round === 15) sizeAtWarmup = e.memoryUsed;
    }
    expect(e.memoryUsed).toBe(sizeAtWarmup);
    e.tick(1_000_000);
    expect(e.checkTables()).toBe(0);
    expect(e.heldRecords).toBe(0);
    decided += e.drain().length;
    expect(decided).toBe(e.stats().received - e.stats().duplicates); // every span decided once
    expect(e.stats().conflicts).toBeGreaterThan(0);
  });

  it("a key shared by hundreds of spans: its chain runs over many buckets (overflow counts saturate), every span is still found, and removal leaves the tables consistent", () => {
    const e = new LinkerEngine(module, ALL);
    const N = 3000; // one key and one thread id: a chain of 250 buckets and more in both tables
    const spans = Array.from({ length: N }, (_, i) =>
      span({ span_id: hex16(BigInt(i + 1)), kind: i % 2 ? "entry" : "exit", req_seq: 7, resp_seq: 9, thread_trace_id: hex16(42n) }),
    );
    const others = Array.from({ length: 500 }, (_, i) => pair(i + 10)).flat(); // entries spread over the rest of the table
    e.ingest([...spans.slice(0, N / 2), ...others, ...spans.slice(N / 2)], 0);
    expect(e.checkTables()).toBe(0);
    e.ingest(spans, 1); // every one again: each is found as a duplicate, wherever its chain put it
    expect(e.stats().duplicates).toBe(N);
    e.tick(100_000);
    expect(e.checkTables()).toBe(0);
    expect(e.heldRecords).toBe(0);
    e.ingest(spans.slice(0, 100), 200_000); // the emptied chain takes spans again
    expect(e.checkTables()).toBe(0);
    expect(e.stats().duplicates).toBe(N);
  });
});
