/**
 * espan native capture: an N-API addon over libbpf that loads bpf/capture.bpf.c (embedded as a
 * skeleton) and hands ring-buffer records to JS in batches.
 *
 * Lifecycle:
 * ```ts
 * import { open, layout } from "./index.js";
 * const cap = open({ strategy: "auto", captureBytes: 4096 }); // checks, open, load (verifier)
 * cap.addPid(1234);                                          // before or after attach
 * cap.attach();                                              // programs fire from here on
 * cap.start((arena, used, count) => decodeArena(arena, used, layout()), 10);
 * // ...
 * cap.stop(); cap.close();
 * ```
 *
 * Errors thrown by open()/attach() carry `code` (errno name, e.g. "EPERM", "ENOENT"), `errno`
 * (negative), `step` (e.g. "check root", "check BTF", "check tracefs", "check tracepoint",
 * "load", "attach handle_sock_send") and a message saying what is missing. A failure to load
 * the .node itself has code "ESPAN_NATIVE_LOAD" (not built, or libbpf missing).
 */

/** How the TCP seq of a message's first byte is found. */
export type Strategy = "tp_btf" | "fd_lookup";

export interface OpenOptions {
  /**
   * "tp_btf": tp_btf/sock_{send,recv}_length (kernel >= 6.3). "fd_lookup": fd -> struct sock at
   * sys_enter through task->files (kernels with BTF, 5.10+). "auto" (default): tp_btf when the
   * kernel's BTF has those tracepoints and the load succeeds, else fd_lookup.
   */
  strategy?: Strategy | "auto";
  /** Payload bytes captured per record, 0..4096 (clamped). Default 256. */
  captureBytes?: number;
  /** Trace every process except the agent itself and pids added with PID_EXCLUDE. Default false. */
  traceAll?: boolean;
  /** Pending ring bytes that wake the consumer; below that the flush timer collects. 0 = wake on
   * every record (costly: ~30% of the traced program's throughput). Default 1048576. */
  wakeupBytes?: number;
  /** Ring buffer size: a power of 2, at least a page. Default 16 MiB. */
  ringBytes?: number;
  /** One record per send/recv instead of one per direction flip (debugging). Default false. */
  everyChunk?: boolean;
  /** Enable BPF run-time stats (bpf_enable_stats) while open: ~2 clock reads per run. Default false. */
  runStats?: boolean;
}

/**
 * Called once per batch, never per record. `arena` is ONE fixed Buffer reused for every batch:
 * it is valid only during the call (copy what you keep). It holds `count` frames in `used`
 * bytes, each `[u32 length][u32 scan length][record of length bytes][zero pad to 8][scan][zero
 * pad to 8]`, little-endian on x86-64/arm64 (see Layout.littleEndian). The scan (Layout.scan)
 * is the HTTP/1.x heads of a data record's payload, found while draining; its length is 0 for
 * other records.
 */
export type BatchCallback = (arena: Buffer, used: number, count: number) => void;

export interface ProgramStats {
  name: string;
  /** Counted only while run-time stats are on. */
  runCount: number;
  runTimeNs: number;
  /** Runs skipped because the program was already running on that CPU. */
  recursionMisses: number;
  /** Instructions the verifier processed when loading it. */
  verifiedInsns: number;
}

export interface CaptureStats {
  strategy: Strategy;
  /** Why strategy "auto" loaded fd_lookup rather than tp_btf (the step and libbpf's or the
   * kernel's words); null when it did not fall back. */
  strategyFallback: string | null;
  attached: boolean;
  /** Records handed to JS since open. */
  records: number;
  /** Drains that produced at least one record. */
  batches: number;
  /** Drains cut short because the arena was full (the rest follows in the next batch). */
  arenaFull: number;
  /** Records the kernel lost because the ring buffer was full. */
  drops: number;
  /** Data records sent without payload (no user buffer known: sendfile, io_uring, ...). */
  noPayload: number;
  /** Sockets that closed without any traced data (no close record sent). */
  closeUnseen: number;
  /** Bytes in the ring buffer not consumed yet, and its size. */
  ringUsed: number;
  ringSize: number;
  runStats: boolean;
  /** Drains started by a kernel wake-up (one per wakeupBytes crossed, not per record). */
  pollWakeups: number;
  /** Drains started by the flushMs timer. */
  timerTicks: number;
  programs: ProgramStats[];
}

