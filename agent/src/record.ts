// Decoder of the native addon's arena into typed records.
//
// The layout is bpf/record.h's struct espan_record as compiled; its offsets and sizes come from
// the addon's layout() (offsetof/sizeof), never from a hand-copied table, so a change to the C
// struct cannot silently skew this decoder. Integers are little-endian on every platform we
// build for (x86-64, arm64): the DataView reads use layout.littleEndian, which the addon
// measured. Addresses stay in network order as the kernel keeps them.
//
// Arena framing (agent/native/src/loader.h): [u32 length][u32 scan length][record][zero pad to
// 8][scan][zero pad to 8]; the scan is the addon's HTTP/1.x scan of the payload
// (assemble/http1-scan.ts reads it).
import type { Layout } from "../native/index.js";
import { HttpScanView } from "./assemble/http1-scan.ts";

export type RecordKind = "data" | "close" | "exec" | "exit" | "fork";
export type Direction = "send" | "recv" | "none";
export type SocketRole = "client" | "server" | "unknown";

/** One kernel record. */
export interface CaptureRecord {
  kind: RecordKind;
  /** bpf_ktime_get_ns(): CLOCK_MONOTONIC, the clock of process.hrtime.bigint(). */
  tsNs: bigint;
  /** Random 64-bit id of the connection, given when the kernel side first saw the socket (0 for
   * process events). A new id may appear mid-connection if the socket table (LRU) evicted it. */
  connId: bigint;
  /** connId as two numbers, without a BigInt (the decoder's cursor gives them; elsewhere they
   * may be absent): its low 53 bits, and its top 11. */
  connKey?: number;
  connTop?: number;
  /** The message this one ended (the other direction) on the same socket; 0 when none. For
   * close records: the socket's last message. */
  prevFirstNs: bigint;
  prevLastNs: bigint;
  prevBytes: number;
  pid: number;
  tid: number;
  /** TCP seq of the first byte this syscall moved (u32). Client and server see the same value. */
  seq: number;
  /** Bytes the syscall moved. */
  bytes: number;
  /** Raw ESPAN_F_* bits (layout().flags). */
  flags: number;
  /** This read consumed the peer's FIN (seq already corrected). */
  fin: boolean;
  /** payload.length < bytes. */
  truncated: boolean;
  dir: Direction;
  role: SocketRole;
  /** 4, 6, or 0 for process events. An IPv6 socket talking IPv4 says 6 with ::ffff: addresses. */
  family: 0 | 4 | 6;
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  /** exec/fork: parent tgid; exit: the raw exit code (wait status); otherwise 0. */
  aux: number;
  /** Thread name (task->comm) when the record was made; empty for close records. */
  comm: string;
  /** Captured bytes (data: the message's first bytes; exec: the executable path). A copy:
   * the arena is reused after the callback returns. */
  payload: Buffer;
  /** The addon's scan of the payload's HTTP/1.x heads (Decoder.forEachRecord only; undefined
   * when the drain made none): valid during the call only, as the record. */
  scan?: HttpScanView;
}

const AF_INET = 2;
const AF_INET6 = 10;

/** Field sizes this decoder reads with fixed-width getters; checked against layout(). */
const EXPECTED_SIZES: Record<keyof Layout["fields"], number> = {
  ts_ns: 8, conn_id: 8, prev_first_ns: 8, prev_last_ns: 8, prev_bytes: 8,
  pid: 4, tid: 4, seq: 4, bytes: 4, cap_len: 2, flags: 2,
  kind: 1, dir: 1, role: 1, family: 1, lport: 2, rport: 2, aux: 4,
  laddr: 16, raddr: 16, comm: 16,
};

