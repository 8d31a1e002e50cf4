// eSpans as JSON bytes, written straight into a byte buffer: the bytes JSON.stringify would
// give, without it. JSON.stringify of the agent's spans cost ~2.2 µs a span (every key
// serialised again, a rope per chunk to flatten, then a copy into the body), almost half of
// the ~5 µs budget the agent has per span; this writer is a loop over the fields of the one
// shape the agent builds (AgentSpan, assemble/span.ts) that copies keys from precomputed bytes
// and ASCII values one byte at a time. Anything else (spans read back from the spool, built by a test, a
// string that needs escaping or is not ASCII) goes through JSON.stringify, so the output is
// always exactly JSON.stringify's.
//
// The agent's spans whose runs are remembered are not written here one by one: they are staged
// as numbers and written by the addon (agent/native/src/span_json.c), a stage-full a call: a
// span of a hello-world load took 1.07 µs written here, 0.27 staged and written by the addon
// (offline, warm; a call per span was ~0.55: N-API's entry, and the ids passed as strings).
// This file decides every value and what is staged; the addon only writes bytes.
import type { ESpan } from "../../../contract/espan.ts";
import { createSpanEncoder, type SpanEncoder } from "../../native/index.js";
import { AgentSpan } from "../assemble/span.ts";

/** `"key":` as bytes, after the comma (or, for the first key, the brace) that comes before it. */
const key = (name: string, first = false) => Buffer.from(`${first ? "{" : ","}${JSON.stringify(name)}:`, "latin1");
const K = {
  span_id: key("span_id", true), kind: key("kind"), req_seq: key("req_seq"), resp_seq: key("resp_seq"),
  start_ns: key("start_ns"), duration_ns: key("duration_ns"), host: key("host"), pid: key("pid"), tid: key("tid"),
  process_name: key("process_name"), service: key("service"), src_ip: key("src_ip"), dst_ip: key("dst_ip"),
  src_port: key("src_port"), dst_port: key("dst_port"), l7_proto: key("l7_proto"), thread_trace_id: key("thread_trace_id"),
  operation: key("operation"), http_method: key("http_method"), http_route: key("http_route"),
  http_version: key("http_version"), http_status_code: key("http_status_code"), status: key("status"),
  bytes_read: key("bytes_read"), bytes_written: key("bytes_written"), app_trace_id: key("app_trace_id"),
  app_parent_id: key("app_parent_id"), app_sampled: key("app_sampled"), attributes: key("attributes"),
};

/** Strings up to this long fit in the room a span reserves up front; longer ones reserve more. */
const SHORT_STRING = 64;
/** Room reserved before a span: every key, every number and literal at its longest (24
 * characters: "-1.2345678901234567e+308"), every string field at SHORT_STRING, quotes, braces. */
const SPAN_BYTES = 2048;

/**
 * The bytes of a run of consecutive fields as written for `span`. Most of a span's JSON repeats
 * from span to span: host .. dst_ip for every span of a thread talking to one peer address
 * (the ports, which change with every connection, are written after it), operation .. status
 * for every span of an endpoint. A run whose values are the same (===) as the remembered span's is
 * one copy of its bytes instead of a field-by-field write (~0.5 µs a span).
 */
interface Run {
  span: AgentSpan;
  bytes: Uint8Array;
}

/** Runs remembered per kind, direct-mapped: a collision only costs a rewrite (two runs in one
 * slot rewrite each other every time they alternate). */
const RUN_SLOTS = 1024;
/** A peer run's slot: its thread, process and the last characters of its addresses, mixed
 * (Fibonacci hashing). */
const endpointSlot = (s: AgentSpan) => {
  const src = s.src_ip;
  const dst = s.dst_ip;
  const ips = (src.length << 24) ^ (dst.length << 16) ^ (src.charCodeAt(src.length - 1) << 8) ^ dst.charCodeAt(dst.length - 1);
  return Math.imul(ips ^ Math.imul(s.tid, 0x85ebca6b) ^ Math.imul(s.pid, 0xc2b2ae35), 0x9e3779b1) >>> 22;
};

