/**
 * Synthetic eBPF traffic with ground truth, for the linker's property tests and benchmarks.
 *
 * The model plays requests through a fixed topology (topology.ts) the way the agents would see
 * them: thread-per-request servers, keep-alive pools with real TCP seq arithmetic (tcp.ts),
 * fan-out, databases, untraced callers and hops, cron-like client roots, NAT / service VIPs and
 * W3C-instrumented services. Everything is a pure function of the options (seeded PRNG), and the
 * truth comes from the model itself, never from re-deriving it out of the spans.
 */
import type { ESpan } from "../../contract/espan.ts";
import { NsClock } from "./clock.ts";
import { Rng, mix32 } from "./rng.ts";
import { type Conn, ConnPool, PortAllocator, advance, initialSeq } from "./tcp.ts";
import { type Host, MAX_THREADS, type Proc, type Route, type Topology, buildTopology } from "./topology.ts";
import { type AppCtx, type Exchange, makeSpan } from "./spans.ts";
import { PendingSpans } from "./pending.ts";

export interface TrafficOptions {
  seed: number;
  /** Number of root requests to generate (an untraced hop inside one adds another tree). */
  traces: number;
  hosts?: number;
  services?: number;
  /** Share of services (and clients) instrumented with W3C propagation (default 0). */
  appInstrumentedFraction?: number;
  /** Share of app trace contexts created with sampled=false (default 0.2). */
  notSampledFraction?: number;
  /** Share of service→service calls routed through an untraced gateway: the callee's entry becomes a root (default 0.05). */
  untracedCallerFraction?: number;
  /** Share of root requests made by a traced cron-like client: an exit with no thread id is the root (default 0.1). */
  clientRootFraction?: number;
  /** Share of a service's outgoing calls that go to an (untraced) database (default 0.3). */
  dbCallFraction?: number;
  /** Share of connections to a service dialled through a service VIP with SNAT (default 0.2). */
  natFraction?: number;
  /** Call-graph depth in service levels (default 5). */
  maxDepth?: number;
  /** Most outgoing calls an entry makes (default 4). */
  maxFanout?: number;
  /** Start time of the first trace (default 1760000000000000000n). */
  baseNs?: bigint;
  /** Mean spacing between root requests (default 1 ms). */
  traceIntervalNs?: bigint;
  /** Share of multi-call entries that make their calls in parallel (default 0.3). */
  parallelFraction?: number;
  /** Share of external requests that already carry a traceparent (default 0.2 when appInstrumentedFraction > 0, else 0). */
  externalContextFraction?: number;
  /** Agents ship a batch every this many ns (default 200 ms); emitNs falls on the next flush. */
  batchIntervalNs?: bigint;
}

export interface Truth {
  /** eBPF parent span_id, "" for a root (entry → exit of its net group; exit → entry of its thread id). */
  parent: string;
  /** span_id of its tree's root. */
  root: string;
}

export interface Traffic {
  /** In the order the agents would emit them: by end time (children before parents). */
  spans: ESpan[];
  /**
   * Per span (same index): when its agent ships it, the host's next batch flush after the span
   * ends. Not sorted across hosts: to replay arrival order, sort by it (stable).
   */
  emitNs: bigint[];
  /** Ground truth for every span of `spans`. */
  truth: Map<string, Truth>;
}

/** The thread a call is made from: an entry's worker thread, a client thread, or an untraced caller. */
interface Caller {
  proc: Proc;
  tid: number;
  /** The open entry's thread_trace_id; undefined for client roots and untraced callers. */
  ttid: string | undefined;
  entryId: string;
  rootId: string;
}

interface Params {
  traces: number;
  hosts: number;
  services: number;
  appInstrumentedFraction: number;
  notSampledFraction: number;
  untracedCallerFraction: number;
  clientRootFraction: number;
  dbCallFraction: number;
  natFraction: number;
  maxDepth: number;
  maxFanout: number;
  parallelFraction: number;
  externalContextFraction: number;
  baseNs: bigint;
  intervalNs: number;
  batchIntervalNs: number;
}

const share = (v: number | undefined, dflt: number): number => Math.min(1, Math.max(0, v ?? dflt));
const atLeast = (v: number | undefined, dflt: number, min: number): number => Math.max(min, Math.floor(v ?? dflt));

