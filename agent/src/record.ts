// Decoder of the native addon's arena into typed records.
//
// The layout is bpf/record.h's struct espan_record as compiled; its offsets and sizes come from
// the addon's layout() (offsetof/sizeof), never from a hand-copied table, so a change to the C
// struct cannot silently skew this decoder. Integers are little-endian on every platform we
// build for (x86-64, arm64): the DataView reads use layout.littleEndian, which the addon
// measured. Addresses stay in network order as the kernel keeps them.
//
// Arena framing (agent/native/src/loader.h): [u32 length][u32 0][record][zero pad to 8].
import type { Layout } from "../native/index.js";

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
  /** Decodes the `used` bytes of an arena (the batch callback's arguments). */
  decodeArena(arena: Uint8Array, used: number): CaptureRecord[];
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

  return {
    decodeArena(arena: Uint8Array, used: number): CaptureRecord[] {
      const dv = new DataView(arena.buffer, arena.byteOffset, arena.byteLength);
      const out: CaptureRecord[] = [];
      let at = 0;
      while (at + frameHeader <= used) {
        const len = dv.getUint32(at, le);
        const rec = at + frameHeader;
        if (rec + len > used) throw new Error(`arena: frame at ${at} (${len} bytes) overruns used=${used}`);
        out.push(decodeOne(arena, dv, rec, len));
        at = rec + ((len + 7) & ~7);
      }
      return out;
    },
  };
}
