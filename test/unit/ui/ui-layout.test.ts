/** The UI's pure parts on linked traces: the waterfall's tree order and bars, the service map's edges. */
import { describe, expect, it } from "vitest";
import type { LinkedSpan } from "../../../contract/espan.ts";
import { DEFAULT_LINK_CONFIG } from "../../../src/linker/config.ts";
import { loadEngineModule } from "../../../src/linker/load-node.ts";
import { LocalCluster } from "../../../src/linker/local-cluster.ts";
import { serviceEdges } from "../../../src/ui/service-map.ts";
import { layoutWaterfall } from "../../../src/ui/waterfall.ts";
import { loadScenarios, type Scenario } from "../../scenarios.case.ts";

/** A scenario linked by the engine, as the store holds it: spans with trace and parent ids, by trace. */
function linkedTraces(s: Scenario): LinkedSpan[][] {
  const c = new LocalCluster(loadEngineModule(), { ...DEFAULT_LINK_CONFIG, samplingRate: 1, useAppTraceId: s.config.use_app_trace_id }, 1);
  c.ingest(s.spans, 0);
  c.flush();
  const byId = new Map(s.spans.map((x) => [x.span_id, x]));
  const traces = new Map<string, LinkedSpan[]>();
  for (const r of c.drainResults()) {
    const list = traces.get(r.trace_id) ?? [];
    list.push({ ...byId.get(r.span_id)!, trace_id: r.trace_id, parent_id: r.parent_id });
    traces.set(r.trace_id, list);
  }
  return [...traces.values()];
}

const scenario = (name: string) => loadScenarios().find((s) => s.name === name)!;

describe("waterfall", () => {
  it("lists every span of a linked trace once, each right under its parent's subtree, siblings by start, bars inside the trace", () => {
    const traces = linkedTraces(scenario("simulated-60-traces"));
    expect(traces.length).toBeGreaterThan(10);
    for (const spans of traces) {
      const w = layoutWaterfall(spans);
      expect(w.rows.map((r) => r.span.span_id).sort()).toEqual(spans.map((s) => s.span_id).sort());
      const ids = new Set(spans.map((s) => s.span_id));
      // Depth-first order: a span's parent is the nearest row above it one level up.
      const path: string[] = [];
      for (const r of w.rows) {
        path.length = r.depth;
        if (r.depth > 0) expect(r.span.parent_id, `${r.span.span_id} under its parent`).toBe(path[r.depth - 1]);
        else expect(r.detached).toBe(r.span.parent_id !== "");
        if (r.detached) expect(ids.has(r.span.parent_id)).toBe(false);
        path.push(r.span.span_id);
        expect(r.offsetPct).toBeGreaterThanOrEqual(0);
        expect(r.offsetPct + r.widthPct).toBeLessThanOrEqual(100 + 1e-9);
      }
      for (let i = 1; i < w.rows.length; i++) {
        const [a, b] = [w.rows[i - 1], w.rows[i]];
        if (a.depth === b.depth && a.span.parent_id === b.span.parent_id) expect(BigInt(a.span.start_ns) <= BigInt(b.span.start_ns)).toBe(true);
      }
    }
  });

  it("the chain-3-hop trace: front → mid → back, one level deeper each hop", () => {
    const [spans] = linkedTraces(scenario("chain-3-hop"));
    const w = layoutWaterfall(spans);
    expect(w.rows.map((r) => `${r.depth} ${r.span.service} ${r.span.kind}`)).toEqual([
      "0 front entry", "1 front exit", "2 mid entry", "3 mid exit", "4 back entry",
    ]);
    expect(w.services).toEqual(["front", "mid", "back"]);
    expect(w.rows[0].offsetPct).toBe(0);
  });

  it("bad data cannot loop: two spans naming each other as parent are each shown once", () => {
    const base = scenario("chain-3-hop").spans[0];
    const a = { ...base, span_id: "000000000000000a", parent_id: "000000000000000b", trace_id: "1".repeat(32) } as LinkedSpan;
    const b = { ...base, span_id: "000000000000000b", parent_id: "000000000000000a", trace_id: "1".repeat(32) } as LinkedSpan;
    const w = layoutWaterfall([a, b]);
    expect(w.rows.map((r) => r.span.span_id).sort()).toEqual(["000000000000000a", "000000000000000b"]);
  });
});

describe("service map", () => {
  it("chain-3-hop: front calls mid, mid calls back, once each", () => {
    const edges = serviceEdges(linkedTraces(scenario("chain-3-hop")));
    expect(edges.map((e) => `${e.caller}->${e.callee}:${e.calls}:${e.untraced}`).sort()).toEqual(["front->mid:1:false", "mid->back:1:false"]);
  });

  it("a call no traced process answered is an edge to its address; errors are counted", () => {
    const s = scenario("untraced-caller");
    const traces = linkedTraces(s);
    const exit = { ...traces[0][0], span_id: "00000000000000ee", kind: "exit", parent_id: traces[0][0].span_id, service: "api",
      l7_proto: "postgresql", dst_ip: "10.9.9.9", dst_port: 5432, status: "error", duration_ns: 3_000_000 } as LinkedSpan;
    const edges = serviceEdges([[...traces[0], exit]]);
    const db = edges.find((e) => e.callee === "postgresql 10.9.9.9:5432")!;
    expect(db).toMatchObject({ caller: "api", untraced: true, calls: 1, errors: 1 });
    expect(db.meanMs).toBeCloseTo(3);
  });
});