function resolve(o: TrafficOptions): Params {
  const app = share(o.appInstrumentedFraction, 0);
  return {
    traces: atLeast(o.traces, 0, 0),
    hosts: atLeast(o.hosts, 4, 1),
    services: atLeast(o.services, 12, 1),
    appInstrumentedFraction: app,
    notSampledFraction: share(o.notSampledFraction, 0.2),
    untracedCallerFraction: share(o.untracedCallerFraction, 0.05),
    clientRootFraction: share(o.clientRootFraction, 0.1),
    dbCallFraction: share(o.dbCallFraction, 0.3),
    natFraction: share(o.natFraction, 0.2),
    maxDepth: atLeast(o.maxDepth, 5, 1),
    maxFanout: atLeast(o.maxFanout, 4, 0),
    parallelFraction: share(o.parallelFraction, 0.3),
    externalContextFraction: share(o.externalContextFraction, app > 0 ? 0.2 : 0),
    baseNs: o.baseNs ?? 1_760_000_000_000_000_000n,
    intervalNs: Number(o.traceIntervalNs ?? 1_000_000n),
    batchIntervalNs: Number(o.batchIntervalNs ?? 200_000_000n),
  };
}

/** Same host: loopback-ish; across hosts: a datacenter hop. */
const latency = (rng: Rng, a: Host, b: Host): number =>
  a === b ? rng.int(15_000, 60_000) : rng.int(80_000, 400_000);

function httpStatus(rng: Rng, method: string | undefined): number {
  const r = rng.float();
  if (r < 0.01) return 500;
  if (r < 0.025) return 404;
  return method === "POST" && r < 0.3 ? 201 : 200;
}

/**
 * The running model. Spans wait in `pending` until no later root can produce a span that ends
 * before them; then they are released in end-time order. That makes the chunked output
 * independent of the chunk size.
 */
class Simulation {
  private readonly rng: Rng;
  /** Root arrival times come from their own stream, so reading ahead never shifts the main one. */
  private readonly arrivals: Rng;
  private readonly topo: Topology;
  private readonly clock: NsClock;
  private readonly pools = new Map<number, ConnPool>();
  private readonly ports: PortAllocator;
  /** Start (ns offset) of the next root request. */
  nextRoot = 0;
  private readonly pending: PendingSpans;

  constructor(private readonly p: Params, seed: number) {
    this.rng = new Rng(seed);
    this.arrivals = new Rng(mix32(seed >>> 0) ^ 0x5eed);
    this.clock = new NsClock(p.baseNs);
    this.pending = new PendingSpans(this.clock);
    this.topo = buildTopology(this.rng, p);
    this.ports = new PortAllocator(this.rng);
  }

  runTraces(n: number): void {
    for (let i = 0; i < n; i++) {
      this.rootRequest(this.nextRoot);
      // Jittered arrivals (0.5–1.5 × the mean), never going back in time.
      this.nextRoot += Math.max(1, Math.round(this.p.intervalNs * (0.5 + this.arrivals.float())));
    }
  }

  release(before: number, into: Traffic): Traffic {
    this.pending.release(before, into);
    return into;
  }

  /** A finished span, with its truth, waits for release. */
  private push(s: ESpan, end: number, host: Host, parent: string, root: string): void {
    this.pending.push(s, end, this.emitAt(host, end), { parent, root });
  }

  /**
   * The host's next agent flush at or after `end`, plus a per-batch network delay: spans of one
   * batch arrive together. Hashed, not drawn from the PRNG, so batches need no shared state.
   */
  private emitAt(host: Host, end: number): number {
    const F = this.p.batchIntervalNs;
    if (F <= 0) return end;
    const k = Math.ceil((end - host.flushPhase) / F);
    return host.flushPhase + k * F + 200_000 + (mix32(Math.imul(host.idx + 1, 0x9e3779b1) ^ k) % 3_000_000);
  }

  private rootRequest(t: number): void {
    const { rng, topo, p } = this;
    if (topo.clients.length > 0 && rng.chance(p.clientRootFraction)) {
      // A cron job's thread has no open entry: its exit carries no thread id and is the root.
      const client = rng.pick(topo.clients);
      const ti = this.takeThread(client, t);
      const caller: Caller = { proc: client, tid: client.pid + ti, ttid: undefined, entryId: "", rootId: "" };
      const ctx = client.instrumented ? this.newContext() : null;
      const end = this.call(caller, rng.pick(topo.clientTargets), null, t, ctx);
      client.threads[ti] = end;
    } else {
      // Browsers / ingress: untraced, so the service's entry is the root.
      const ext = rng.pick(topo.externals);
      const caller: Caller = { proc: ext, tid: 0, ttid: undefined, entryId: "", rootId: "" };
      const ctx = rng.chance(p.externalContextFraction) ? this.newContext() : null;
      this.call(caller, rng.pick(topo.entryServices), null, t, ctx);
    }
  }