const sameEndpoint = (a: AgentSpan, b: AgentSpan) =>
  a.tid === b.tid && a.pid === b.pid && a.host === b.host && a.process_name === b.process_name && a.service === b.service &&
  a.src_ip === b.src_ip && a.dst_ip === b.dst_ip;

const sameHttp = (a: AgentSpan, b: AgentSpan) =>
  a.http_status_code === b.http_status_code && a.http_method === b.http_method && a.http_route === b.http_route &&
  a.http_version === b.http_version && a.status === b.status && a.operation === b.operation; // a rope: compared last

/** An http run's slot: its status and the length of its operation. */
const httpSlot = (s: AgentSpan) => ((s.http_status_code ?? 0) + (s.operation?.length ?? 0) * 7) & (RUN_SLOTS - 1);

/** A staged span's slots (agent/native/src/span_encoder.cc Slot): flags, then the six numbers
 * AgentSpan.wire writes, then the rest. */
const enum Staged {
  Flags, Wire, ReqSeq = Wire + 6, RespSeq, Duration, EndpointRun, HttpRun, BytesRead, BytesWritten, SrcPort, DstPort,
  Stride = 16,
}
const enum StagedFlag { Comma = 1, Exit = 2, Thread = 4, Read = 8, Written = 16, Tcp = 32 }
/** Spans staged before the addon writes them (a call each time). */
const STAGE_SPANS = 256;
/** Room a staged span takes besides its two runs, comma included (span_json.h's FIXED + 1). */
const STAGED_BYTES = 513;

const isU32 = (v: unknown) => typeof v === "number" && v >>> 0 === v;
/** A number the addon writes as JSON.stringify does: an integer in [0, 2^53). */
const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;

/** The addon's encoder for a writer, or undefined when the addon cannot load here (JS writes
 * every span then). */
function nativeEncoder(stage: Float64Array, positions: Uint32Array): SpanEncoder | undefined {
  try {
    return createSpanEncoder(stage, positions);
  } catch {
    return undefined;
  }
}

const COMMA = Buffer.from(",");

/** "00" .. "99" as ASCII byte pairs. */
const PAIRS = new Uint8Array(200);
for (let i = 0; i < 100; i++) {
  PAIRS[2 * i] = 0x30 + Math.floor(i / 10);
  PAIRS[2 * i + 1] = 0x30 + (i % 10);
}

