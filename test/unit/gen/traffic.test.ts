// Sanity of the traffic generator itself: if its truth or its realism is wrong, every linker
// property test and benchmark built on it is wrong too.
import { describe, expect, it } from "vitest";
import { type ESpan, validateESpan } from "../../../contract/espan.ts";
import { type Traffic, type TrafficOptions, generateTraffic, generateTrafficChunks } from "../../gen/traffic.ts";
import { DB_PROTOS, index, netKey, parentByRules } from "./index-traffic.ts";

const dump = (t: Traffic) => ({
  spans: JSON.stringify(t.spans),
  emitNs: t.emitNs.map(String),
  truth: [...t.truth].map(([k, v]) => `${k}>${v.parent}>${v.root}`),
});

function concat(chunks: Iterable<Traffic>): Traffic {
  const out: Traffic = { spans: [], emitNs: [], truth: new Map() };
  for (const c of chunks) {
    out.spans.push(...c.spans);
    out.emitNs.push(...c.emitNs);
    for (const [k, v] of c.truth) out.truth.set(k, v);
  }
  return out;
}

// ~100k spans with every feature on: the big sample the structural checks run over.
const BIG: TrafficOptions = { seed: 42, traces: 12_000, appInstrumentedFraction: 0.5 };
const big = generateTraffic(BIG);
const ix = index(big);

/** The ids for which `bad` holds: one assertion per check keeps 100k-span loops fast and failures readable. */
const failing = (spans: ESpan[], bad: (s: ESpan, i: number) => boolean) => spans.filter(bad).map((s) => s.span_id).slice(0, 10);

describe("determinism", () => {
  it("same seed → identical spans, emit times and truth; another seed → different", () => {
    const o = { seed: 7, traces: 300, appInstrumentedFraction: 0.4 };
    expect(dump(generateTraffic(o))).toEqual(dump(generateTraffic(o)));
    expect(generateTraffic({ ...o, seed: 8 }).spans[0].span_id).not.toBe(generateTraffic(o).spans[0].span_id);
  });

  it("chunks concatenate to exactly the whole traffic, whatever the chunk size", () => {
    const o = { seed: 3, traces: 1500, appInstrumentedFraction: 0.3 };
    const whole = dump(generateTraffic(o));
    for (const chunk of [1, 37, 1000, 5000]) expect(dump(concat(generateTrafficChunks(o, chunk)))).toEqual(whole);
  });

  it("zero traces → no spans", () => {
    expect(generateTraffic({ seed: 1, traces: 0 }).spans).toEqual([]);
    expect([...generateTrafficChunks({ seed: 1, traces: 0 }, 10)]).toEqual([]);
  });
});

describe("spans", () => {
  it("every span passes validateESpan unchanged, ids unique and lower-case", () => {
    expect(big.spans.length).toBeGreaterThan(100_000);
    const results = (JSON.parse(JSON.stringify(big.spans)) as unknown[]).map(validateESpan);
    expect(results.flatMap((v, i) => (v.ok ? [] : [`${i}: ${JSON.stringify(v.errors)}`]))).toEqual([]);
    // Nothing to normalise: the generator already writes what validation would produce.
    expect(failing(big.spans, (s, i) => JSON.stringify((results[i] as { span: ESpan }).span) !== JSON.stringify(s))).toEqual([]);
    expect(ix.byId.size).toBe(big.spans.length);
    expect(big.truth.size).toBe(big.spans.length);
  });

  it("only client roots lack a thread id, and they come from client processes", () => {
    const noTtid = big.spans.filter((s) => s.kind === "exit" && !("thread_trace_id" in s));
    expect(noTtid.length).toBeGreaterThan(0);
    for (const s of noTtid) {
      expect(big.truth.get(s.span_id)).toEqual({ parent: "", root: s.span_id });
      expect(["cron", "batch-report", "sync-job"]).toContain(s.service);
    }
    // Thread ids are fresh per entry.
    expect(ix.entryByTtid.size).toBe(big.spans.filter((s) => s.kind === "entry").length);
  });

  it("are in end-time order, children before parents, shipped after they end", () => {
    expect(failing(big.spans, (s, i) => i > 0 && ix.end(s) < ix.end(big.spans[i - 1]))).toEqual([]);
    const parentOf = (s: ESpan) => big.truth.get(s.span_id)!.parent;
    expect(failing(big.spans, (s) => parentOf(s) !== "" && ix.pos.get(s.span_id)! > ix.pos.get(parentOf(s))!)).toEqual([]);
    expect(failing(big.spans, (s, i) => big.emitNs[i] < BigInt(s.start_ns) + BigInt(s.duration_ns))).toEqual([]);
  });
});

describe("truth", () => {
  it("every parent exists, and equals what DESIGN.md's rules derive from the spans", () => {
    const parentOf = (s: ESpan) => big.truth.get(s.span_id)!.parent;
    expect(failing(big.spans, (s) => parentOf(s) !== "" && !ix.byId.has(parentOf(s)))).toEqual([]);
    expect(failing(big.spans, (s) => parentOf(s) !== parentByRules(ix, s))).toEqual([]);
  });

  it("roots are consistent: a root's parent is empty, a child shares its parent's root", () => {
    const bad = [...big.truth].filter(([id, t]) => t.root !== (t.parent === "" ? id : big.truth.get(t.parent)!.root));
    expect(bad).toEqual([]);
  });

  it("children lie inside their parent's time", () => {
    const outside = failing(big.spans, (s) => {
      const p = ix.byId.get(big.truth.get(s.span_id)!.parent);
      return p !== undefined && (ix.start(s) < ix.start(p) || ix.end(s) > ix.end(p));
    });
    expect(outside).toEqual([]);
  });

  it("a net group holds at most one exit and one entry (no accidental seq collisions)", () => {
    expect(big.spans.length).toBeGreaterThan(100_000);
    const crowded = [...ix.net].filter(([, g]) => g.exits.length > 1 || g.entries.length > 1).map(([k]) => k);
    expect(crowded).toEqual([]);
  });

  it("an exit with a thread id has its entry in the same process and thread, open around it", () => {
    const withTtid = big.spans.filter((s) => s.kind === "exit" && s.thread_trace_id);
    const bad = failing(withTtid, (x) => {
      const e = ix.entryByTtid.get(x.thread_trace_id!);
      if (!e) return true;
      const same = x.host === e.host && x.pid === e.pid && x.tid === e.tid && x.service === e.service;
      return !same || ix.start(x) < ix.start(e) || ix.end(x) > ix.end(e);
    });
    expect(bad).toEqual([]);
  });
});

