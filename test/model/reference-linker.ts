/**
 * The reference model of espan's linking semantics (DESIGN.md "Linking semantics"), written
 * plainly with maps and objects, no cleverness: the oracle the WASM engine is tested against.
 *
 * Time is injected: `add(spans, now)` registers spans that arrived at `now` (ms), `tick(now)`
 * runs every timer due by `now`. Callers tick before adding at the same time.
 */
import type { ESpan } from "../../contract/espan.ts";
import { emptyStats, type LinkConfig, type LinkResult, type LinkStats } from "../../src/linker/config.ts";
import { hex16, hex32, keepTrace, parseHex, parseTraceId, samplingThreshold, traceIdOfRoot, type TraceId } from "../../src/linker/ids.ts";

type State = "waiting" | "linked" | "root" | "decided";

interface Node {
  span: ESpan;
  id: bigint;
  state: State;
  parent?: Node;
  children: Node[];
  forced: boolean;
  trace?: TraceId;
  sampled?: boolean;
}

interface NetGroup {
  exit?: Node;
  entry?: Node;
}
interface ThreadGroup {
  owner?: Node;
  waiting: Node[];
}

type TimerKind = "expire" | "decide" | "horizon";
interface Timer {
  at: number;
  seq: number;
  kind: TimerKind;
  node: Node;
}

export class ReferenceLinker {
  readonly stats: LinkStats = emptyStats();
  private readonly nodes = new Map<string, Node>();
  private readonly net = new Map<string, NetGroup>();
  private readonly threads = new Map<string, ThreadGroup>();
  private readonly timers = new TimerHeap();
  private seq = 0;
  private out: LinkResult[] = [];
  private readonly threshold: bigint;

  constructor(private readonly cfg: LinkConfig) {
    this.threshold = samplingThreshold(cfg.samplingRate);
  }

  add(spans: readonly ESpan[], now: number): void {
    for (const span of spans) this.addOne(span, now);
  }

  tick(now: number): void {
    for (let t = this.timers.popDue(now); t; t = this.timers.popDue(now)) this.fire(t);
  }

  /** Offline: everything has arrived; run every timer. */
  flush(): void {
    this.tick(Number.MAX_SAFE_INTEGER);
  }

  /** Results decided since the last drain. */
  drain(): LinkResult[] {
    const r = this.out;
    this.out = [];
    return r;
  }

  get pending(): number {
    let n = 0;
    for (const node of this.nodes.values()) if (node.state !== "decided") n++;
    return n;
  }

  private addOne(span: ESpan, now: number): void {
    this.stats.received++;
    if (this.nodes.has(span.span_id)) {
      this.stats.duplicates++;
      return;
    }
    const node: Node = { span, id: parseHex(span.span_id), state: "waiting", children: [], forced: false };
    this.nodes.set(span.span_id, node);
    this.schedule(now + this.cfg.windowMs, "expire", node);

    const netKey = `${span.req_seq}:${span.resp_seq}`;
    const group = this.net.get(netKey) ?? {};
    this.net.set(netKey, group);
    const tid = span.thread_trace_id ?? undefined;

    // The thread group first, then the net group (the engine's order: it decides which links
    // count as late when a parent is already decided).
    if (span.kind === "entry") {
      const tg = this.threadGroup(tid!);
      if (tg.owner) this.stats.conflicts++;
      else {
        tg.owner = node;
        for (const m of tg.waiting) this.link(m, node);
        tg.waiting = [];
      }
      if (group.entry) this.stats.conflicts++;
      else {
        group.entry = node;
        if (group.exit) this.link(node, group.exit);
      }
    } else {
      if (tid !== undefined) {
        const tg = this.threadGroup(tid);
        if (tg.owner) this.link(node, tg.owner);
        else tg.waiting.push(node);
      }
      if (group.exit) this.stats.conflicts++;
      else {
        group.exit = node;
        if (group.entry && group.entry.state === "waiting") this.link(group.entry, node);
      }
      if (tid === undefined) this.makeRoot(node, now);
    }
  }

  private threadGroup(tid: string): ThreadGroup {
    let g = this.threads.get(tid);
    if (!g) this.threads.set(tid, (g = { waiting: [] }));
    return g;
  }

  private link(child: Node, parent: Node): void {
    child.state = "linked";
    child.parent = parent;
    parent.children.push(child);
    if (parent.state === "decided") {
      this.stats.late++;
      this.assign(child, parent.trace!, parent.sampled!);
    }
  }