  /** A context created where none came in: an instrumented root, or a traced-elsewhere external caller. */
  private newContext(): AppCtx {
    return { traceId: this.rng.hex32(), parentId: this.rng.hex16(), sampled: !this.rng.chance(this.p.notSampledFraction) };
  }

  /**
   * One request from `caller` to `hop` (to `via`'s target through an untraced gateway when `via`
   * is set), starting at t. Returns when the caller has read the whole response.
   */
  private call(caller: Caller, hop: Proc, via: Proc | null, t: number, ctx: AppCtx | null, asked?: Route): number {
    const rng = this.rng;
    const target = via ?? hop;
    const route = asked ?? rng.pick(target.routes);
    const isDb = hop.kind === "db";
    const reqBytes = isDb ? rng.skewInt(24, 1_200) : route.method === "POST" || route.method === "PUT" ? rng.skewInt(300, 40_000) : rng.skewInt(150, 1_500);
    const respBytes = isDb ? rng.skewInt(8, 16_000) : rng.skewInt(100, 120_000);
    const code = isDb ? (rng.chance(0.005) ? 1 : 0) : httpStatus(rng, route.method);

    const pool = this.poolOf(caller.proc, hop);
    const conn = pool.acquire(t) ?? pool.add(this.open(caller.proc, hop));
    const reqSeq = conn.clientSeq;
    const respSeq = conn.serverSeq;
    advance(conn, reqBytes, respBytes);
    const exitId = caller.proc.traced ? rng.hex16() : "";
    const rootId = exitId === "" ? "" : caller.rootId || exitId;
    const x: Exchange = { conn, proto: target.proto, route, code, reqSeq, respSeq, reqBytes, respBytes, exitId, rootId, ctx };

    const lat = latency(rng, caller.proc.host, hop.host);
    const arrive = t + lat;
    let served: number;
    if (hop.kind === "service") {
      served = this.serve(hop, arrive, x);
    } else if (hop.kind === "db") {
      served = arrive + (hop.proto === "redis" ? rng.skewInt(15_000, 400_000) : rng.skewInt(80_000, 6_000_000));
    } else {
      // Untraced gateway: forwards the request (headers included) on its own pooled connection.
      const fwd = rng.int(30_000, 300_000);
      const gw: Caller = { proc: hop, tid: 0, ttid: undefined, entryId: "", rootId: "" };
      served = this.call(gw, via!, null, arrive + fwd, ctx, route) + fwd;
    }
    const end = served + lat;
    pool.release(conn, end);

    if (exitId !== "") {
      const s = makeSpan("exit", exitId, caller.ttid, this.clock.decimal(t), end - t, caller.proc, caller.tid, x);
      this.push(s, end, caller.proc.host, caller.entryId, rootId);
    }
    return end;
  }

  /** A thread-per-request server handles one request: its entry and the calls made from its thread. */
  private serve(svc: Proc, t: number, x: Exchange): number {
    const { rng, p } = this;
    const ti = this.takeThread(svc, t);
    const entryId = rng.hex16();
    const ttid = rng.hex16();
    const rootId = x.exitId === "" ? entryId : x.rootId;
    const self: Caller = { proc: svc, tid: svc.pid + ti, ttid, entryId, rootId };

    // An instrumented service adopts the incoming context or starts its own; others forward nothing.
    let mine: AppCtx | null = null;
    if (svc.instrumented) mine = x.ctx ?? this.newContext();

    let cursor = t + rng.skewInt(20_000, 1_500_000); // parse + work before the first call
    const k = this.fanout(svc);
    const parallel = k > 1 && rng.chance(p.parallelFraction);
    let joined = cursor;
    for (let i = 0; i < k; i++) {
      let hop: Proc;
      let via: Proc | null = null;
      if (rng.chance(p.dbCallFraction)) {
        hop = rng.pick(svc.dbs);
      } else if (svc.callees.length === 0) {
        continue; // a leaf service: this slot would have been a service call
      } else {
        hop = rng.pick(svc.callees);
        if (rng.chance(p.untracedCallerFraction)) {
          via = hop;
          hop = rng.pick(this.topo.proxies);
        }
      }
      // Per outgoing HTTP call the app tracer makes a client span and sends its id; SQL/RESP carry no headers.
      const out = mine && hop.kind !== "db" ? { traceId: mine.traceId, parentId: rng.hex16(), sampled: mine.sampled } : null;
      if (parallel) {
        // Non-blocking sockets from the same thread: calls overlap, each on its own connection.
        const end = this.call(self, hop, via, cursor + i * rng.int(3_000, 30_000), out);
        if (end > joined) joined = end;
      } else {
        cursor = this.call(self, hop, via, cursor, out) + rng.int(5_000, 120_000);
      }
    }
    if (parallel) cursor = joined;
    const end = cursor + rng.skewInt(10_000, 600_000);
    svc.threads[ti] = end;

    const s = makeSpan("entry", entryId, ttid, this.clock.decimal(t), end - t, svc, svc.pid + ti, x);
    this.push(s, end, svc.host, x.exitId, rootId);
    return end;
  }

