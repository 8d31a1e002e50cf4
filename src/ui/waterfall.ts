/**
 * A trace laid out as a waterfall: spans in tree order (depth first, siblings by start time), each
 * with its depth and its bar as a share of the trace's time span. Pure: the UI page renders the
 * rows; tests check the layout.
 *
 * Spans whose parent is not in the trace are shown at the top level: a trace root, a span nested
 * under the application's own span (`app_parent_id`, which espan does not hold), or a parent that
 * was sampled into another store. A cycle in bad data cannot loop: every span is placed once.
 */
import type { LinkedSpan } from "../../contract/espan.ts";

export interface WaterfallRow {
  span: LinkedSpan;
  depth: number;
  /** Where the bar starts and how wide it is, in percent of the trace's time span. */
  offsetPct: number;
  widthPct: number;
  /** The parent named by `parent_id` is not among the trace's spans. */
  detached: boolean;
}

export interface Waterfall {
  rows: WaterfallRow[];
  startNs: bigint;
  endNs: bigint;
  services: string[];
}

const endOf = (s: LinkedSpan) => BigInt(s.start_ns) + BigInt(s.duration_ns);
const byStart = (a: LinkedSpan, b: LinkedSpan) => {
  const d = BigInt(a.start_ns) - BigInt(b.start_ns);
  return d < 0n ? -1 : d > 0n ? 1 : a.span_id < b.span_id ? -1 : a.span_id > b.span_id ? 1 : 0;
};

export function layoutWaterfall(spans: readonly LinkedSpan[]): Waterfall {
  if (spans.length === 0) return { rows: [], startNs: 0n, endNs: 0n, services: [] };
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const children = new Map<string, LinkedSpan[]>();
  const tops: LinkedSpan[] = [];
  for (const s of spans) {
    if (s.parent_id && s.parent_id !== s.span_id && byId.has(s.parent_id)) {
      const list = children.get(s.parent_id) ?? [];
      list.push(s);
      children.set(s.parent_id, list);
    } else tops.push(s);
  }
  for (const list of children.values()) list.sort(byStart);
  tops.sort(byStart);

  let startNs = BigInt(spans[0].start_ns);
  let endNs = endOf(spans[0]);
  for (const s of spans) {
    if (BigInt(s.start_ns) < startNs) startNs = BigInt(s.start_ns);
    if (endOf(s) > endNs) endNs = endOf(s);
  }
  const total = Number(endNs - startNs) || 1;
  const pct = (ns: bigint) => (Number(ns) / total) * 100;

  const rows: WaterfallRow[] = [];
  const placed = new Set<string>();
  const place = (root: LinkedSpan) => {
    // Depth first without recursion (a deep chain must not overflow the stack).
    const stack: [LinkedSpan, number][] = [[root, 0]];
    while (stack.length > 0) {
      const [s, depth] = stack.pop()!;
      if (placed.has(s.span_id)) continue;
      placed.add(s.span_id);
      rows.push({
        span: s,
        depth,
        offsetPct: pct(BigInt(s.start_ns) - startNs),
        widthPct: Math.max(pct(BigInt(s.duration_ns)), 0),
        detached: depth === 0 && s.parent_id !== "",
      });
      const kids = children.get(s.span_id) ?? [];
      for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1]);
    }
  };
  for (const t of tops) place(t);
  // Spans only reachable through a cycle (bad data): shown at the top level, once each.
  for (const s of [...spans].sort(byStart)) if (!placed.has(s.span_id)) place(s);
  const services = [...new Set(rows.map((r) => r.span.service))];
  return { rows, startNs, endNs, services };
}
