/**
 * Indexes generated traffic the way the linker sees it (net groups, thread groups), so the gen
 * tests can check the generator's truth against DESIGN.md's rules instead of against itself.
 */
import type { ESpan } from "../../../contract/espan.ts";
import type { Traffic } from "../../gen/traffic.ts";

export const DB_PROTOS = new Set(["mysql", "redis", "postgresql"]);

export interface Indexed {
  spans: ESpan[];
  byId: Map<string, ESpan>;
  /** Position in `spans` (emit order). */
  pos: Map<string, number>;
  /** Net group "req:resp" → its exits and entries. */
  net: Map<string, { exits: ESpan[]; entries: ESpan[] }>;
  /** thread_trace_id → the entry owning it. */
  entryByTtid: Map<string, ESpan>;
  /** thread_trace_id → exits carrying it. */
  exitsByTtid: Map<string, ESpan[]>;
  /** [exit, entry] of every net group with both. */
  pairs: [ESpan, ESpan][];
  /** ns offsets from the earliest start: Numbers are exact here. */
  start: (s: ESpan) => number;
  end: (s: ESpan) => number;
}

export const netKey = (s: ESpan): string => `${s.req_seq}:${s.resp_seq}`;

export function index(t: Traffic): Indexed {
  const spans = t.spans;
  let base = BigInt(spans[0]?.start_ns ?? 0);
  for (const s of spans) if (BigInt(s.start_ns) < base) base = BigInt(s.start_ns);
  const startOff = new Map<string, number>();
  for (const s of spans) startOff.set(s.span_id, Number(BigInt(s.start_ns) - base));

  const byId = new Map<string, ESpan>();
  const pos = new Map<string, number>();
  const net = new Map<string, { exits: ESpan[]; entries: ESpan[] }>();
  const entryByTtid = new Map<string, ESpan>();
  const exitsByTtid = new Map<string, ESpan[]>();
  spans.forEach((s, i) => {
    byId.set(s.span_id, s);
    pos.set(s.span_id, i);
    const k = netKey(s);
    let g = net.get(k);
    if (!g) net.set(k, (g = { exits: [], entries: [] }));
    (s.kind === "exit" ? g.exits : g.entries).push(s);
    if (s.kind === "entry") entryByTtid.set(s.thread_trace_id!, s);
    else if (s.thread_trace_id) {
      const l = exitsByTtid.get(s.thread_trace_id) ?? [];
      l.push(s);
      exitsByTtid.set(s.thread_trace_id, l);
    }
  });
  const pairs: [ESpan, ESpan][] = [];
  for (const g of net.values()) if (g.exits.length === 1 && g.entries.length === 1) pairs.push([g.exits[0], g.entries[0]]);
  const start = (s: ESpan) => startOff.get(s.span_id)!;
  return { spans, byId, pos, net, entryByTtid, exitsByTtid, pairs, start, end: (s) => start(s) + s.duration_ns };
}

/** DESIGN.md's linking rules applied to the spans: what a perfect linker would find. */
export function parentByRules(ix: Indexed, s: ESpan): string {
  if (s.kind === "entry") return ix.net.get(netKey(s))!.exits[0]?.span_id ?? "";
  return s.thread_trace_id ? (ix.entryByTtid.get(s.thread_trace_id)?.span_id ?? "") : "";
}

/** Spans of each TCP connection, from one side's view of the 4-tuple, in time order. */
export function connections(ix: Indexed, kind: "entry" | "exit"): ESpan[][] {
  const byTuple = new Map<string, ESpan[]>();
  for (const s of ix.spans) {
    if (s.kind !== kind) continue;
    const k = `${s.src_ip}:${s.src_port}>${s.dst_ip}:${s.dst_port}`;
    const l = byTuple.get(k) ?? [];
    l.push(s);
    byTuple.set(k, l);
  }
  const out = [...byTuple.values()];
  for (const l of out) l.sort((a, b) => ix.start(a) - ix.start(b));
  return out;
}
