/**
 * The engine equals the reference model on generated traffic: under random arrival order,
 * random batch splits, streaming arrival with the window ticking, and shard counts 1..64.
 * With every span arriving inside its window, the links also equal the generator's truth.
 */
import { describe, expect, it } from "vitest";
import type { ESpan } from "../../contract/espan.ts";
import type { LinkConfig, LinkResult, LinkStats } from "../../src/linker/config.ts";
import { LocalCluster } from "../../src/linker/local-cluster.ts";
import { loadEngineModule } from "../../src/linker/load-node.ts";
import { generateTraffic, type Traffic } from "../gen/traffic.ts";
import { Rng } from "../gen/rng.ts";
import { ReferenceLinker } from "../model/reference-linker.ts";

const module = loadEngineModule({ debug: true });

interface Batch {
  at: number;
  spans: ESpan[];
}
interface Linker {
  add(spans: ESpan[], at: number): void;
  tick(at: number): void;
  results(): LinkResult[];
  stats(): LinkStats;
}

const model = (cfg: LinkConfig): Linker => {
  const m = new ReferenceLinker(cfg);
  return { add: (s, at) => m.add(s, at), tick: (at) => m.tick(at), results: () => m.drain(), stats: () => m.stats };
};
const engine = (cfg: LinkConfig, shards: number): Linker => {
  const c = new LocalCluster(module, cfg, shards);
  return { add: (s, at) => c.ingest(s, at), tick: (at) => c.tick(at), results: () => c.drainResults(), stats: () => c.stats() };
};

function run(l: Linker, batches: Batch[], stats?: LinkStats[]): LinkResult[] {
  const out: LinkResult[] = [];
  for (const b of batches) {
    l.tick(b.at);
    l.add(b.spans, b.at);
    out.push(...l.results());
  }
  l.tick(Number.MAX_SAFE_INTEGER);
  out.push(...l.results());
  stats?.push(l.stats());
  return out.sort((a, b) => (a.span_id < b.span_id ? -1 : a.span_id > b.span_id ? 1 : 0));
}

/** Arrival as the agents ship: in emit order, batched by time, arrival = emit time (ms). */
function streaming(t: Traffic): Batch[] {
  const t0 = t.emitNs.reduce((a, b) => (b < a ? b : a));
  const order = t.spans.map((_, i) => i).sort((a, b) => Number(t.emitNs[a] - t.emitNs[b]));
  const batches: Batch[] = [];
  for (const i of order) {
    const at = Number((t.emitNs[i] - t0) / 1_000_000n);
    const last = batches[batches.length - 1];
    if (last && last.at === at) last.spans.push(t.spans[i]);
    else batches.push({ at, spans: [t.spans[i]] });
  }
  return batches;
}

/** Any order within `spreadMs` (less than the window), split into random batches. */
function shuffled(t: Traffic, rng: Rng, spreadMs: number): Batch[] {
  const spans = [...t.spans];
  for (let i = spans.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [spans[i], spans[j]] = [spans[j], spans[i]];
  }
  const batches: Batch[] = [];
  for (let i = 0; i < spans.length; ) {
    const n = rng.int(1, 50);
    batches.push({ at: Math.floor((i / spans.length) * spreadMs), spans: spans.slice(i, i + n) });
    i += n;
  }
  return batches;
}

const CONFIGS: [string, Partial<LinkConfig>][] = [
  ["sampling 1, no app ids", { samplingRate: 1, useAppTraceId: false }],
  ["sampling 0.3, app ids", { samplingRate: 0.3, useAppTraceId: true }],
];
const SHARDS = [1, 2, 7, 16, 64];

describe("engine == reference model on generated traffic", () => {
  for (const seed of [1, 2, 3]) {
    const traffic = generateTraffic({
      seed, traces: 400, appInstrumentedFraction: 0.3, notSampledFraction: 0.2, untracedCallerFraction: 0.2,
      clientRootFraction: 0.3, dbCallFraction: 0.3, natFraction: 0.3,
    });
    for (const [name, over] of CONFIGS) {
      const cfg: LinkConfig = { windowMs: 20_000, settleMs: 2_000, samplingRate: 1, useAppTraceId: false, ...over };
      const rng = new Rng(seed * 977);
      const patterns: [string, Batch[]][] = [
        ["all at once", [{ at: 0, spans: traffic.spans }]],
        ["streaming as emitted", streaming(traffic)],
        ["shuffled within 10 s, random batches", shuffled(traffic, rng, 10_000)],
      ];
      for (const [pattern, batches] of patterns) {
        it(`seed ${seed}, ${name}, ${pattern}: S = ${SHARDS.join(", ")} all equal the model`, () => {
          const modelStats: LinkStats[] = [];
          const expected = run(model(cfg), batches, modelStats);
          expect(expected).toHaveLength(new Set(traffic.spans.map((s) => s.span_id)).size);
          for (const s of SHARDS) {
            const engineStats: LinkStats[] = [];
            expect(run(engine(cfg, s), batches, engineStats), `${s} shards`).toEqual(expected);
            const { messagesSent: _, late, ...counters } = engineStats[0] as LinkStats & { messagesSent: number };
            const { late: modelLate, ...modelCounters } = modelStats[0];
            expect(counters, `${s} shards: counters`).toEqual(modelCounters);
            // "late" (linked under an already decided parent) depends, across shards, on whether
            // the parent's decision had reached the shard yet: exact for one shard only.
            if (s === 1) expect(late).toBe(modelLate);
          }
        });
      }
    }
  }
});

