// The assembly stage: socket records → exchanges → eSpans, handed to the next stage (the thread
// linker) in record order. Holds the table of connections (conn.ts does the per-connection
// work), its idle sweep and its bound.
import type { CaptureRecord } from "../record.ts";
import type { ProcessEntry } from "../process/directory.ts";
import { Conn, type ConnEvents } from "./conn.ts";
import type { Exchange, ExchangeSink } from "./exchange.ts";
import { buildSpan, type SpanContext } from "./span.ts";

export interface AssemblerOptions {
  host: string;
  processes: { lookup(pid: number, comm: string): ProcessEntry };
  toUnixNs(monoNs: bigint): bigint;
  /** A response whose end was not seen is exported after its connection was quiet this long.
   * Default 5 s: well inside the linker's 20 s window. */
  idleFlushNs?: bigint;
  /** A connection quiet this long is dropped from the table; requests still waiting for a
   * response are abandoned. Default 10 min (long polls). */
  connIdleNs?: bigint;
  /** Connections tracked at most (the kernel's socket table holds 65,536). */
  maxConns?: number;
}

export interface AssemblerStats {
  records: number;
  conns: number;
  spans: number;
  /** Response messages with no request before them (the agent joined mid-conversation). */
  orphan_responses: number;
  /** Requests that never got a response (closed, evicted). */
  no_response: number;
  /** Spans exported at the idle timeout, their response's end unseen. */
  idle_flushed: number;
  conns_evicted: number;
  /** Spans of processes found not traced after all (see process/directory.ts). */
  spans_filtered: number;
}

const LOW_53 = (1n << 53n) - 1n;
/** A record's connId parts (CaptureRecord.connKey and connTop), from the BigInt when the record
 * does not give them. */
const keyOf = (r: CaptureRecord): number => r.connKey ?? Number(r.connId & LOW_53);
const topOf = (r: CaptureRecord): number => r.connTop ?? Number(r.connId >> 53n);

export class Assembler {
  readonly stats: AssemblerStats = {
    records: 0, conns: 0, spans: 0, orphan_responses: 0, no_response: 0, idle_flushed: 0,
    conns_evicted: 0, spans_filtered: 0,
  };
  /** Connections by their id's low 53 bits, a number: a Map keyed by BigInts hashes each in
   * V8's runtime and compares them by a runtime call (with the BigInt read per record, ~2.5% of
   * the agent's CPU). */
  private readonly conns = new Map<number, Conn>();
  /** The few whose low 53 bits another live connection has (random ids: about n/2^53 of them). */
  private readonly collided = new Map<bigint, Conn>();
  /** The same connections, least recently active first: a list through Conn.older/newer, so
   * that activity moves a connection to the end without touching the Map. */
  private oldest: Conn | undefined;
  private newest: Conn | undefined;
  private readonly events: ConnEvents;
  private readonly idleFlushNs: bigint;
  private readonly connIdleNs: bigint;
  private readonly maxConns: number;
  private flushingIdle = false;
  /** Reused for every span (buildSpan reads it and keeps nothing of it). */
  private readonly spanContext: SpanContext;

  constructor(
    private readonly next: ExchangeSink,
    private readonly opts: AssemblerOptions,
  ) {
    this.idleFlushNs = opts.idleFlushNs ?? 5_000_000_000n;
    this.connIdleNs = opts.connIdleNs ?? 600_000_000_000n;
    this.maxConns = opts.maxConns ?? 65_536;
    this.spanContext = { host: opts.host, processName: "", service: "", toUnixNs: opts.toUnixNs };
    this.events = {
      requestStarted: (x) => {
        x.proc = opts.processes.lookup(x.pid, x.comm);
        next.requestStarted(x);
      },
      responseStarted: (x) => next.responseStarted(x),
      finished: (x) => this.finish(x),
      abandoned: (x) => {
        this.stats.no_response++;
        next.ended(x, null);
      },
      orphanResponse: () => this.stats.orphan_responses++,
    };
  }