export interface Capture {
  /** Attach every loaded program. Idempotent. */
  attach(): void;
  /** Detaches every program (no record from here on); maps, the ring buffer, the pid filter and
   * the drain stay, so attach() resumes (the agent benchmark's runs without the capture). */
  detach(): void;
  /** Trace a process (tgid). flags: Layout.pidFlags (default TRACE; TRACE|INHERIT follows forks;
   * EXCLUDE keeps it out even with traceAll). The kernel removes a pid when it exits. */
  addPid(pid: number, flags?: number): void;
  removePid(pid: number): void;
  setTraceAll(on: boolean): void;
  /** Returns the value applied (clamped to 4096). */
  setCaptureBytes(n: number): number;
  setWakeupBytes(n: number): void;
  setEveryChunk(on: boolean): void;
  setRunStats(on: boolean): void;
  /** Drain the ring buffer from Node's loop: on a kernel wake-up (epoll fd) and every flushMs
   * (default 10). Socket records are held back until 1 MiB or 250 ms of them have come (a
   * call into JS per few records costs more than the records); a process record (exec, fork,
   * exit) is handed over at the next drain with everything before it. Keeps the process alive
   * until stop(). */
  start(callback: BatchCallback, flushMs?: number): void;
  /** Drain now, synchronously, through the started callback, held records included. Returns
   * the records delivered. */
  flush(): number;
  stop(): void;
  stats(): CaptureStats;
  /** The strategy that is loaded. */
  strategy(): Strategy;
  /** Detach, free the maps. Safe to call from inside the callback and more than once. */
  close(): void;
}

export interface FieldLayout {
  offset: number;
  size: number;
}

/** struct espan_record (bpf/record.h) as compiled: offsets from offsetof, sizes from sizeof. */
export interface Layout {
  littleEndian: boolean;
  recordSize: number;
  frameHeader: number;
  frameAlign: number;
  arenaBytes: number;
  maxCapture: number;
  fields: Record<
    | "ts_ns" | "conn_id" | "prev_first_ns" | "prev_last_ns" | "prev_bytes"
    | "pid" | "tid" | "seq" | "bytes" | "cap_len" | "flags"
    | "kind" | "dir" | "role" | "family" | "lport" | "rport" | "aux"
    | "laddr" | "raddr" | "comm",
    FieldLayout
  >;
  kinds: { DATA: number; CLOSE: number; EXEC: number; EXIT: number; FORK: number };
  dirs: { NONE: number; SEND: number; RECV: number };
  roles: { UNKNOWN: number; CLIENT: number; SERVER: number };
  flags: { FIN: number; TRUNCATED: number; NO_PAYLOAD: number; CONT: number; FD_LOOKUP: number; IOV: number };
  pidFlags: { TRACE: number; INHERIT: number; EXCLUDE: number };
  /** struct espan_scan (src/http1_scan.h): offsets from offsetof, sizes from sizeof. */
  scan: {
    kind: number;
    flags: number;
    count: number;
    endAt: number;
    msgs: number;
    msgSize: number;
    maxMsgs: number;
    msg: Record<"bytes" | "at" | "head_bytes" | "status" | "method_len" | "target_at" | "target_len" | "path_len" | "flags" | "app", number>;
    /** The app-context headers, in the order of the app[] (offset, length) pairs of a message. */
    appHeaders: string[];
    /** The offset of an app header that is not there. */
    absent: number;
    kinds: { REQUESTS: number; RESPONSES: number };
    flagBits: { JS: number; ENDED: number; HEAD_COMPLETE: number; LENGTH: number; V11: number };
  };
}

/** Checks (root, BTF, tracefs, tracepoints), open, set rodata, load. Throws with code/step. */
export function open(options?: OpenOptions): Capture;
/** The record layout; needs no kernel access. */
export function layout(): Layout;
/** glibc keeps freed memory for the process's next allocations instead of returning it to the
 * kernel (page faults are costly on VMs: src/addon.cc says how much). Process-wide; the agent
 * calls it once. False if glibc refused a setting. */
export function tuneMalloc(): boolean;
/** `data` gzipped (RFC 1952) at this level (1 to 12; default 1): at level 1 by the system's
 * ISA-L (libisal2) when it has it, else (and at other levels) by its libdeflate; null when the
 * system has no libdeflate and ISA-L did not do it (use node:zlib then). Throws if the addon
 * cannot load. */
export function gzip(data: Uint8Array, level?: number): Buffer | null;
/** The library gzip() uses at level 1 on this system: "isal", "libdeflate", or null (none:
 * node:zlib then). */
export function gzipLibrary(): "isal" | "libdeflate" | null;
/** The HTTP scan the drain writes after a record with this payload (an empty Buffer when the
 * payload starts with no HTTP/1.x message); for tests. Needs no kernel access. */
export function scanHttp(payload: Buffer): Buffer;

/** Writes staged agent spans' JSON natively (src/span_encoder.cc, src/span_json.c);
 * agent/src/ship/span-json.ts stages them and decides every value. */
export interface SpanEncoder {
  /** Keeps a copy of run `index`'s bytes (endpoint runs 0..1023, http runs 1024..2047). */
  setRun(index: number, bytes: Uint8Array): void;
  /** The first `count` staged spans into `buf` from `at` (positions[2i], [2i + 1]: span i's
   * start and end); the offset after them. Throws when one does not fit or has a bad number. */
  encode(buf: Buffer, at: number, count: number): number;
}
/** An encoder of the spans staged in `stage` (16 slots each), their positions written to
 * `positions`. Throws if the addon cannot load. */
export function createSpanEncoder(stage: Float64Array, positions: Uint32Array): SpanEncoder;