describe("engine == reference model on bad input", () => {
  it("a flood of one net key (conflicts, some in thread groups, and duplicates of them) in generated traffic: S = 1..64 equal the model", () => {
    const traffic = generateTraffic({ seed: 4, traces: 200, untracedCallerFraction: 0.2, clientRootFraction: 0.3, natFraction: 0.3 });
    const rng = new Rng(11);
    // Exits and entries that all report one seq pair (an agent gone wrong). Some exits carry the
    // thread id of a real entry: conflicts of their net group, they are still members of its thread
    // group, linked at a thread shard that tells their home (which must find them by key and span
    // id). The entries have thread ids of their own: two live entries on one thread id are another
    // kind of bad input, whose owner depends on arrival order (across shards, on message order).
    const entries = traffic.spans.filter((x) => x.kind === "entry");
    const flood: ESpan[] = Array.from({ length: 600 }, (_, i) => ({
      ...traffic.spans[i % traffic.spans.length],
      span_id: (0xf100000 + i).toString(16).padStart(16, "0"),
      kind: i % 3 === 0 ? "entry" : "exit",
      req_seq: 7,
      resp_seq: 9,
      thread_trace_id: i % 3 === 0 ? (0xe100000 + i).toString(16).padStart(16, "0") : i % 2 === 0 ? entries[rng.int(0, entries.length - 1)].thread_trace_id : undefined,
    }));
    const again = Array.from({ length: 100 }, () => flood[rng.int(0, flood.length - 1)]); // duplicates
    const spans = { ...traffic, spans: [...traffic.spans, ...flood, ...again] };
    const batches = shuffled(spans, rng, 10_000);
    const cfg: LinkConfig = { windowMs: 20_000, settleMs: 2_000, samplingRate: 1, useAppTraceId: false };
    const modelStats: LinkStats[] = [];
    const expected = run(model(cfg), batches, modelStats);
    expect(expected).toHaveLength(traffic.spans.length + flood.length);
    expect(modelStats[0].conflicts).toBeGreaterThan(500);
    expect(modelStats[0].duplicates).toBe(again.length);
    for (const s of SHARDS) {
      const engineStats: LinkStats[] = [];
      expect(run(engine(cfg, s), batches, engineStats), `${s} shards`).toEqual(expected);
      const { messagesSent: _, late: __, ...counters } = engineStats[0] as LinkStats & { messagesSent: number };
      const { late: ___, ...modelCounters } = modelStats[0];
      expect(counters, `${s} shards: counters`).toEqual(modelCounters);
    }
  });
});

describe("links equal the generator's ground truth", () => {
  it("every parent and every trace, 2000 traces shuffled within the window", () => {
    const traffic = generateTraffic({ seed: 42, traces: 2000, untracedCallerFraction: 0.2, clientRootFraction: 0.3, dbCallFraction: 0.3, natFraction: 0.3 });
    const cfg: LinkConfig = { windowMs: 20_000, settleMs: 2_000, samplingRate: 1, useAppTraceId: false };
    const out = run(engine(cfg, 16), shuffled(traffic, new Rng(5), 15_000));
    const byId = new Map(out.map((r) => [r.span_id, r]));
    const traceOfRoot = new Map<string, string>();
    for (const s of traffic.spans) {
      const truth = traffic.truth.get(s.span_id)!;
      const r = byId.get(s.span_id)!;
      expect(r.parent_id, s.span_id).toBe(truth.parent);
      const t = traceOfRoot.get(truth.root);
      if (t) expect(r.trace_id).toBe(t);
      else traceOfRoot.set(truth.root, r.trace_id);
    }
    expect(new Set(traceOfRoot.values()).size).toBe(traceOfRoot.size);
  });

  it("the same input twice gives the same ids", () => {
    const traffic = generateTraffic({ seed: 9, traces: 300, appInstrumentedFraction: 0.5 });
    const cfg: LinkConfig = { windowMs: 20_000, settleMs: 2_000, samplingRate: 0.5, useAppTraceId: true };
    expect(run(engine(cfg, 4), streaming(traffic))).toEqual(run(engine(cfg, 4), streaming(traffic)));
  });
});