  private makeRoot(node: Node, at: number): void {
    node.state = "root";
    this.stats.roots++;
    this.schedule(at + this.cfg.settleMs, "decide", node);
  }

  private schedule(at: number, kind: TimerKind, node: Node): void {
    this.timers.push({ at, seq: this.seq++, kind, node });
  }

  private fire(t: Timer): void {
    const node = t.node;
    const span = node.span;
    if (t.kind === "expire") {
      // The span's group memberships end: relatives arriving later do not find it.
      const g = this.net.get(`${span.req_seq}:${span.resp_seq}`);
      if (g?.entry === node) g.entry = undefined;
      if (g?.exit === node) g.exit = undefined;
      if (g && !g.entry && !g.exit) this.net.delete(`${span.req_seq}:${span.resp_seq}`);
      const tid = span.thread_trace_id;
      const tg = tid ? this.threads.get(tid) : undefined;
      if (tg) {
        if (tg.owner === node) tg.owner = undefined;
        tg.waiting = tg.waiting.filter((m) => m !== node);
        if (!tg.owner && tg.waiting.length === 0) this.threads.delete(tid!);
      }
      if (node.state === "waiting") {
        this.stats.orphans++;
        this.makeRoot(node, t.at);
      } else if (node.state === "linked") {
        // Normally decided by then (a root arriving now decides a window and a settle later; the
        // second settle lets a decision reach it from another shard); if not, the tree never
        // resolves (a cycle).
        this.schedule(t.at + this.cfg.windowMs + 2 * this.cfg.settleMs, "horizon", node);
      }
    } else if (t.kind === "decide") {
      if (node.state === "root") this.decide(node);
    } else if (node.state === "linked") {
      node.parent!.children = node.parent!.children.filter((c) => c !== node);
      node.forced = true;
      this.stats.forced++;
      this.stats.roots++;
      this.decide(node);
    }
  }

  /** The root decides its trace: id (its own, or the app's nearest carrier's) and sampling. */
  private decide(root: Node): void {
    const carrier = this.nearestCarrier(root);
    const trace =
      this.cfg.useAppTraceId && carrier ? parseTraceId(carrier.span.app_trace_id!) : traceIdOfRoot(root.id, BigInt(root.span.start_ns));
    const sampled = carrier?.span.app_sampled ?? keepTrace(trace, this.cfg.samplingRate, this.threshold);
    this.assign(root, trace, sampled);
  }

  /** Breadth-first: the app-context carrier nearest the root, then earliest start, then smallest span id. */
  private nearestCarrier(root: Node): Node | undefined {
    const seen = new Set<Node>([root]);
    let level = [root];
    while (level.length > 0) {
      let best: Node | undefined;
      for (const n of level) {
        if (n.span.app_trace_id === undefined) continue;
        if (!best || carrierBefore(n, best)) best = n;
      }
      if (best) return best;
      const next: Node[] = [];
      for (const n of level) for (const c of n.children) if (!seen.has(c)) (seen.add(c), next.push(c));
      level = next;
    }
    return undefined;
  }

  private assign(start: Node, trace: TraceId, sampled: boolean): void {
    const stack = [start];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node.state === "decided") continue;
      node.state = "decided";
      node.trace = trace;
      node.sampled = sampled;
      const traceId = hex32(trace);
      const s = node.span;
      let parentId = node.parent && !node.forced ? hex16(node.parent.id) : "";
      // DESIGN.md and the scenarios: every carrier of app_parent_id nests under the app's span, even
      // one whose app trace id lost to a carrier nearer the root.
      if (this.cfg.useAppTraceId && s.app_parent_id) parentId = s.app_parent_id;
      this.out.push({ span_id: s.span_id, trace_id: traceId, parent_id: parentId, sampled });
      if (sampled) this.stats.sampledIn++;
      else this.stats.sampledOut++;
      for (const c of node.children) stack.push(c);
    }
  }
}

function carrierBefore(a: Node, b: Node): boolean {
  const sa = BigInt(a.span.start_ns);
  const sb = BigInt(b.span.start_ns);
  return sa !== sb ? sa < sb : a.id < b.id;
}

/** Timers in (due time, creation order): a plain binary heap. */
class TimerHeap {
  private readonly a: Timer[] = [];
  push(t: Timer): void {
    const a = this.a;
    a.push(t);
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!before(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  popDue(now: number): Timer | undefined {
    const a = this.a;
    if (a.length === 0 || a[0].at > now) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l], a[m])) m = l;
        if (r < a.length && before(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

const before = (x: Timer, y: Timer): boolean => x.at < y.at || (x.at === y.at && x.seq < y.seq);
