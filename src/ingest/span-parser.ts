/**
 * The host side of the ingest's fast path (assembly/ingest/): a batch's bytes parsed and checked
 * in one pass, into the engine's input records and the spans' packed form, without building an
 * object per span; and the blocks a shard holds spans in. Works in Node (tests) and in workerd
 * (the caller brings the compiled module: workerd refuses to compile at run time).
 *
 * A parse either takes the whole batch or declines it; a declined batch goes to the full parser
 * (decode.ts: JSON.parse and the contract's validator), which names every error and normalises.
 */
import type { ESpan } from "../../contract/espan.ts";

export type BatchFormat = "doc" | "array" | "ndjson" | "packed";
/** STRICT: a request body, every field checked; TRUSTED: spans validated before (grammar and the engine's fields only). */
export type ParseMode = "strict" | "trusted";

/** Why the fast path declined a batch (the full parser decides it). */
export const DECLINE_REASONS = ["", "not-json", "invalid", "normalised", "shape", "not-utf8"] as const;
export type DeclineReason = (typeof DECLINE_REASONS)[number];

interface ParserExports {
  memory: WebAssembly.Memory;
  init(): void;
  inputBuffer(len: number): number;
  parse(len: number, format: number, mode: number, firstRef: number, arrivalMs: bigint): number;
  packedLength(): number;
  declinedAt(): number;
  packedPtr(): number;
  boundsPtr(): number;
  recordsPtr(): number;
  textPtr(): number;
  hold(first: number, count: number): number;
  blockBytes(block: number): number;
  blockByteLength(block: number): number;
  blockSize(block: number): number;
  compact(block: number, bits: number): number;
  bitsBuffer(bytes: number): number;
  spanJson(block: number, index: number): number;
  release(block: number): void;
  RECORD_SIZE: WebAssembly.Global;
  RECORD_KEY: WebAssembly.Global;
  FORMAT_DOC: WebAssembly.Global;
  FORMAT_ARRAY: WebAssembly.Global;
  FORMAT_NDJSON: WebAssembly.Global;
  FORMAT_PACKED: WebAssembly.Global;
  MODE_STRICT: WebAssembly.Global;
  MODE_TRUSTED: WebAssembly.Global;
}

const utf8 = new TextDecoder();

export class SpanParser {
  private readonly x: ParserExports;
  readonly recordSize: number;
  private readonly recordKey: number;
  private readonly formats: Record<BatchFormat, number>;
  private readonly modes: Record<ParseMode, number>;
  private mem = new Uint8Array(0);
  /** Spans of the last parse (0 when it declined). */
  private parsed = 0;

  constructor(module: WebAssembly.Module) {
    const instance = new WebAssembly.Instance(module, {
      env: {
        ingest_abort(line: number) {
          throw new Error(`ingest parser aborted (a bug) at assembly/ingest line ${line}`);
        },
      },
    });
    this.x = instance.exports as unknown as ParserExports;
    this.x.init();
    const g = (v: WebAssembly.Global) => v.value as number;
    this.recordSize = g(this.x.RECORD_SIZE);
    this.recordKey = g(this.x.RECORD_KEY);
    this.formats = { doc: g(this.x.FORMAT_DOC), array: g(this.x.FORMAT_ARRAY), ndjson: g(this.x.FORMAT_NDJSON), packed: g(this.x.FORMAT_PACKED) };
    this.modes = { strict: g(this.x.MODE_STRICT), trusted: g(this.x.MODE_TRUSTED) };
  }

  /**
   * Parses a batch: its span count, or the reason the fast path declined it. `firstRef` is the
   * engine ref of the first span (the rest follow), `arrivalMs` its arrival, both into the records.
   */
  parse(bytes: Uint8Array, format: BatchFormat, mode: ParseMode, firstRef: number, arrivalMs: number): number | DeclineReason {
    const ptr = this.x.inputBuffer(bytes.byteLength);
    this.view().set(bytes, ptr);
    const n = this.x.parse(bytes.byteLength, this.formats[format], this.modes[mode], firstRef, BigInt(Math.floor(arrivalMs)));
    this.parsed = Math.max(0, n);
    return n >= 0 ? n : (DECLINE_REASONS[-n] ?? "not-json");
  }

  /** Where in its bytes the last parse declined (diagnostics). */
  get declinedAt(): number {
    return this.x.declinedAt();
  }

  /** The engine records of spans [first, first + count) of the last parse (a view: use it before the next call). */
  records(first: number, count: number): Uint8Array {
    this.checkRange(first, count);
    const at = this.x.recordsPtr() + first * this.recordSize;
    return this.view().subarray(at, at + count * this.recordSize);
  }