/** A growing byte buffer that a list of eSpans is written into as JSON. */
export class SpanJsonWriter {
  buf: Buffer;
  /** Bytes written (spans staged are not: flush() first). */
  n = 0;
  /** Where each span item() added starts and ends in buf (of staged ones: once flushed). */
  starts: number[] = [];
  ends: number[] = [];
  /** Runs of fields that repeat from span to span, by a hash of some of their values. */
  private readonly endpointRuns: (Run | undefined)[] = new Array<Run | undefined>(RUN_SLOTS).fill(undefined);
  private readonly httpRuns: (Run | undefined)[] = new Array<Run | undefined>(RUN_SLOTS).fill(undefined);
  /** Spans staged for the addon (Staged slots), where it says they went, and how many. */
  private readonly stage = new Float64Array(STAGE_SPANS * Staged.Stride);
  private readonly positions = new Uint32Array(2 * STAGE_SPANS);
  private staged = 0;
  /** Spans the addon wrote (tests, diagnostics). */
  encodedNatively = 0;
  /** Room the staged spans may take. */
  private stagedBytes = 0;
  /** The spans staged (written by JS if the addon fails). */
  private readonly stagedSpans: (AgentSpan | undefined)[] = new Array<AgentSpan | undefined>(STAGE_SPANS).fill(undefined);
  /** Undefined when the addon cannot load here, or once it failed. */
  private native: SpanEncoder | undefined;

  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
    this.native = nativeEncoder(this.stage, this.positions);
  }

  /** Raw bytes (punctuation), after the spans staged. */
  bytes(b: Uint8Array): void {
    this.flush();
    this.reserve(b.length);
    this.copy(b);
  }

  /** The next span of a list, after a comma unless it is the list's first (since clearItems):
   * staged, or written now. */
  item(s: ESpan): void {
    const comma = this.starts.length > 0;
    if (s instanceof AgentSpan && this.staging(s, comma)) return;
    this.flush();
    if (comma) this.bytes(COMMA);
    this.starts.push(this.n);
    this.span(s);
    this.ends.push(this.n);
  }

  /** Starts a new list (the bytes written stay). */
  clearItems(): void {
    this.flush();
    this.starts = [];
    this.ends = [];
  }

  /** Has the addon write the spans staged. */
  flush(): void {
    const count = this.staged;
    if (count === 0) return;
    this.staged = 0;
    this.reserve(this.stagedBytes);
    this.stagedBytes = 0;
    const { starts, ends, positions, stagedSpans } = this;
    const first = starts.length - count;
    try {
      this.n = this.native!.encode(this.buf, this.n, count);
    } catch {
      // A bug (staging() lets through only what the addon writes): JS writes these spans, and
      // every span from now on; the batch stays whole.
      this.native = undefined;
      for (let i = 0; i < count; i++) {
        if (first + i > 0) this.bytes(COMMA);
        starts[first + i] = this.n;
        this.span(stagedSpans[i]!);
        ends[first + i] = this.n;
      }
      stagedSpans.fill(undefined);
      return;
    }
    this.encodedNatively += count;
    for (let i = 0; i < count; i++) {
      starts[first + i] = positions[2 * i];
      ends[first + i] = positions[2 * i + 1];
      stagedSpans[i] = undefined;
    }
  }

  /**
   * Stages `s` for the addon when every value of it is one the addon writes: its runs are
   * remembered, its ids and start are the ones it was built with (AgentSpan.wire), its numbers
   * are integers the addon writes as JSON.stringify does, and it has none of the rarer fields
   * (app context, attributes). False (nothing staged) otherwise.
   */
  private staging(s: AgentSpan, comma: boolean): boolean {
    if (this.native === undefined) return false;
    const e = endpointSlot(s);
    const h = httpSlot(s);
    const endpoint = this.endpointRuns[e];
    const http = this.httpRuns[h];
    if (endpoint === undefined || http === undefined || !sameEndpoint(endpoint.span, s) || !sameHttp(http.span, s)) return false;
    const { kind, req_seq, resp_seq, duration_ns, bytes_read, bytes_written, src_port, dst_port, l7_proto } = s;
    if ((kind !== "entry" && kind !== "exit") || !isU32(req_seq) || !isU32(resp_seq) || !isCount(duration_ns) ||
      !isCount(src_port) || !isCount(dst_port) || (l7_proto !== "http" && l7_proto !== "tcp") ||
      (bytes_read !== undefined && !isCount(bytes_read)) || (bytes_written !== undefined && !isCount(bytes_written)) ||
      s.app_trace_id !== undefined || s.app_parent_id !== undefined || s.app_sampled !== undefined || s.attributes !== undefined) {
      return false;
    }
    const st = this.stage;
    const at = this.staged * Staged.Stride;
    if (!s.wire(st, at + Staged.Wire)) return false;
    st[at + Staged.Flags] = (comma ? StagedFlag.Comma : 0) | (kind === "exit" ? StagedFlag.Exit : 0) |
      (s.thread_trace_id !== undefined ? StagedFlag.Thread : 0) | (bytes_read !== undefined ? StagedFlag.Read : 0) |
      (bytes_written !== undefined ? StagedFlag.Written : 0) | (l7_proto === "tcp" ? StagedFlag.Tcp : 0);
    st[at + Staged.ReqSeq] = req_seq;
    st[at + Staged.RespSeq] = resp_seq;
    st[at + Staged.Duration] = duration_ns;
    st[at + Staged.EndpointRun] = e;
    st[at + Staged.HttpRun] = h;
    st[at + Staged.BytesRead] = bytes_read ?? 0;
    st[at + Staged.BytesWritten] = bytes_written ?? 0;
    st[at + Staged.SrcPort] = src_port;
    st[at + Staged.DstPort] = dst_port;
    this.stagedSpans[this.staged] = s;
    this.starts.push(-1); // where: once flushed
    this.ends.push(-1);
    this.stagedBytes += STAGED_BYTES + endpoint.bytes.length + http.bytes.length;
    if (++this.staged === STAGE_SPANS) this.flush();
    return true;
  }

  /** One span, as JSON.stringify(span) would write it (nothing staged before it). */
  private span(s: ESpan): void {
    if (!(s instanceof AgentSpan)) {
      this.stringified(JSON.stringify(s));
      return;
    }
    this.reserve(SPAN_BYTES);
    this.str(K.span_id, s.span_id);
    this.str(K.kind, s.kind);
    this.num(K.req_seq, s.req_seq);
    this.num(K.resp_seq, s.resp_seq);
    this.str(K.start_ns, s.start_ns);
    this.num(K.duration_ns, s.duration_ns);
    const e = endpointSlot(s);
    const endpoint = this.endpointRuns[e];
    if (endpoint !== undefined && sameEndpoint(endpoint.span, s)) this.run(endpoint.bytes);
    else this.endpointRuns[e] = this.remembered(s, this.endpoint, e);
    this.num(K.src_port, s.src_port);
    this.num(K.dst_port, s.dst_port);
    this.str(K.l7_proto, s.l7_proto);
    this.value(K.thread_trace_id, s.thread_trace_id);
    const h = httpSlot(s);
    const http = this.httpRuns[h];
    if (http !== undefined && sameHttp(http.span, s)) this.run(http.bytes);
    else this.httpRuns[h] = this.remembered(s, this.http, RUN_SLOTS + h);
    this.value(K.bytes_read, s.bytes_read);
    this.value(K.bytes_written, s.bytes_written);
    this.value(K.app_trace_id, s.app_trace_id);
    this.value(K.app_parent_id, s.app_parent_id);
    this.value(K.app_sampled, s.app_sampled);
    if (s.attributes !== undefined) {
      this.copy(K.attributes);
      this.stringified(JSON.stringify(s.attributes));
    }
    this.buf[this.n++] = 0x7d; // }
  }

  /** Makes room for `more` bytes after what is written (keeping it). */
  reserve(more: number): void {
    const need = this.n + more;
    if (need <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(need, 2 * this.buf.length));
    this.buf.copy(bigger, 0, 0, this.n);
    this.buf = bigger;
  }

  /** host .. dst_ip: the same for every span of a thread talking to one peer address. */
  private endpoint(s: AgentSpan): void {
    this.str(K.host, s.host);
    this.num(K.pid, s.pid);
    this.num(K.tid, s.tid);
    this.str(K.process_name, s.process_name);
    this.str(K.service, s.service);
    this.str(K.src_ip, s.src_ip);
    this.str(K.dst_ip, s.dst_ip);
  }

  /** operation .. status: the same for every span of an endpoint that answers alike. */
  private http(s: AgentSpan): void {
    this.value(K.operation, s.operation);
    this.value(K.http_method, s.http_method);
    this.value(K.http_route, s.http_route);
    this.value(K.http_version, s.http_version);
    this.value(K.http_status_code, s.http_status_code);
    this.value(K.status, s.status);
  }

  /** Writes a run of fields and remembers its bytes with the span they came from; the addon
   * keeps a copy as its run `index` (no span staged refers to the run it replaces: a span is
   * written here only after the staged ones, flush()). */
  private remembered(s: AgentSpan, write: (this: SpanJsonWriter, s: AgentSpan) => void, index: number): Run {
    const at = this.n;
    write.call(this, s);
    const bytes = Uint8Array.prototype.slice.call(this.buf, at, this.n);
    this.native?.setRun(index, bytes);
    return { span: s, bytes };
  }

  /** A remembered run's bytes (with room for the rest of the span after them). */
  private run(bytes: Uint8Array): void {
    this.reserve(bytes.length + SPAN_BYTES);
    this.buf.set(bytes, this.n);
    this.n += bytes.length;
  }

  /** A field whose value may be any JSON scalar, or undefined (left out, as JSON.stringify does). */
  private value(k: Uint8Array, v: string | number | boolean | null | undefined): void {
    if (v === undefined) return;
    if (typeof v === "string") this.str(k, v);
    else if (typeof v === "number") this.num(k, v);
    else {
      this.copy(k);
      this.ascii(v === null ? "null" : v ? "true" : "false");
    }
  }

  /** Bytes into room already reserved. */
  private copy(b: Uint8Array): void {
    const buf = this.buf;
    let n = this.n;
    for (let i = 0; i < b.length; i++) buf[n++] = b[i];
    this.n = n;
  }

  private str(k: Uint8Array, s: string): void {
    this.copy(k);
    const len = s.length;
    if (len > SHORT_STRING) this.reserve(len + SPAN_BYTES);
    const buf = this.buf;
    const start = this.n;
    let n = start;
    buf[n++] = 0x22;
    for (let i = 0; i < len; i++) {
      const c = s.charCodeAt(i);
      // control characters, quote, backslash and non-ASCII: JSON.stringify's escaping and UTF-8
      if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7f) {
        this.n = start;
        this.stringified(JSON.stringify(s));
        return;
      }
      buf[n++] = c;
    }
    buf[n++] = 0x22;
    this.n = n;
  }

  private num(k: Uint8Array, v: number): void {
    this.copy(k);
    if (Number.isSafeInteger(v) && v >= 0) this.digits(v);
    else this.ascii(JSON.stringify(v)); // negative, fractional, NaN (null)
  }

  /** A safe integer >= 0 in decimal: int32 arithmetic, 8 digits at a time. */
  private digits(v: number): void {
    if (v >= 1e8) {
      const high = Math.floor(v / 1e8);
      this.digits(high);
      this.fixedDigits(v - high * 1e8, 8);
      return;
    }
    const x = v | 0;
    const len = x < 10 ? 1 : x < 100 ? 2 : x < 1000 ? 3 : x < 10000 ? 4 : x < 100000 ? 5 : x < 1000000 ? 6 : x < 10000000 ? 7 : 8;
    this.fixedDigits(x, len);
  }

  /** x (< 1e8) as exactly `len` digits, zeros first: two at a time from a table (half the
   * divisions, which are most of the cost). */
  private fixedDigits(x: number, len: number): void {
    const buf = this.buf;
    const n = this.n;
    let i = n + len - 1;
    for (; i > n; i -= 2) {
      const q = (x / 100) | 0;
      const d = (x - q * 100) << 1;
      buf[i] = PAIRS[d + 1];
      buf[i - 1] = PAIRS[d];
      x = q;
    }
    if (i === n) buf[n] = 0x30 + x;
    this.n = n + len;
  }

  /** A string of ASCII characters, as is (within the room reserved). */
  private ascii(s: string): void {
    const buf = this.buf;
    let n = this.n;
    for (let i = 0; i < s.length; i++) buf[n++] = s.charCodeAt(i);
    this.n = n;
  }

  /** JSON text (JSON.stringify's output) as UTF-8, with room for the rest of a span after it. */
  private stringified(text: string): void {
    this.reserve(3 * text.length + SPAN_BYTES);
    this.n += this.buf.write(text, this.n, "utf8");
  }
}
