// One TCP connection: its direction flips → request/response exchanges.
//
// The kernel sends one record per direction flip (the first chunk of each message) with the
// seq of the message's first byte, its first ≤4 KB, and prev_* = first/last time and bytes of
// the message the flip ended; a close record carries the last message's. So:
//
//   server socket: recv flip = request start (entry); the next send flip = its response start.
//   client socket: send flip = request start (exit); the next recv flip = its response start.
//   unknown role (socket older than the agent): from the first payload (request line or status
//   line, and which way it moved); a non-HTTP first message: whoever spoke first is the client.
//
// start = the request's first byte; end = the response's last byte, known at the next flip or
// at close (prev_last_ns), or at once when the response's whole length (Content-Length, or a
// chunked body's end) moved in its first syscall. So the last request on a keep-alive
// connection is exported as soon as its response is complete, not when the next request comes
// (the seed lost it when the connection went idle: reference/datakit.md §2.2). A response
// whose end cannot be seen is exported when the connection has been idle for `idleNs`, ending
// at its first byte (attribute espan.response_end = "unknown").
//
// Pipelining (RFC 9112 §9.3.2): several requests in one message are split by parsing; request
// i gets req_seq = message seq + its byte offset. Their responses come as one message; response
// i gets resp_seq = that message's seq + its offset, known when it was captured or when every
// response before it has a known length. Otherwise resp_seq is the message's seq and the span
// says espan.resp_seq = "unresolved" (it cannot link falsely: its req_seq is exact). Requests
// past the captured bytes are not seen. All requests of one message share its start time, all
// responses of one message its end time.
import { clear } from "./clear.ts";
import { extractAppContext } from "../app-context.ts";
import type { CaptureRecord, Direction } from "../record.ts";
import { newExchange, type Exchange } from "./exchange.ts";
import { looksLikeRequest, looksLikeResponse, parseHead, parseRequests, parseResponses, type ParsedMessage } from "./http1.ts";

const NO_MESSAGES: ParsedMessage[] = [];

/** What a connection tells the assembler (assembler.ts). */
export interface ConnEvents {
  requestStarted(x: Exchange): void;
  responseStarted(x: Exchange): void;
  /** The exchange is complete (or flushed): it becomes a span. */
  finished(x: Exchange): void;
  /** No response will come (connection closed, evicted): no span. */
  abandoned(x: Exchange): void;
  /** A response message with no request seen before it (we joined mid-conversation). */
  orphanResponse(): void;
}

type Role = "client" | "server";

/** The role of a socket whose kernel role is unknown, from its first record with payload. */
export function inferRole(r: CaptureRecord): Role | undefined {
  if (r.role !== "unknown") return r.role;
  const p = r.payload;
  if (p.length === 0 || (r.dir !== "send" && r.dir !== "recv")) return undefined;
  if (looksLikeRequest(p) && parseHead(p)?.kind === "request") return r.dir === "recv" ? "server" : "client";
  if (looksLikeResponse(p)) return r.dir === "recv" ? "client" : "server";
  return r.dir === "send" ? "client" : "server";
}

export class Conn {
  role: Role | undefined;
  /** CLOCK_MONOTONIC of the last record (idle sweep, eviction order). */
  lastNs = 0n;
  /** Neighbours in the assembler's activity order. */
  older: Conn | undefined = undefined;
  newer: Conn | undefined = undefined;
  /** Requests started, no response started yet, oldest first. */
  private awaiting: Exchange[] = [];
  /** The exchanges of the current (or last) request message: its bytes are known at the flip. */
  private readonly requestMsg: Exchange[] = [];
  /** Responses started in the current response message, whose end is not known yet. */
  private responding: Exchange[] = [];
  /** Emptied lists kept for reuse, and the methods of the requests a response answers: a new
   * list per message was a few of the ~2.4 KB the agent allocated per span (with the scan
   * view's reused results: 2.13 KB, replay of a hello-world capture, --trace-gc-nvp). Fewer
   * bytes allocated, fewer scavenges: ~2-3 ms each on our VMs. */
  private spareAwaiting: Exchange[] = [];
  private spareResponding: Exchange[] = [];
  private readonly methods: (string | undefined)[] = [];

  constructor(
    readonly id: bigint,
    /** id's low 53 bits and top 11, as numbers (the assembler's table is keyed by them). */
    readonly key: number,
    readonly top: number,
    private readonly events: ConnEvents,
  ) {}

  onData(r: CaptureRecord): void {
    this.lastNs = r.tsNs;
    if (this.role === undefined) {
      this.role = inferRole(r);
      if (this.role === undefined) return; // nothing to tell by yet
    }
    if (this.isRequestDir(r.dir)) this.onRequestMessage(r);
    else this.onResponseMessage(r);
  }

  onClose(r: CaptureRecord): void {
    this.lastNs = r.tsNs;
    if (this.role === undefined) return;
    if (this.isRequestDir(r.dir)) {
      this.setRequestBytes(r.prevBytes);
    } else {
      this.endResponseMessage(r);
    }
    this.abandonAll();
  }

  /** Exports responses whose end has not been seen after the connection went quiet. */
  flushIdle(): void {
    for (const x of this.responding) {
      x.respEndUnknown = true;
      this.events.finished(x);
    }
    clear(this.responding);
  }

  /** Ends everything (connection evicted from the table or agent stopping). */
  evict(): void {
    this.flushIdle();
    this.abandonAll();
  }

