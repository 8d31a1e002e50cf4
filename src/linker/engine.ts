/**
 * The host side of the WASM linker engine (assembly/): one instance is one shard. Encodes
 * eSpans into the engine's fixed-size records, runs it, and decodes what it decided. Works
 * the same in Node (the CLI, tests, benchmarks) and in workerd (a LinkerShard Durable Object):
 * the caller brings the compiled `WebAssembly.Module` (workerd refuses to compile at run time).
 */
import type { ESpan } from "../../contract/espan.ts";
import type { LinkConfig, LinkResult, LinkStats } from "./config.ts";
import { samplingThreshold } from "./ids.ts";

/** The engine's exports, as assembly/index.ts declares them. */
interface EngineExports {
  memory: WebAssembly.Memory;
  init(shard: number, shards: number, windowMs: bigint, settleMs: bigint, threshold: bigint, useApp: number, keepAll: number, netSlots: number, threadSlots: number): void;
  tableCapacity(i: number): number;
  inputBuffer(n: number): number;
  ingest(n: number): void;
  tick(nowMs: bigint): void;
  nextDeadline(): bigint;
  inboxBuffer(n: number): number;
  accept(n: number): void;
  outputCount(): number;
  outputPtr(): number;
  outputClear(): void;
  messageCount(): number;
  messagePtr(): number;
  messageClear(): void;
  stat(i: number): bigint;
  heldRecords(): bigint;
  heldAppRecords(): bigint;
  decidedHeld(): bigint;
  pendingTimers(): bigint;
  memoryUsed(): number;
  restored(): number;
  checkTables(): number;
  memoryPart(i: number): bigint;
  netShard(key: bigint, shards: number): number;
  threadShard(tid: bigint, shards: number): number;
  [global: string]: unknown;
}

/** Record layout read from the module's exported globals (assembly/layout.ts). */
interface Layout {
  IN_SIZE: number; IN_SPAN_ID: number; IN_KEY: number; IN_TID: number; IN_START: number; IN_ARRIVAL: number;
  IN_APP_HI: number; IN_APP_LO: number; IN_APP_PARENT: number; IN_REF: number; IN_FLAGS: number;
  IN_F_ENTRY: number; IN_F_HAS_TID: number; IN_F_APP_TRACE: number; IN_F_APP_PARENT: number;
  IN_F_HAS_SAMPLED: number; IN_F_SAMPLED: number;
  OUT_SIZE: number; OUT_SPAN_ID: number; OUT_TRACE_HI: number; OUT_TRACE_LO: number; OUT_PARENT: number;
  OUT_REF: number; OUT_FLAGS: number; OUT_F_SAMPLED: number; OUT_F_HAS_PARENT: number;
  MSG_SIZE: number; MSG_DEST: number; STATS: number;
}

const LAYOUT_KEYS: (keyof Layout)[] = [
  "IN_SIZE", "IN_SPAN_ID", "IN_KEY", "IN_TID", "IN_START", "IN_ARRIVAL", "IN_APP_HI", "IN_APP_LO", "IN_APP_PARENT",
  "IN_REF", "IN_FLAGS", "IN_F_ENTRY", "IN_F_HAS_TID", "IN_F_APP_TRACE", "IN_F_APP_PARENT", "IN_F_HAS_SAMPLED",
  "IN_F_SAMPLED", "OUT_SIZE", "OUT_SPAN_ID", "OUT_TRACE_HI", "OUT_TRACE_LO", "OUT_PARENT", "OUT_REF", "OUT_FLAGS",
  "OUT_F_SAMPLED", "OUT_F_HAS_PARENT", "MSG_SIZE", "MSG_DEST", "STATS",
];

/** One decided span as raw numbers: what a Durable Object needs, without string work. */
export interface RawResult {
  ref: number;
  spanId: string;
  traceId: string;
  parentId: string;
  sampled: boolean;
}

export interface EngineOptions {
  shard?: number;
  shards?: number;
}

/**
 * The engine aborted: a bug (it never throws on bad input, it counts it). Its memory may be half
 * updated: the instance is not to be used again.
 */
export class EngineBug extends Error {}

export class LinkerEngine {
  readonly shard: number;
  readonly shards: number;
  private readonly x: EngineExports;
  private readonly L: Layout;

