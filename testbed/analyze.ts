// Linked spans of the testbed, read back: grouped by client request (every service keeps the
// request's path /<flow>/<id>), turned into call-graph edges, and drawn as trees. Used by the
// tests (on the OTLP export) and the demo (on the trace store's API).

/** A linked span, whatever it was read from. */
export interface TSpan {
  traceId: string;
  spanId: string;
  /** "" for a root. */
  parentId: string;
  service: string;
  host: string;
  kind: "entry" | "exit";
  /** The HTTP path (the request id is in it). */
  path: string;
  name: string;
  startNs: bigint;
  durationNs: bigint;
  /** ip:port of the other side, as this side saw it. */
  peer: string;
  local: string;
}

/** From an OTLP span as test/e2e/ingest/otlp-receiver.ts decodes it. */
export function fromOtlp(s: {
  traceId: string; spanId: string; parentSpanId: string; name: string; kind: number;
  startTimeUnixNano: string; endTimeUnixNano: string; attributes: Record<string, unknown>; resource: Record<string, unknown>;
}): TSpan {
  const a = s.attributes;
  return {
    traceId: s.traceId,
    spanId: s.spanId,
    parentId: s.parentSpanId,
    service: String(s.resource["service.name"]),
    host: String(s.resource["host.name"]),
    kind: s.kind === 2 ? "entry" : "exit", // SPAN_KIND_SERVER = 2, SPAN_KIND_CLIENT = 3
    path: String(a["url.path"] ?? ""),
    name: s.name,
    startNs: BigInt(s.startTimeUnixNano),
    durationNs: BigInt(s.endTimeUnixNano) - BigInt(s.startTimeUnixNano),
    peer: `${a["network.peer.address"]}:${a["network.peer.port"]}`,
    local: `${a["network.local.address"]}:${a["network.local.port"]}`,
  };
}

/** From a linked eSpan (GET /api/traces/:id). */
export function fromLinked(s: {
  trace_id: string; span_id: string; parent_id: string; service: string; host: string; kind: "entry" | "exit";
  http_route?: string; operation?: string; start_ns: string; duration_ns: number; src_ip: string; src_port: number; dst_ip: string; dst_port: number;
}): TSpan {
  return {
    traceId: s.trace_id,
    spanId: s.span_id,
    parentId: s.parent_id,
    service: s.service,
    host: s.host,
    kind: s.kind,
    path: s.http_route ?? "",
    name: s.operation ?? "",
    startNs: BigInt(s.start_ns),
    durationNs: BigInt(s.duration_ns),
    peer: `${s.dst_ip}:${s.dst_port}`,
    local: `${s.src_ip}:${s.src_port}`,
  };
}

/** "/chain/chain-3" → { flow: "chain", id: "chain-3" }. */
export function requestOf(path: string): { flow: string; id: string } | undefined {
  const m = /^\/([a-z]+)\/([A-Za-z0-9-]+)$/.exec(path);
  return m ? { flow: m[1], id: m[2] } : undefined;
}

export const groupBy = <T, K>(xs: Iterable<T>, key: (x: T) => K): Map<K, T[]> => {
  const m = new Map<K, T[]>();
  for (const x of xs) {
    const k = key(x);
    const list = m.get(k);
    if (list) list.push(x);
    else m.set(k, [x]);
  }
  return m;
};

/**
 * The edges of one request's spans, "<parent>><child>" with sides "<service>:<kind>" (see
 * topology.ts expectedEdges). A parent that is not among `all` is named by `external` (the
 * client's app span, the SDK's spans), else "missing:<id>"; a parent that belongs to another
 * request is "other-request:<service>:<kind>" (a false edge).
 */
export function edgesOf(spans: TSpan[], all: Map<string, TSpan>, external: Map<string, string> = new Map()): string[] {
  const side = (s: TSpan) => `${s.service}:${s.kind}`;
  const mine = new Set(spans.map((s) => s.spanId));
  return spans
    .map((s) => {
      let parent: string;
      if (s.parentId === "") parent = "root";
      else if (mine.has(s.parentId)) parent = side(all.get(s.parentId)!);
      else if (all.has(s.parentId)) parent = `other-request:${side(all.get(s.parentId)!)}`;
      else parent = external.get(s.parentId) ?? `missing:${s.parentId}`;
      return `${parent}>${side(s)}`;
    })
    .sort();
}

const ms = (ns: bigint) => `${(Number(ns) / 1e6).toFixed(1)} ms`;
/** A start offset: "+1.2 ms", or "-0.3 ms" (another host's agent clock, see README). */
const offset = (ns: bigint) => (ns < 0n ? `-${ms(-ns)}` : `+${ms(ns)}`);

/** A trace as an indented tree of text lines. Spans whose parent is not in the trace (the
 * application's own span) are drawn at the top, with that parent's id. */
export function renderTree(spans: TSpan[]): string[] {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const children = groupBy(spans, (s) => (byId.has(s.parentId) ? s.parentId : ""));
  const tops = (children.get("") ?? []).sort((a, b) => (a.startNs < b.startNs ? -1 : 1));
  const lines: string[] = [];
  const t0 = tops.length ? tops.reduce((m, s) => (s.startNs < m ? s.startNs : m), tops[0].startNs) : 0n;
  const walk = (s: TSpan, prefix: string, last: boolean, top: boolean) => {
    const branch = top ? "" : last ? "└─ " : "├─ ";
    const where = s.kind === "exit" ? `→ ${s.peer}` : `on ${s.local}`;
    const note = top && s.parentId ? `  (parent ${s.parentId}: an app span)` : "";
    lines.push(`${prefix}${branch}${s.service}@${s.host} ${s.kind === "entry" ? "SERVER" : "CLIENT"} ${s.name} ${where}  ${offset(s.startNs - t0)} ${ms(s.durationNs)}${note}`);
    const kids = (children.get(s.spanId) ?? []).sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
    const next = top ? prefix : prefix + (last ? "   " : "│  ");
    kids.forEach((k, i) => walk(k, next, i === kids.length - 1, false));
  };
  for (const t of tops) walk(t, "", true, true);
  return lines;
}