export function formatIp(family: number, bytes: Uint8Array): string {
  if (family === AF_INET) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (family !== AF_INET6) return "";
  const isV4Mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (isV4Mapped) return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

export interface Decoder {
  /** Decodes the `used` bytes of an arena (the batch callback's arguments) into records that
   * own their values (the payload is a copy): tests and tools that keep records. */
  decodeArena(arena: Uint8Array, used: number): CaptureRecord[];
  /**
   * The agent's path: calls `fn` once per frame, in order, with ONE reused record whose fields
   * are read from the arena as they are asked for (the 64-bit ones only then), whose payload
   * is a view into the arena, and whose address and comm strings come from small caches. The
   * record and its payload are valid only during the call: copy what you keep. Throws on a
   * malformed frame, after `fn` has seen the frames before it. Returns the frames seen.
   */
  forEachRecord(arena: Uint8Array, used: number, fn: (r: CaptureRecord) => void): number;
}

/** Builds a decoder for this layout; throws if a field does not have the size read here. */
export function createDecoder(layout: Layout): Decoder {
  for (const [name, size] of Object.entries(EXPECTED_SIZES)) {
    const f = layout.fields[name as keyof Layout["fields"]];
    if (!f || f.size !== size) {
      throw new Error(`record layout: field ${name} is ${f ? f.size : "missing"} bytes, the decoder reads ${size}`);
    }
  }
  const le = layout.littleEndian;
  const F = layout.fields;
  const o = Object.fromEntries(Object.entries(F).map(([k, v]) => [k, v.offset])) as Record<keyof Layout["fields"], number>;
  const kindNames = new Map<number, RecordKind>([
    [layout.kinds.DATA, "data"], [layout.kinds.CLOSE, "close"], [layout.kinds.EXEC, "exec"],
    [layout.kinds.EXIT, "exit"], [layout.kinds.FORK, "fork"],
  ]);
  const dirNames = new Map<number, Direction>([[layout.dirs.SEND, "send"], [layout.dirs.RECV, "recv"]]);
  const roleNames = new Map<number, SocketRole>([[layout.roles.CLIENT, "client"], [layout.roles.SERVER, "server"]]);
  const { recordSize, frameHeader } = layout;
  const FIN = layout.flags.FIN;
  const TRUNCATED = layout.flags.TRUNCATED;

  function decodeOne(buf: Uint8Array, dv: DataView, at: number, len: number): CaptureRecord {
    if (len < recordSize) throw new Error(`record at ${at}: ${len} bytes, shorter than the ${recordSize}-byte header`);
    const kindId = dv.getUint8(at + o.kind);
    const kind = kindNames.get(kindId);
    if (!kind) throw new Error(`record at ${at}: unknown kind ${kindId}`);
    const fam = dv.getUint8(at + o.family);
    const flags = dv.getUint16(at + o.flags, le);
    const capLen = dv.getUint16(at + o.cap_len, le);
    if (recordSize + capLen > len) throw new Error(`record at ${at}: cap_len ${capLen} overruns its ${len} bytes`);
    const commBytes = buf.subarray(at + o.comm, at + o.comm + 16);
    const nul = commBytes.indexOf(0);
    const payloadStart = at + recordSize;
    return {
      kind,
      tsNs: dv.getBigUint64(at + o.ts_ns, le),
      connId: dv.getBigUint64(at + o.conn_id, le),
      prevFirstNs: dv.getBigUint64(at + o.prev_first_ns, le),
      prevLastNs: dv.getBigUint64(at + o.prev_last_ns, le),
      prevBytes: Number(dv.getBigUint64(at + o.prev_bytes, le)),
      pid: dv.getUint32(at + o.pid, le),
      tid: dv.getUint32(at + o.tid, le),
      seq: dv.getUint32(at + o.seq, le),
      bytes: dv.getUint32(at + o.bytes, le),
      flags,
      fin: (flags & FIN) !== 0,
      truncated: (flags & TRUNCATED) !== 0,
      dir: dirNames.get(dv.getUint8(at + o.dir)) ?? "none",
      role: roleNames.get(dv.getUint8(at + o.role)) ?? "unknown",
      family: fam === AF_INET ? 4 : fam === AF_INET6 ? 6 : 0,
      localIp: formatIp(fam, buf.subarray(at + o.laddr, at + o.laddr + 16)),
      localPort: dv.getUint16(at + o.lport, le),
      remoteIp: formatIp(fam, buf.subarray(at + o.raddr, at + o.raddr + 16)),
      remotePort: dv.getUint16(at + o.rport, le),
      aux: dv.getUint32(at + o.aux, le),
      comm: Buffer.from(commBytes.subarray(0, nul < 0 ? 16 : nul)).toString("utf8"),
      payload: Buffer.from(buf.subarray(payloadStart, payloadStart + capLen)),
    };
  }

  const cursor = new RecordCursor(o, le, recordSize, kindNames, dirNames, roleNames, FIN, TRUNCATED, new HttpScanView(layout));

  return {
    forEachRecord(arena: Uint8Array, used: number, fn: (r: CaptureRecord) => void): number {
      const dv = new DataView(arena.buffer, arena.byteOffset, arena.byteLength);
      const buf = Buffer.isBuffer(arena) ? arena : Buffer.from(arena.buffer, arena.byteOffset, arena.byteLength);
      let at = 0;
      let n = 0;
      while (at + frameHeader <= used) {
        const len = dv.getUint32(at, le);
        const scanLen = dv.getUint32(at + 4, le);
        const rec = at + frameHeader;
        const scanAt = rec + ((len + 7) & ~7);
        const next = scanAt + ((scanLen + 7) & ~7);
        if (next > used) throw new Error(`arena: frame at ${at} (${len} + ${scanLen} bytes) overruns used=${used}`);
        cursor.moveTo(buf, dv, rec, len, scanLen > 0 ? scanAt : -1);
        fn(cursor);
        n++;
        at = next;
      }
      return n;
    },
    decodeArena(arena: Uint8Array, used: number): CaptureRecord[] {
      const dv = new DataView(arena.buffer, arena.byteOffset, arena.byteLength);
      const out: CaptureRecord[] = [];
      let at = 0;
      while (at + frameHeader <= used) {
        const len = dv.getUint32(at, le);
        const scanLen = dv.getUint32(at + 4, le);
        const rec = at + frameHeader;
        const next = rec + ((len + 7) & ~7) + ((scanLen + 7) & ~7);
        if (next > used) throw new Error(`arena: frame at ${at} (${len} + ${scanLen} bytes) overruns used=${used}`);
        out.push(decodeOne(arena, dv, rec, len));
        at = next;
      }
      return out;
    },
  };
}

/** Bounded string caches: cleared when full (they hold addresses and thread names, a few). */
const CACHE_MAX = 4096;

/**
 * One record read in place (Decoder.forEachRecord). Small fields are read eagerly by moveTo;
 * the 64-bit ones, the addresses, comm and the payload view when first asked for.
 */
class RecordCursor implements CaptureRecord {
  kind: RecordKind = "data";
  pid = 0;
  tid = 0;
  seq = 0;
  bytes = 0;
  flags = 0;
  fin = false;
  truncated = false;
  dir: Direction = "none";
  role: SocketRole = "unknown";
  family: 0 | 4 | 6 = 0;
  localPort = 0;
  remotePort = 0;
  aux = 0;
  scan: HttpScanView | undefined = undefined;
  private buf: Buffer = Buffer.alloc(0);
  private dv: DataView = new DataView(new ArrayBuffer(8));
  private at = 0;
  private capLen = 0;
  private fam = 0;
  private payloadView: Buffer | undefined = undefined;
  private connIdValue: bigint | undefined = undefined;
  private tsValue: bigint | undefined = undefined;
  /** IPv4 (and v4-mapped IPv6) address strings by address, per family. */
  private readonly v4 = new Map<number, string>();
  private readonly v4mapped = new Map<number, string>();
  /** Thread names by tid, with the 16 bytes they came from. */
  private readonly comms = new Map<number, { w0: number; w1: number; w2: number; w3: number; s: string }>();
  private readonly kindById: (RecordKind | undefined)[] = [];
  private readonly dirById: Direction[] = [];
  private readonly roleById: SocketRole[] = [];

  constructor(
    private readonly o: Record<keyof Layout["fields"], number>,
    private readonly le: boolean,
    private readonly recordSize: number,
    kinds: Map<number, RecordKind>,
    dirs: Map<number, Direction>,
    roles: Map<number, SocketRole>,
    private readonly FIN: number,
    private readonly TRUNCATED: number,
    private readonly scanView: HttpScanView,
  ) {
    for (let i = 0; i < 256; i++) {
      this.kindById.push(kinds.get(i));
      this.dirById.push(dirs.get(i) ?? "none");
      this.roleById.push(roles.get(i) ?? "unknown");
    }
  }

  /** The record at `at` (`len` bytes) in `buf`; its scan at `scanAt`, -1 when it has none. */
  moveTo(buf: Buffer, dv: DataView, at: number, len: number, scanAt: number): void {
    const { o, le } = this;
    if (len < this.recordSize) throw new Error(`record at ${at}: ${len} bytes, shorter than the ${this.recordSize}-byte header`);
    const kindId = buf[at + o.kind];
    const kind = this.kindById[kindId];
    if (!kind) throw new Error(`record at ${at}: unknown kind ${kindId}`);
    const capLen = dv.getUint16(at + o.cap_len, le);
    if (this.recordSize + capLen > len) throw new Error(`record at ${at}: cap_len ${capLen} overruns its ${len} bytes`);
    this.buf = buf;
    this.dv = dv;
    this.at = at;
    this.capLen = capLen;
    this.payloadView = undefined;
    this.connIdValue = undefined;
    this.tsValue = undefined;
    this.kind = kind;
    const flags = dv.getUint16(at + o.flags, le);
    this.flags = flags;
    this.fin = (flags & this.FIN) !== 0;
    this.truncated = (flags & this.TRUNCATED) !== 0;
    this.pid = dv.getUint32(at + o.pid, le);
    this.tid = dv.getUint32(at + o.tid, le);
    this.seq = dv.getUint32(at + o.seq, le);
    this.bytes = dv.getUint32(at + o.bytes, le);
    this.dir = this.dirById[buf[at + o.dir]];
    this.role = this.roleById[buf[at + o.role]];
    const fam = buf[at + o.family];
    this.fam = fam;
    this.family = fam === AF_INET ? 4 : fam === AF_INET6 ? 6 : 0;
    this.localPort = dv.getUint16(at + o.lport, le);
    this.remotePort = dv.getUint16(at + o.rport, le);
    this.aux = dv.getUint32(at + o.aux, le);
    if (scanAt < 0) this.scan = undefined;
    else {
      this.scanView.moveTo(buf, dv, scanAt, at + this.recordSize);
      this.scan = this.scanView;
    }
  }

  get tsNs(): bigint {
    return (this.tsValue ??= this.dv.getBigUint64(this.at + this.o.ts_ns, this.le));
  }

  get connId(): bigint {
    return (this.connIdValue ??= this.dv.getBigUint64(this.at + this.o.conn_id, this.le));
  }

  get connKey(): number {
    const at = this.at + this.o.conn_id;
    const lo = this.dv.getUint32(at + (this.le ? 0 : 4), this.le);
    const hi = this.dv.getUint32(at + (this.le ? 4 : 0), this.le);
    return (hi & 0x1fffff) * 4_294_967_296 + lo;
  }

  get connTop(): number {
    return this.dv.getUint32(this.at + this.o.conn_id + (this.le ? 4 : 0), this.le) >>> 21;
  }

  get prevFirstNs(): bigint {
    return this.dv.getBigUint64(this.at + this.o.prev_first_ns, this.le);
  }

  get prevLastNs(): bigint {
    return this.dv.getBigUint64(this.at + this.o.prev_last_ns, this.le);
  }

  get prevBytes(): number {
    const at = this.at + this.o.prev_bytes;
    const lo = this.dv.getUint32(at, this.le);
    const hi = this.dv.getUint32(at + 4, this.le);
    return this.le ? hi * 4_294_967_296 + lo : lo * 4_294_967_296 + hi;
  }

  get localIp(): string {
    return this.ip(this.at + this.o.laddr);
  }

  get remoteIp(): string {
    return this.ip(this.at + this.o.raddr);
  }

  get comm(): string {
    const at = this.at + this.o.comm;
    const dv = this.dv;
    // Native order: the cache only compares the 16 bytes.
    const w0 = dv.getUint32(at, true), w1 = dv.getUint32(at + 4, true), w2 = dv.getUint32(at + 8, true), w3 = dv.getUint32(at + 12, true);
    const hit = this.comms.get(this.tid);
    if (hit && hit.w0 === w0 && hit.w1 === w1 && hit.w2 === w2 && hit.w3 === w3) return hit.s;
    const bytes = this.buf.subarray(at, at + 16);
    const nul = bytes.indexOf(0);
    const s = Buffer.from(bytes.buffer, bytes.byteOffset, nul < 0 ? 16 : nul).toString("utf8");
    if (this.comms.size >= CACHE_MAX) this.comms.clear();
    this.comms.set(this.tid, { w0, w1, w2, w3, s });
    return s;
  }

  get payload(): Buffer {
    if (this.payloadView === undefined) {
      const start = this.buf.byteOffset + this.at + this.recordSize;
      this.payloadView = Buffer.from(this.buf.buffer, start, this.capLen);
    }
    return this.payloadView;
  }

  private ip(at: number): string {
    const fam = this.fam;
    if (fam === AF_INET) return this.cached(this.v4, this.dv.getUint32(at, false), at, fam);
    if (fam !== AF_INET6) return "";
    const b = this.buf;
    const mapped = this.dv.getUint32(at, true) === 0 && this.dv.getUint32(at + 4, true) === 0 && b[at + 8] === 0 && b[at + 9] === 0 && b[at + 10] === 0xff && b[at + 11] === 0xff;
    if (mapped) return this.cached(this.v4mapped, this.dv.getUint32(at + 12, false), at, fam);
    return formatIp(fam, b.subarray(at, at + 16));
  }

  private cached(cache: Map<number, string>, key: number, at: number, fam: number): string {
    let s = cache.get(key);
    if (s === undefined) {
      s = formatIp(fam, this.buf.subarray(at, at + 16));
      if (cache.size >= CACHE_MAX) cache.clear();
      cache.set(key, s);
    }
    return s;
  }
}