  constructor(module: WebAssembly.Module, readonly config: LinkConfig, opts: EngineOptions = {}, snapshot?: Uint8Array) {
    this.shard = opts.shard ?? 0;
    this.shards = opts.shards ?? 1;
    const instance = new WebAssembly.Instance(module, {
      env: {
        engine_abort(_code: number, line: number) {
          throw new EngineBug(`linker engine aborted (a bug) at assembly line ${line}`);
        },
      },
    });
    this.x = instance.exports as unknown as EngineExports;
    const L = {} as Layout;
    for (const k of LAYOUT_KEYS) L[k] = (this.x[k] as WebAssembly.Global).value as number;
    this.L = L;
    if (snapshot) this.restore(snapshot);
    else this.reset();
  }

  /**
   * Fresh state, keeping the instance and the memory it has grown (benchmarks reuse warm memory).
   * `keepTables`: the hash tables start at the size they had grown to, as a running shard's have.
   */
  reset(opts: { keepTables?: boolean } = {}): void {
    const rate = this.config.samplingRate;
    const keep = opts.keepTables ?? false;
    this.x.init(this.shard, this.shards, BigInt(this.config.windowMs), BigInt(this.config.settleMs), samplingThreshold(rate),
      this.config.useAppTraceId ? 1 : 0, rate >= 1 ? 1 : 0, keep ? this.x.tableCapacity(0) : 0, keep ? this.x.tableCapacity(1) : 0);
  }

  /** Registers spans that arrived at `arrivalMs`; `refs[i]` is echoed in span i's result. */
  ingest(spans: readonly ESpan[], arrivalMs: number, refs?: ArrayLike<number>): void {
    const n = spans.length;
    if (n === 0) return;
    const ptr = this.x.inputBuffer(n);
    this.encodeInto(new DataView(this.x.memory.buffer, ptr, n * this.L.IN_SIZE), spans, arrivalMs, refs);
    this.x.ingest(n);
  }

  /** The engine's input records for these spans, to keep or to send elsewhere (ingestRecords). */
  encode(spans: readonly ESpan[], arrivalMs: number, refs?: ArrayLike<number>): Uint8Array {
    const bytes = new Uint8Array(spans.length * this.L.IN_SIZE);
    this.encodeInto(new DataView(bytes.buffer), spans, arrivalMs, refs);
    return bytes;
  }

  /** Input records made by `encode` (whole records, concatenated). */
  ingestRecords(bytes: Uint8Array): void {
    const n = bytes.byteLength / this.L.IN_SIZE;
    if (!Number.isInteger(n)) throw new Error(`input of ${bytes.byteLength} bytes is not whole records`);
    if (n === 0) return;
    const ptr = this.x.inputBuffer(n); // may grow memory: take the buffer after
    new Uint8Array(this.x.memory.buffer, ptr, bytes.byteLength).set(bytes);
    this.x.ingest(n);
  }

  private encodeInto(dv: DataView, spans: readonly ESpan[], arrivalMs: number, refs?: ArrayLike<number>): void {
    const L = this.L;
    const n = spans.length;
    const arrival = BigInt(Math.floor(arrivalMs));
    for (let i = 0; i < n; i++) {
      const s = spans[i];
      const o = i * L.IN_SIZE;
      putHex64(dv, o + L.IN_SPAN_ID, s.span_id);
      dv.setUint32(o + L.IN_KEY, s.req_seq, true);
      dv.setUint32(o + L.IN_KEY + 4, s.resp_seq, true);
      let flags = s.kind === "entry" ? L.IN_F_ENTRY : 0;
      if (s.thread_trace_id) {
        putHex64(dv, o + L.IN_TID, s.thread_trace_id);
        flags |= L.IN_F_HAS_TID;
      } else putZero64(dv, o + L.IN_TID);
      if (!s.app_trace_id) {
        putZero64(dv, o + L.IN_APP_HI);
        putZero64(dv, o + L.IN_APP_LO);
      }
      if (!s.app_parent_id) putZero64(dv, o + L.IN_APP_PARENT);
      dv.setBigUint64(o + L.IN_START, BigInt(s.start_ns), true);
      dv.setBigInt64(o + L.IN_ARRIVAL, arrival, true);
      if (s.app_trace_id) {
        putHex64(dv, o + L.IN_APP_HI, s.app_trace_id, 0);
        putHex64(dv, o + L.IN_APP_LO, s.app_trace_id, 16);
        flags |= L.IN_F_APP_TRACE;
      }
      if (s.app_parent_id) {
        putHex64(dv, o + L.IN_APP_PARENT, s.app_parent_id);
        flags |= L.IN_F_APP_PARENT;
      }
      if (s.app_sampled !== undefined && s.app_sampled !== null) {
        flags |= L.IN_F_HAS_SAMPLED | (s.app_sampled ? L.IN_F_SAMPLED : 0);
      }
      dv.setUint32(o + L.IN_REF, refs ? refs[i] : i, true);
      dv.setUint32(o + L.IN_FLAGS, flags, true);
    }
  }