  /**
   * How many calls an entry makes: deeper services call less (more leaves), so trees stay a
   * around ten spans on average (like the simulated scenarios) while still reaching maxDepth.
   */
  private fanout(svc: Proc): number {
    const p = this.p;
    if (p.maxFanout === 0) return 0;
    const idle = 0.15 + (0.55 * svc.level) / Math.max(1, p.maxDepth - 1);
    return this.rng.chance(idle) ? 0 : this.rng.int(1, p.maxFanout);
  }

  /** A worker thread free at t (tid = pid + index); the pool grows under load, like a server's. */
  private takeThread(proc: Proc, t: number): number {
    const th = proc.threads;
    for (let i = 0; i < th.length; i++) {
      if (th[i] <= t) {
        th[i] = Infinity;
        return i;
      }
    }
    if (th.length < MAX_THREADS) {
      th.push(Infinity);
      return th.length - 1;
    }
    // Saturated (only with absurd load): reuse the thread that frees first.
    let best = 0;
    for (let i = 1; i < th.length; i++) if (th[i] < th[best]) best = i;
    th[best] = Infinity;
    return best;
  }

  private poolOf(from: Proc, to: Proc): ConnPool {
    const key = from.idx * 65536 + to.idx;
    let pool = this.pools.get(key);
    if (!pool) this.pools.set(key, (pool = new ConnPool()));
    return pool;
  }

  /** A new TCP connection: fresh ISNs both ways, an ephemeral port, and maybe a VIP with SNAT. */
  private open(from: Proc, to: Proc): Conn {
    const rng = this.rng;
    const clientPort = this.ports.take(from.ip);
    const nat = to.kind === "service" && rng.chance(this.p.natFraction);
    // Under SNAT the server sees the client's node address and a port the node picked.
    const peerIp = nat ? from.host.nodeIp : from.ip;
    return {
      clientIp: from.ip,
      clientPort,
      dialIp: nat ? to.vip : to.ip,
      dialPort: nat ? to.vipPort : to.port,
      serverIp: to.ip,
      serverPort: to.port,
      peerIp,
      peerPort: nat ? this.ports.take(peerIp) : clientPort,
      nat,
      clientSeq: (initialSeq(rng) + 1) >>> 0,
      serverSeq: (initialSeq(rng) + 1) >>> 0,
      busyUntil: -Infinity,
      requestsLeft: rng.int(20, 400),
    };
  }
}

const emptyTraffic = (): Traffic => ({ spans: [], emitNs: [], truth: new Map() });

/** Runs the model `step` roots at a time; yields after each step the time before which spans are final. */
function* steps(sim: Simulation, traces: number, step: number): Generator<number> {
  for (let made = 0; made < traces; ) {
    const n = Math.min(step, traces - made);
    sim.runTraces(n);
    made += n;
    // No later root starts before nextRoot, and spans start no earlier than their root.
    yield made < traces ? sim.nextRoot : Infinity;
  }
}

/** The whole traffic at once (spans ordered by end time). */
export function generateTraffic(opts: TrafficOptions): Traffic {
  const p = resolve(opts);
  const sim = new Simulation(p, opts.seed);
  const all = emptyTraffic();
  // Released in small steps: many small end-time sorts are cheaper than one over everything.
  for (const before of steps(sim, p.traces, 256)) sim.release(before, all);
  return all;
}

/**
 * Yields the same traffic in chunks without holding it all: for benchmarks of 1M+ spans.
 * Concatenating the chunks gives exactly generateTraffic's spans, emitNs and truth (a chunk's
 * truth may name parents of earlier or later chunks). Small chunks (100–1000 traces) are
 * fastest: spans held until their chunk is released survive into V8's old generation, and
 * that, not the model, dominates the cost of large chunks.
 */
export function* generateTrafficChunks(opts: TrafficOptions, chunkTraces: number): Generator<Traffic> {
  const p = resolve(opts);
  const sim = new Simulation(p, opts.seed);
  for (const before of steps(sim, p.traces, Math.max(1, Math.floor(chunkTraces)))) {
    const chunk = sim.release(before, emptyTraffic());
    if (chunk.spans.length > 0) yield chunk;
  }
}