  private isRequestDir(dir: Direction): boolean {
    return (this.role === "server") === (dir === "recv");
  }

  private abandonAll(): void {
    for (const x of this.awaiting) this.events.abandoned(x);
    clear(this.awaiting);
    clear(this.requestMsg);
  }

  private onRequestMessage(r: CaptureRecord): void {
    // A 1xx interim response, then more request bytes that are not a new request: the body
    // after "100 Continue". The exchange waits for its final response again.
    const interim = this.responding.length === 1 && this.responding[0].interim ? this.responding[0] : undefined;
    if (interim && r.payload.length > 0 && !looksLikeRequest(r.payload)) {
      clear(this.responding);
      interim.interim = false;
      this.awaiting.unshift(interim);
      return;
    }
    this.endResponseMessage(r);

    const kind = this.role === "server" ? "entry" : "exit";
    // The addon's scan when it has one (http1-scan.ts), else the bytes parsed here.
    const parsed = r.scan?.requests() ?? (r.payload.length > 0 ? parseRequests(r.payload) : NO_MESSAGES);
    const started = this.requestMsg;
    clear(started);
    if (parsed.length === 0) started.push(newExchange(r, this.id, kind, "tcp", 0));
    for (const p of parsed) {
      const x = newExchange(r, this.id, kind, "http", p.offset);
      x.reqLength = p.bytes;
      x.request = p.head;
      x.app = extractAppContext(p.head.headers);
      started.push(x);
    }
    for (const x of started) {
      this.awaiting.push(x);
      this.events.requestStarted(x);
    }
  }

  private onResponseMessage(r: CaptureRecord): void {
    this.setRequestBytes(r.prevBytes);
    const answered = this.awaiting;
    this.awaiting = this.spareAwaiting;
    this.spareAwaiting = answered; // emptied at the end (nothing in between starts a request)
    if (answered.length === 0) {
      this.events.orphanResponse();
      return;
    }
    let messages: ParsedMessage[] = NO_MESSAGES;
    let nextOffset: number | undefined;
    if (answered[0].l7 === "http" && (r.scan !== undefined || r.payload.length > 0)) {
      const methods = this.methods;
      clear(methods);
      for (const x of answered) methods.push(x.request?.method);
      ({ messages, nextOffset } = r.scan?.responses(methods) ?? parseResponses(r.payload, methods));
    }
    const n = answered.length;
    for (let i = 0; i < n; i++) {
      const x = answered[i];
      const m = i < messages.length ? messages[i] : undefined;
      // Where the response starts in this message (respOffset), to tell whether it is whole.
      if (x.respSeq !== undefined) {
        // The final response after "100 Continue" and the request body: resp_seq stays the
        // first response byte (the 1xx), which both peers saw as the response's start.
        x.respOffset = m ? m.offset : 0; // bytes_* count the final response's message only
      } else {
        let offset: number;
        if (m) offset = m.offset;
        else if (i === 0) offset = 0; // the response's first byte is the message's, HTTP or not
        else if (i === messages.length && nextOffset !== undefined) offset = nextOffset;
        else {
          offset = 0;
          x.respSeqUnresolved = true;
        }
        x.respSeq = (r.seq + offset) >>> 0;
        x.respOffset = offset;
        x.respStartNs = r.tsNs;
      }
      if (m) {
        x.response = m.head;
        x.respLength = m.bytes;
        x.interim = m.head.status! < 200 && m.head.status !== 101;
      }
      // A 1xx is not the answer: the handler still works on the request (an entry stays open).
      if (!x.interim) this.events.responseStarted(x);
    }
    for (let i = 0; i < n; i++) {
      const x = answered[i];
      // The whole response moved in this first syscall: it is complete now.
      if (!x.interim && x.respLength !== undefined && x.respOffset! + x.respLength <= r.bytes) {
        x.respEndNs = r.tsNs;
        x.respBytes = x.respLength;
        this.events.finished(x);
      } else {
        this.responding.push(x);
      }
    }
    clear(answered);
  }

  /** The request message ended with `bytes` in all: each request gets its share. */
  private setRequestBytes(bytes: number): void {
    const msg = this.requestMsg;
    const n = msg.length;
    if (n === 0) return;
    for (let i = 0; i < n; i++) {
      const x = msg[i];
      if (x.reqLength !== undefined && i < n - 1) x.reqBytes = x.reqLength;
      else if (i === n - 1 && bytes > 0) x.reqBytes = Math.max(0, bytes - x.reqOffset);
    }
    clear(msg);
  }

  /** The response message ended (record `r` says when, and its bytes in all: prev_*): its
   * exchanges are done. */
  private endResponseMessage(r: CaptureRecord): void {
    const done = this.responding;
    const n = done.length;
    if (n === 0) return;
    this.responding = this.spareResponding;
    this.spareResponding = done;
    const endNs = r.prevLastNs;
    const bytes = r.prevBytes;
    for (let i = 0; i < n; i++) {
      const x = done[i];
      x.respEndNs = endNs > 0n ? endNs : x.respStartNs;
      if (x.respLength !== undefined && i < n - 1) x.respBytes = x.respLength;
      else if (i === n - 1 && bytes > 0) x.respBytes = Math.max(0, bytes - x.respOffset!);
      this.events.finished(x);
    }
    clear(done);
  }
}