  /** Records in ring-buffer order (only data and close records matter here). */
  push(records: readonly CaptureRecord[]): void {
    for (const r of records) this.record(r);
  }

  record(r: CaptureRecord): void {
    const kind = r.kind;
    if (kind === "data") {
      if (r.dir === "none") return;
      this.stats.records++;
      this.conn(r).onData(r);
    } else if (kind === "close") {
      this.stats.records++;
      const c = this.find(r, keyOf(r), topOf(r));
      if (!c) return;
      c.onClose(r);
      this.forget(c);
      this.unlink(c);
    }
    this.stats.conns = this.conns.size + this.collided.size;
  }

  /**
   * Exports responses of quiet connections and drops long-quiet connections. `nowNs` is
   * CLOCK_MONOTONIC (process.hrtime.bigint()), the clock of the records.
   */
  sweep(nowNs: bigint): void {
    for (let c = this.oldest; c !== undefined; ) {
      const next = c.newer;
      const quiet = nowNs - c.lastNs;
      if (quiet < this.idleFlushNs) break; // the rest were active more recently
      this.flushingIdle = true;
      c.flushIdle();
      this.flushingIdle = false;
      if (quiet >= this.connIdleNs) {
        c.evict();
        this.forget(c);
        this.unlink(c);
      }
      c = next;
    }
    this.stats.conns = this.conns.size + this.collided.size;
  }

  /** Ends every connection: responses seen are exported, requests without one abandoned. */
  flushAll(): void {
    for (const c of [...this.conns.values(), ...this.collided.values()]) {
      this.flushingIdle = true;
      c.flushIdle();
      this.flushingIdle = false;
      c.evict();
    }
    this.conns.clear();
    this.collided.clear();
    this.oldest = this.newest = undefined;
    this.stats.conns = 0;
  }

  /** The connection of record `r` (key and top: its id's parts), or undefined. */
  private find(r: CaptureRecord, key: number, top: number): Conn | undefined {
    const c = this.conns.get(key);
    if (c !== undefined && c.top === top) return c;
    return this.collided.size === 0 ? undefined : this.collided.get(r.connId);
  }

  /** Removes `c` from the table (not from the activity list). */
  private forget(c: Conn): void {
    if (this.conns.get(c.key) === c) this.conns.delete(c.key);
    else this.collided.delete(c.id);
  }

  private conn(r: CaptureRecord): Conn {
    const key = keyOf(r);
    const top = topOf(r);
    let c = this.find(r, key, top);
    if (c) {
      if (c !== this.newest) {
        this.unlink(c);
        this.append(c);
      }
      return c;
    }
    c = new Conn(r.connId, key, top, this.events);
    if (this.conns.size + this.collided.size >= this.maxConns && this.oldest) {
      const old = this.oldest;
      this.forget(old);
      this.unlink(old);
      old.evict();
      this.stats.conns_evicted++;
    }
    if (this.conns.has(key)) this.collided.set(c.id, c);
    else this.conns.set(key, c);
    this.append(c);
    return c;
  }

  private append(c: Conn): void {
    c.older = this.newest;
    c.newer = undefined;
    if (this.newest) this.newest.newer = c;
    else this.oldest = c;
    this.newest = c;
  }

  private unlink(c: Conn): void {
    if (c.older) c.older.newer = c.newer;
    else this.oldest = c.newer;
    if (c.newer) c.newer.older = c.older;
    else this.newest = c.older;
    c.older = c.newer = undefined;
  }

  private finish(x: Exchange): void {
    if (this.flushingIdle) this.stats.idle_flushed++;
    const proc = x.proc ?? this.opts.processes.lookup(x.pid, x.comm);
    if (!proc.traced) {
      this.stats.spans_filtered++;
      this.next.ended(x, null);
      return;
    }
    this.stats.spans++;
    const ctx = this.spanContext;
    ctx.processName = proc.processName;
    ctx.service = proc.service;
    this.next.ended(x, buildSpan(x, ctx));
  }
}
