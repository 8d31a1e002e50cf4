/**
 * The service map: who calls whom, from the calls (exit spans) of a set of traces. A call's
 * callee is the service of the entry it reached (its child in the trace), or, when no traced
 * process answered (a database, an untraced service), its peer as `l7_proto host:port`. Pure: the
 * UI page renders the edges; tests check them.
 */
import type { LinkedSpan } from "../../contract/espan.ts";

export interface ServiceEdge {
  caller: string;
  callee: string;
  /** The callee is an address, not a traced service. */
  untraced: boolean;
  calls: number;
  errors: number;
  /** Mean duration of the calls as the caller saw them (ms). */
  meanMs: number;
}

/** A call failed: the span says so, or an HTTP status of 500 and up. */
export function isError(s: LinkedSpan): boolean {
  return s.status === "error" || (s.http_status_code ?? 0) >= 500;
}

export function serviceEdges(traces: readonly (readonly LinkedSpan[])[]): ServiceEdge[] {
  const edges = new Map<string, ServiceEdge & { totalNs: number }>();
  for (const spans of traces) {
    const calleeOf = new Map<string, LinkedSpan>(); // exit span id -> the entry it reached
    for (const s of spans) if (s.kind === "entry" && s.parent_id) calleeOf.set(s.parent_id, s);
    for (const s of spans) {
      if (s.kind !== "exit") continue;
      const entry = calleeOf.get(s.span_id);
      const callee = entry ? entry.service : `${s.l7_proto} ${s.dst_ip}:${s.dst_port}`;
      const key = `${s.service}\u0000${callee}\u0000${entry ? "" : "u"}`;
      let e = edges.get(key);
      if (!e) edges.set(key, (e = { caller: s.service, callee, untraced: !entry, calls: 0, errors: 0, meanMs: 0, totalNs: 0 }));
      e.calls++;
      if (isError(s)) e.errors++;
      e.totalNs += s.duration_ns;
    }
  }
  return [...edges.values()]
    .map(({ totalNs, ...e }) => ({ ...e, meanMs: totalNs / e.calls / 1e6 }))
    .sort((a, b) => b.calls - a.calls || a.caller.localeCompare(b.caller) || a.callee.localeCompare(b.callee));
}