  /** Runs every timer due at `nowMs`. */
  tick(nowMs: number): void {
    this.x.tick(BigInt(Math.floor(nowMs)));
  }

  /** When the engine's next timer is due (ms), or Infinity. */
  nextDeadline(): number {
    const at = this.x.nextDeadline();
    return at >= BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(at);
  }

  /**
   * Spans decided since the last call. `sampledIdsOnly`: the ids of sampled-out spans are left
   * empty (a shard only marks those done; formatting their ids was a third of its drain).
   */
  drain(sampledIdsOnly = false): RawResult[] {
    const L = this.L;
    const n = this.x.outputCount();
    const out: RawResult[] = new Array(n);
    const dv = new DataView(this.x.memory.buffer, this.x.outputPtr(), n * L.OUT_SIZE);
    for (let i = 0; i < n; i++) {
      const o = i * L.OUT_SIZE;
      const flags = dv.getUint32(o + L.OUT_FLAGS, true);
      const sampled = (flags & L.OUT_F_SAMPLED) !== 0;
      const ids = sampled || !sampledIdsOnly;
      out[i] = {
        ref: dv.getUint32(o + L.OUT_REF, true),
        spanId: ids ? hex64(dv, o + L.OUT_SPAN_ID) : "",
        traceId: ids ? hex64(dv, o + L.OUT_TRACE_HI) + hex64(dv, o + L.OUT_TRACE_LO) : "",
        parentId: ids && flags & L.OUT_F_HAS_PARENT ? hex64(dv, o + L.OUT_PARENT) : "",
        sampled,
      };
    }
    this.x.outputClear();
    return out;
  }

  /** Discards the decided spans, returning how many there were (benchmarks). */
  drainCount(): number {
    const n = this.x.outputCount();
    this.x.outputClear();
    return n;
  }

  drainResults(): LinkResult[] {
    return this.drain().map((r) => ({ span_id: r.spanId, trace_id: r.traceId, parent_id: r.parentId, sampled: r.sampled }));
  }

