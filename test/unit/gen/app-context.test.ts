// W3C propagation in the generator: instrumented services adopt or start an app trace and send
// traceparent with their own span id; the agent shows the header on both sides of a request.
import { describe, expect, it } from "vitest";
import type { ESpan } from "../../../contract/espan.ts";
import { generateTraffic } from "../../gen/traffic.ts";
import { DB_PROTOS, index } from "./index-traffic.ts";

const APP = ["app_trace_id", "app_parent_id", "app_sampled"] as const;
const app = (s: ESpan) => (s.app_trace_id === undefined ? null : { t: s.app_trace_id, p: s.app_parent_id, s: s.app_sampled });

const t = generateTraffic({ seed: 33, traces: 6000, services: 20, appInstrumentedFraction: 0.5, notSampledFraction: 0.3 });
const ix = index(t);
const withCtx = t.spans.filter((s) => s.app_trace_id !== undefined);

describe("app trace context", () => {
  it("is absent unless asked for", () => {
    expect(generateTraffic({ seed: 33, traces: 500 }).spans.some((s) => APP.some((f) => f in s))).toBe(false);
  });

  it("fields come together and are well-formed (32/16 lower hex, not zero, boolean)", () => {
    expect(withCtx.length).toBeGreaterThan(t.spans.length / 10);
    const partial = t.spans.filter((s) => APP.filter((f) => f in s).length % 3 !== 0);
    expect(partial).toEqual([]);
    const malformed = withCtx.filter(
      (s) =>
        !/^(?!0+$)[0-9a-f]{32}$/.test(s.app_trace_id!) ||
        !/^(?!0+$)[0-9a-f]{16}$/.test(s.app_parent_id!) ||
        typeof s.app_sampled !== "boolean",
    );
    expect(malformed).toEqual([]);
  });

  it("the exit and the entry of a request carry the same header (or none)", () => {
    const differ = ix.pairs.filter(([x, e]) => JSON.stringify(app(e)) !== JSON.stringify(app(x)));
    expect(differ).toEqual([]);
    expect(ix.pairs.some(([x]) => x.app_trace_id !== undefined)).toBe(true);
  });

  it("database calls carry none", () => {
    expect(withCtx.some((s) => DB_PROTOS.has(s.l7_proto))).toBe(false);
  });

  it("an instrumented entry's calls share its app trace (adopted when it came in), each with its own span id", () => {
    let adopted = 0;
    let started = 0;
    for (const [ttid, exits] of ix.exitsByTtid) {
      const sent = exits.filter((x) => x.app_trace_id !== undefined);
      if (sent.length === 0) continue;
      // Instrumented: every HTTP call carries the context.
      expect(sent.length).toBe(exits.filter((x) => !DB_PROTOS.has(x.l7_proto)).length);
      expect(new Set(sent.map((x) => `${x.app_trace_id}/${x.app_sampled}`)).size).toBe(1);
      expect(new Set(sent.map((x) => x.app_parent_id)).size).toBe(sent.length);
      const e = ix.entryByTtid.get(ttid)!;
      if (e.app_trace_id !== undefined) {
        adopted++;
        expect([sent[0].app_trace_id, sent[0].app_sampled]).toEqual([e.app_trace_id, e.app_sampled]);
        expect(sent.map((x) => x.app_parent_id)).not.toContain(e.app_parent_id);
      } else started++;
    }
    expect(adopted).toBeGreaterThan(0);
    expect(started).toBeGreaterThan(0);
  });

  it("a non-instrumented service shows the incoming header but forwards nothing", () => {
    const forwardsNothing = [...ix.exitsByTtid].filter(([ttid, exits]) => {
      const e = ix.entryByTtid.get(ttid)!;
      return e.app_trace_id !== undefined && exits.every((x) => x.app_trace_id === undefined);
    });
    expect(forwardsNothing.length).toBeGreaterThan(0);
  });

  it("sampled is one decision per app trace, false in about notSampledFraction of them", () => {
    const sampled = new Map<string, boolean>();
    for (const s of withCtx) {
      const prev = sampled.get(s.app_trace_id!);
      if (prev !== undefined) expect(s.app_sampled).toBe(prev);
      sampled.set(s.app_trace_id!, s.app_sampled!);
    }
    const off = [...sampled.values()].filter((v) => !v).length / sampled.size;
    expect(off).toBeGreaterThan(0.22);
    expect(off).toBeLessThan(0.38);
  });

  it("about appInstrumentedFraction of the services propagate", () => {
    const callers = new Map<string, boolean>();
    for (const x of t.spans) {
      if (x.kind !== "exit" || !x.thread_trace_id || DB_PROTOS.has(x.l7_proto)) continue;
      callers.set(x.service, (callers.get(x.service) ?? false) || x.app_trace_id !== undefined);
    }
    const share = [...callers.values()].filter(Boolean).length / callers.size;
    expect(share).toBeGreaterThan(0.25);
    expect(share).toBeLessThan(0.75);
  });
});
