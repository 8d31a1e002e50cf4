// Synthetic capture records for the assembler tests: a socket that emits what the kernel
// would (one record per direction flip, prev_* describing the message the flip ended, the
// close record with the last message), with seqs that advance by the bytes of each message.
import type { ESpan } from "../../../contract/espan.ts";
import { Assembler, type AssemblerOptions } from "../../../agent/src/assemble/assembler.ts";
import { ThreadLinker } from "../../../agent/src/link/thread.ts";
import type { CaptureRecord, Direction, SocketRole } from "../../../agent/src/record.ts";

export const MS = 1_000_000n;
export const WALL_OFFSET = 1_700_000_000_000_000_000n;

export interface MsgOptions {
  /** Bytes the message's first syscall moved (default: the payload's length). */
  firstBytes?: number;
  /** Bytes of the whole message (default: firstBytes). */
  totalBytes?: number;
  tid?: number;
  /** How long the message took from its first to its last chunk. */
  spanNs?: bigint;
  /** Captured bytes (default 4096). */
  cap?: number;
}

let nextConn = 1n;

export class SimSocket {
  readonly connId = nextConn++;
  now: bigint;
  private seq: Record<"send" | "recv", number>;
  private cur: { dir: Direction; first: bigint; last: bigint; bytes: number } | undefined;
  readonly records: CaptureRecord[] = [];

  constructor(
    readonly role: SocketRole,
    readonly opts: { pid?: number; tid?: number; comm?: string; local?: [string, number]; remote?: [string, number]; sendSeq?: number; recvSeq?: number; t0?: bigint } = {},
  ) {
    this.now = opts.t0 ?? 1_000n * MS;
    this.seq = { send: opts.sendSeq ?? 1000, recv: opts.recvSeq ?? 900_000 };
  }

  private base(): Omit<CaptureRecord, "kind" | "dir" | "seq" | "bytes" | "payload" | "prevFirstNs" | "prevLastNs" | "prevBytes" | "tsNs"> {
    const [lip, lport] = this.opts.local ?? ["127.0.0.1", this.role === "server" ? 8080 : 50000];
    const [rip, rport] = this.opts.remote ?? ["127.0.0.1", this.role === "server" ? 50000 : 8080];
    return {
      connId: this.connId, pid: this.opts.pid ?? 100, tid: this.opts.tid ?? 100, flags: 0, fin: false, truncated: false,
      role: this.role, family: 4, localIp: lip, localPort: lport, remoteIp: rip, remotePort: rport, aux: 0, comm: this.opts.comm ?? "app",
    };
  }

  /** A message in one direction: one record (the flip), then its later chunks (no record). */
  msg(dir: "send" | "recv", payload: string, o: MsgOptions = {}): CaptureRecord {
    this.now += MS;
    const data = Buffer.from(payload, "latin1");
    const firstBytes = o.firstBytes ?? data.length;
    const total = o.totalBytes ?? firstBytes;
    const cap = Math.min(o.cap ?? 4096, firstBytes, data.length);
    const prev = this.cur;
    const r: CaptureRecord = {
      ...this.base(),
      kind: "data",
      tsNs: this.now,
      dir,
      seq: this.seq[dir] >>> 0,
      bytes: firstBytes,
      payload: data.subarray(0, cap),
      truncated: cap < firstBytes,
      prevFirstNs: prev?.first ?? 0n,
      prevLastNs: prev?.last ?? 0n,
      prevBytes: prev?.bytes ?? 0,
      tid: o.tid ?? this.opts.tid ?? 100,
    };
    this.seq[dir] = (this.seq[dir] + total) >>> 0;
    const last = this.now + (o.spanNs ?? (total > firstBytes ? 500_000n : 0n));
    this.cur = { dir, first: this.now, last, bytes: total };
    this.now = last;
    this.records.push(r);
    return r;
  }

  close(): CaptureRecord {
    this.now += MS;
    const cur = this.cur;
    const r: CaptureRecord = {
      ...this.base(), kind: "close", tsNs: this.now, dir: cur?.dir ?? "none", seq: 0, bytes: 0, payload: Buffer.alloc(0),
      prevFirstNs: cur?.first ?? 0n, prevLastNs: cur?.last ?? 0n, prevBytes: cur?.bytes ?? 0, comm: "",
    };
    this.records.push(r);
    return r;
  }

  /** The seq the next message in this direction will start at. */
  nextSeq(dir: "send" | "recv"): number {
    return this.seq[dir];
  }
}

/** Assembler → thread linker → an array, as the pipeline wires them. */
export function harness(opts: Partial<AssemblerOptions> = {}) {
  const spans: ESpan[] = [];
  const linker = new ThreadLinker({ write: (s) => spans.push(s) });
  const assembler = new Assembler(linker, {
    host: "test-host",
    processes: { lookup: (_pid, comm) => ({ processName: comm, service: `svc-${comm}`, traced: true }) },
    toUnixNs: (mono) => mono + WALL_OFFSET,
    ...opts,
  });
  return { spans, linker, assembler, push: (...rs: CaptureRecord[]) => assembler.push(rs) };
}

export const GET = (path: string, extra: string[] = []) => `GET ${path} HTTP/1.1\r\nHost: t\r\n${extra.map((h) => `${h}\r\n`).join("")}\r\n`;
export const OK = (body: string, extra: string[] = []) =>
  `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra.map((h) => `${h}\r\n`).join("")}\r\n${body}`;