  /** Messages for other shards since the last call, grouped by destination shard. */
  drainMessages(): Map<number, Uint8Array> {
    const L = this.L;
    const n = this.x.messageCount();
    const byDest = new Map<number, Uint8Array[]>();
    const bytes = new Uint8Array(this.x.memory.buffer, this.x.messagePtr(), n * L.MSG_SIZE);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) {
      const dest = dv.getUint32(i * L.MSG_SIZE + L.MSG_DEST, true);
      let list = byDest.get(dest);
      if (!list) byDest.set(dest, (list = []));
      list.push(bytes.subarray(i * L.MSG_SIZE, (i + 1) * L.MSG_SIZE));
    }
    const out = new Map<number, Uint8Array>();
    for (const [dest, list] of byDest) {
      const buf = new Uint8Array(list.length * L.MSG_SIZE);
      list.forEach((m, i) => buf.set(m, i * L.MSG_SIZE));
      out.set(dest, buf);
    }
    this.x.messageClear();
    return out;
  }

  /** Messages from other shards (concatenated records, as drainMessages gives them). */
  accept(messages: Uint8Array): void {
    const n = messages.byteLength / this.L.MSG_SIZE;
    if (!Number.isInteger(n)) throw new Error(`message batch of ${messages.byteLength} bytes is not whole records`);
    if (n === 0) return;
    const ptr = this.x.inboxBuffer(n);
    new Uint8Array(this.x.memory.buffer, ptr, messages.byteLength).set(messages);
    this.x.accept(n);
  }

  /** Bytes of one message record. */
  get messageSize(): number {
    return this.L.MSG_SIZE;
  }

  get pendingMessages(): number {
    return this.x.messageCount();
  }

  stats(): LinkStats & { messagesSent: number; messagesReceived: number; stubs: number } {
    const s = (i: number) => Number(this.x.stat(i));
    return {
      received: s(0), duplicates: s(1), conflicts: s(2), roots: s(3), orphans: s(4), forced: s(5), late: s(6),
      sampledIn: s(7), sampledOut: s(8), messagesSent: s(9), messagesReceived: s(10), stubs: s(11),
    };
  }

  /** Span records held: waiting, or decided and kept for late relatives until their window ends. */
  get heldRecords(): number {
    return Number(this.x.heldRecords());
  }
  /** Held records already decided (kept for late relatives until their window ends). */
  get decidedHeld(): number {
    return Number(this.x.decidedHeld());
  }
  get pendingTimers(): number {
    return Number(this.x.pendingTimers());
  }
  /** Where the engine's memory goes, in bytes (benchmarks). */
  memoryBreakdown(): Record<string, number> {
    const names = ["recordPages", "appPages", "netTable", "threadTable", "timers", "buffers", "freeRegions"];
    return Object.fromEntries(names.map((n, i) => [n, Number(this.x.memoryPart(i))]));
  }

  /** Bytes of WASM linear memory the state occupies (the snapshot size). */
  get memoryUsed(): number {
    return this.x.memoryUsed();
  }
  get memoryReserved(): number {
    return this.x.memory.buffer.byteLength;
  }

  /** The whole engine state: restore it with `new LinkerEngine(module, config, opts, snapshot)`. */
  snapshot(): Uint8Array {
    return new Uint8Array(this.x.memory.buffer, 0, this.x.memoryUsed()).slice();
  }

  private restore(bytes: Uint8Array): void {
    const mem = this.x.memory;
    const need = Math.ceil((bytes.byteLength - mem.buffer.byteLength) / 65536);
    if (need > 0) mem.grow(need);
    new Uint8Array(mem.buffer, 0, bytes.byteLength).set(bytes);
    if (!this.x.restored()) throw new Error("not a snapshot of this engine layout");
  }

  /** Tests: 0 when every table slot points at a live record reachable from its home slot. */
  checkTables(): number {
    return this.x.checkTables();
  }

  netShard(reqSeq: number, respSeq: number): number {
    return this.x.netShard(BigInt(reqSeq) | (BigInt(respSeq) << 32n), this.shards);
  }
}

// Hex ids in and out of the records: the engine's host side runs these four or five times per
// span, so they avoid the general-purpose routes (parseInt of a slice; toString(16) + padStart
// cost ~0.9 µs per id, String.fromCharCode of the digits ~0.17 µs).
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_VALUE["0123456789abcdef".charCodeAt(i)] = i;
  HEX_VALUE["0123456789ABCDEF".charCodeAt(i)] = i;
}
const HEX_DIGIT = new Uint8Array([...("0123456789abcdef")].map((c) => c.charCodeAt(0)));

/** Eight hex digits of `hex` from `at` as a u32 (the contract's validator checked them). */
function hex32At(hex: string, at: number): number {
  let v = 0;
  for (let j = 0; j < 8; j++) v = (v << 4) | HEX_VALUE[hex.charCodeAt(at + j)];
  return v >>> 0;
}

/** The 16 hex digits of `hex` from `at` as a little-endian u64 at `off`. */
function putHex64(dv: DataView, off: number, hex: string, at = 0): void {
  dv.setUint32(off, hex32At(hex, at + 8), true);
  dv.setUint32(off + 4, hex32At(hex, at), true);
}

function putZero64(dv: DataView, off: number): void {
  dv.setUint32(off, 0, true);
  dv.setUint32(off + 4, 0, true);
}

/** A little-endian u64 at `off` as 16 lowercase hex digits. */
function hex64(dv: DataView, off: number): string {
  const h = dv.getUint32(off + 4, true);
  const l = dv.getUint32(off, true);
  const d = HEX_DIGIT;
  return String.fromCharCode(
    d[h >>> 28], d[(h >>> 24) & 15], d[(h >>> 20) & 15], d[(h >>> 16) & 15], d[(h >>> 12) & 15], d[(h >>> 8) & 15], d[(h >>> 4) & 15], d[h & 15],
    d[l >>> 28], d[(l >>> 24) & 15], d[(l >>> 20) & 15], d[(l >>> 16) & 15], d[(l >>> 12) & 15], d[(l >>> 8) & 15], d[(l >>> 4) & 15], d[l & 15],
  );
}