  /** Span `i` of the last parse: its req_seq and resp_seq (its net group: a worker splits a batch by them). */
  netKey(i: number): [reqSeq: number, respSeq: number] {
    this.checkRange(i, 1);
    const dv = new DataView(this.view().buffer, this.x.recordsPtr() + i * this.recordSize + this.recordKey, 8);
    return [dv.getUint32(0, true), dv.getUint32(4, true)];
  }

  /** How many spans from `first` of the last parse fit in `maxBytes` packed (at least one). */
  spansWithin(first: number, maxBytes: number): number {
    const b = new Uint32Array(this.view().buffer, this.x.boundsPtr(), 2 * this.parsed);
    const from = b[2 * first];
    if (b[2 * this.parsed - 1] - from <= maxBytes) return this.parsed - first;
    let n = 1;
    while (first + n < this.parsed && b[2 * (first + n) + 1] - from <= maxBytes) n++;
    return n;
  }

  /** The packed spans `indices` of the last parse, back to back, copied out (a batch for another shard). */
  packedCopy(indices: readonly number[]): Uint8Array {
    const m = this.view();
    const b = new Uint32Array(m.buffer, this.x.boundsPtr(), 2 * this.parsed);
    const at = this.x.packedPtr();
    let size = 0;
    for (const i of indices) size += b[2 * i + 1] - b[2 * i];
    const out = new Uint8Array(size);
    let o = 0;
    for (const i of indices) {
      out.set(m.subarray(at + b[2 * i], at + b[2 * i + 1]), o);
      o += b[2 * i + 1] - b[2 * i];
    }
    return out;
  }

  /** Spans [first, first + count) of the last parse, kept in a block of their own (release it when done). */
  hold(first: number, count: number): number {
    this.checkRange(first, count);
    return this.x.hold(first, count);
  }

  /** A block's spans in packed form, back to back (what a shard logs; a view: use it before the next call). */
  blockBytes(block: number): Uint8Array {
    const at = this.x.blockBytes(block);
    return this.view().subarray(at, at + this.x.blockByteLength(block));
  }

  /** Bytes a block takes. */
  blockSize(block: number): number {
    return this.x.blockSize(block);
  }

  /** Span `index` of a block as JSON text (as it came, or as the full parser encoded it; whitespace dropped). */
  spanJson(block: number, index: number): string {
    const n = this.x.spanJson(block, index);
    const at = this.x.textPtr();
    return utf8.decode(this.view().subarray(at, at + n));
  }

  /** A block without the spans whose bit in `done` is set (the old block is gone); 0 when none is left. */
  compact(block: number, done: Uint8Array): number {
    const at = this.x.bitsBuffer(done.byteLength);
    this.view().set(done, at);
    return this.x.compact(block, at);
  }

  release(block: number): void {
    this.x.release(block);
  }

  /** Bytes of linear memory the module has (what holding spans costs, with the allocator's slack). */
  get memoryBytes(): number {
    return this.x.memory.buffer.byteLength;
  }

  /** The module's memory as bytes (a new view after it grew). */
  private view(): Uint8Array {
    const buf = this.x.memory.buffer;
    if (this.mem.buffer !== buf) this.mem = new Uint8Array(buf);
    return this.mem;
  }

  private checkRange(first: number, count: number): void {
    if (first < 0 || count <= 0 || first + count > this.parsed) throw new Error(`spans [${first}, ${first + count}) are not in the last parse (${this.parsed})`);
  }
}

/** The spans of a batch the full parser validated, as bytes the fast path reads TRUSTED ("array" format). */
export function encodeForParse(spans: readonly ESpan[]): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(spans));
}

/**
 * Checks that the fast path writes engine records as the engine glue encodes them (`encode`):
 * both modules take their layout from assembly/layout.ts, and a stale build of one would
 * otherwise feed the engine garbage. Throws when they differ.
 */
export function checkRecords(parser: SpanParser, encode: (spans: ESpan[], arrivalMs: number, refs: number[]) => Uint8Array): void {
  const probe: ESpan = {
    span_id: "0123456789abcdef", kind: "entry", req_seq: 4_000_000_000, resp_seq: 7, thread_trace_id: "fedcba9876543210",
    start_ns: "18446744073709551615", duration_ns: 1, host: "h", pid: 1, tid: 2, process_name: "p", service: "s", src_ip: "a",
    dst_ip: "b", src_port: 1, dst_port: 2, l7_proto: "http", app_trace_id: "0123456789abcdef0123456789abcdef",
    app_parent_id: "00000000000000ff", app_sampled: true,
  };
  const n = parser.parse(encodeForParse([probe]), "array", "strict", 41, 1234);
  const want = encode([probe], 1234, [41]);
  const got = n === 1 ? parser.records(0, 1) : new Uint8Array(0);
  if (got.length !== want.length || got.some((b, i) => b !== want[i])) {
    throw new Error("the ingest parser's engine records differ from the engine glue's (build/ingest.wasm and build/engine.wasm from different layouts): npm run build:wasm");
  }
}