describe("shape of the traffic", () => {
  const rootsOf = (t: Traffic) => [...t.truth].filter(([, v]) => v.parent === "").map(([k]) => k);

  it("has fan-out (sequential and parallel), a 3-tier chain and depth ≤ maxDepth", () => {
    let maxFan = 0;
    let parallel = 0;
    for (const exits of ix.exitsByTtid.values()) {
      maxFan = Math.max(maxFan, exits.length);
      const sorted = [...exits].sort((a, b) => ix.start(a) - ix.start(b));
      if (sorted.some((x, i) => i > 0 && ix.start(x) < ix.end(sorted[i - 1]))) parallel++;
    }
    expect(maxFan).toBeGreaterThanOrEqual(3);
    expect(parallel).toBeGreaterThan(0);
    const depth = (s: ESpan): number => {
      const p = big.truth.get(s.span_id)!.parent;
      return (s.kind === "entry" ? 1 : 0) + (p ? depth(ix.byId.get(p)!) : 0);
    };
    const depths = big.spans.filter((s) => s.kind === "entry").map(depth);
    expect(Math.max(...depths)).toBe(5);
    const shallow = generateTraffic({ seed: 5, traces: 500, maxDepth: 2 });
    const six = index(shallow);
    const d2 = (s: ESpan): number => {
      const p = shallow.truth.get(s.span_id)!.parent;
      return (s.kind === "entry" ? 1 : 0) + (p ? d2(six.byId.get(p)!) : 0);
    };
    expect(Math.max(...shallow.spans.map(d2))).toBe(2);
  });

  it("databases: exits with no entry, a database protocol and no HTTP fields", () => {
    const db = big.spans.filter((s) => DB_PROTOS.has(s.l7_proto));
    expect(new Set(db.map((s) => s.l7_proto))).toEqual(DB_PROTOS);
    expect(failing(db, (s) => s.kind !== "exit" || ix.net.get(netKey(s))!.entries.length > 0 || "http_method" in s)).toEqual([]);
    expect(generateTraffic({ seed: 1, traces: 300, dbCallFraction: 0 }).spans.some((s) => DB_PROTOS.has(s.l7_proto))).toBe(false);
  });

  it("roots are client exits or entries of untraced callers, in the asked shares", () => {
    const o = { seed: 11, traces: 4000, clientRootFraction: 0.25, untracedCallerFraction: 0.1 };
    const t = generateTraffic(o);
    const tix = index(t);
    const roots = rootsOf(t).map((id) => tix.byId.get(id)!);
    const clientRoots = roots.filter((s) => s.kind === "exit");
    expect(clientRoots.every((s) => !s.thread_trace_id)).toBe(true);
    expect(clientRoots.length / o.traces).toBeCloseTo(0.25, 1);
    // Root entries beyond one per external request come from calls through an untraced gateway.
    const rootEntries = roots.length - clientRoots.length;
    const gatewayCalls = t.spans.filter(
      (s) => s.kind === "exit" && !DB_PROTOS.has(s.l7_proto) && tix.net.get(netKey(s))!.entries.length === 0,
    ).length;
    expect(rootEntries - (o.traces - clientRoots.length)).toBe(gatewayCalls);
    const serviceCalls = t.spans.filter((s) => s.kind === "exit" && s.thread_trace_id && !DB_PROTOS.has(s.l7_proto)).length;
    expect(gatewayCalls / serviceCalls).toBeCloseTo(0.1, 1);

    const only = generateTraffic({ seed: 2, traces: 300, clientRootFraction: 1, untracedCallerFraction: 0 });
    const onlyIx = index(only);
    expect(rootsOf(only).every((id) => onlyIx.byId.get(id)!.kind === "exit")).toBe(true);
    const none = generateTraffic({ seed: 2, traces: 300, clientRootFraction: 0, untracedCallerFraction: 0 });
    expect(rootsOf(none).length).toBe(300);
  });

  it("database share of a service's calls is roughly dbCallFraction", () => {
    for (const f of [0.1, 0.5]) {
      const t = generateTraffic({ seed: 4, traces: 3000, dbCallFraction: f });
      const calls = t.spans.filter((s) => s.kind === "exit" && s.thread_trace_id);
      const share = calls.filter((s) => DB_PROTOS.has(s.l7_proto)).length / calls.length;
      // Leaf services can only call databases, which lifts the share a little.
      expect(share).toBeGreaterThan(f - 0.03);
      expect(share).toBeLessThan(f + 0.2);
    }
  });

  it("respects hosts and services", () => {
    const t = generateTraffic({ seed: 9, traces: 2000, hosts: 2, services: 30 });
    expect(new Set(t.spans.map((s) => s.host)).size).toBe(2);
    const services = new Set(t.spans.filter((s) => s.kind === "entry").map((s) => s.service));
    expect(services.size).toBeGreaterThan(20);
    expect(services.size).toBeLessThanOrEqual(30);
  });
});
