// One request/response pair on a connection, from its request's first byte to its response's
// last: what becomes one eSpan. Built by conn.ts, linked by link/thread.ts, turned into an
// eSpan by span.ts.
import type { AppContext } from "../app-context.ts";
import type { ESpan } from "../../../contract/espan.ts";
import type { ProcessEntry } from "../process/directory.ts";
import type { CaptureRecord } from "../record.ts";
import type { HttpHead } from "./http1.ts";

export interface Exchange {
  /** entry: this process read the request (server side); exit: it wrote it (client side). */
  kind: "entry" | "exit";
  connId: bigint;
  /** Process and thread that handled the request start, and the thread's name then. */
  pid: number;
  tid: number;
  comm: string;
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  l7: "http" | "tcp";

  /** TCP seq of the request's first byte: the message's seq + this request's offset in it. */
  reqSeq: number;
  /** Offset of the request in its message (> 0 only for pipelined requests). */
  reqOffset: number;
  /** CLOCK_MONOTONIC of the request's first byte (the syscall that moved it). */
  reqStartNs: bigint;
  /** Head + body length when the captured bytes prove it (pipelining needs it). */
  reqLength?: number;
  reqBytes?: number;
  request?: HttpHead;
  app?: AppContext;

  respSeq?: number;
  respOffset?: number;
  respStartNs?: bigint;
  respEndNs?: bigint;
  respLength?: number;
  respBytes?: number;
  response?: HttpHead;
  /** A pipelined response whose offset in its message could not be known from the capture:
   * resp_seq is the message's first byte (no false link is possible: req_seq is exact). */
  respSeqUnresolved?: boolean;
  /** The connection went idle before the response's end was seen: the span ends at the
   * response's first byte. */
  respEndUnknown?: boolean;
  /** Got a 1xx interim response; the final one may follow after more request bytes. */
  interim?: boolean;

  /** Entry: its own fresh id. Exit: the linked entry's id. Set by the thread linker. */
  threadTraceId?: string;
  /** threadTraceId as two 32-bit numbers (ids.ts lastId), for the JSON writer. */
  threadIdHi: number;
  threadIdLo: number;
  /** Key of the thread the entry is open on in the thread linker, -1 when not open (set by the
   * linker: an entry is open from its request's first byte until its response's). */
  openOn: number;
  /** Neighbours in the list of entries open on that thread. */
  openPrev: Exchange | undefined;
  openNext: Exchange | undefined;
  /** The process as it was when the request started (it may exec into another program
   * before the response ends). Set by the assembler. */
  proc?: ProcessEntry;
}

/** The stage after assembly: the thread linker (link/thread.ts). Called in record order. */
export interface ExchangeSink {
  /** The request's first byte was read (entry) or written (exit). */
  requestStarted(x: Exchange): void;
  /** The response's first byte was written (entry) or read (exit). */
  responseStarted(x: Exchange): void;
  /** Done: `span` is the exchange as an eSpan (null when it gives none: no response, or the
   * process is not traced). Called exactly once per exchange. */
  ended(x: Exchange, span: ESpan | null): void;
}

/**
 * A new exchange for a request starting `offset` bytes into the message of record `r`, on
 * connection `connId` (the record's, as its Conn keeps it: not read again per exchange). Every
 * field is present from the start, so all exchanges share one object shape (fields added one
 * by one later gave V8 a new hidden class each: measured 2x slower assembly).
 */
export function newExchange(r: CaptureRecord, connId: bigint, kind: Exchange["kind"], l7: Exchange["l7"], offset: number): Exchange {
  return {
    kind, connId, pid: r.pid, tid: r.tid, comm: r.comm,
    localIp: r.localIp, localPort: r.localPort, remoteIp: r.remoteIp, remotePort: r.remotePort, l7,
    reqSeq: (r.seq + offset) >>> 0, reqOffset: offset, reqStartNs: r.tsNs, reqLength: undefined, reqBytes: undefined,
    request: undefined, app: undefined,
    respSeq: undefined, respOffset: undefined, respStartNs: undefined, respEndNs: undefined, respLength: undefined,
    respBytes: undefined, response: undefined, respSeqUnresolved: undefined, respEndUnknown: undefined, interim: undefined,
    threadTraceId: undefined, threadIdHi: 0, threadIdLo: 0, openOn: -1, openPrev: undefined, openNext: undefined, proc: undefined,
  };
}
