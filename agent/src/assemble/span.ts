// Exchange → eSpan (ESPAN.md fields; contract/espan.ts is the one type).
//
// status follows the OpenTelemetry HTTP semantic conventions, as the linker's OTLP export does
// (src/export/otlp-span.ts): a server span (entry) is an error for 5xx only, since a 4xx is the
// client's mistake, not the server's; a client span (exit) is an error for 4xx and 5xx. No
// status line seen (non-HTTP, or cut) → no status.
import type { AttributeValue, ESpan, SpanKind } from "../../../contract/espan.ts";
import { lastId, randomId64 } from "../ids.ts";
import type { Exchange } from "./exchange.ts";

/**
 * An eSpan as the agent builds it: a class so that every span has the same fields in the same
 * order, which is what lets the shipper's SpanJsonWriter (ship/span-json.ts) write them without
 * looking at the keys. Fields are in the order JSON.stringify visits them; undefined ones are
 * left out.
 */
export class AgentSpan implements ESpan {
  [extra: string]: unknown;
  /** span_id, start_ns and thread_trace_id as numbers (setWire), with the strings they stand
   * for: the shipper's JSON writer has the addon write those fields from the numbers while the
   * fields still hold these strings (ship/span-json.ts). Private fields, which JSON.stringify
   * and the eSpan's keys never see. */
  #id: string | undefined = undefined;
  #start: string | undefined = undefined;
  #thread: string | undefined = undefined;
  #idHi = 0;
  #idLo = 0;
  #startHi = 0;
  #startLo = 0;
  #threadHi = 0;
  #threadLo = 0;

  constructor(
    public span_id: string,
    public kind: SpanKind,
    public req_seq: number,
    public resp_seq: number,
    public start_ns: string,
    public duration_ns: number,
    public host: string,
    public pid: number,
    public tid: number,
    public process_name: string,
    public service: string,
    public src_ip: string,
    public dst_ip: string,
    public src_port: number,
    public dst_port: number,
    public l7_proto: string,
    public thread_trace_id: string | null | undefined,
    public operation: string | undefined,
    public http_method: string | undefined,
    public http_route: string | undefined,
    public http_version: string | undefined,
    public http_status_code: number | undefined,
    public status: "ok" | "error" | undefined,
    public bytes_read: number | undefined,
    public bytes_written: number | undefined,
    public app_trace_id: string | undefined,
    public app_parent_id: string | undefined,
    public app_sampled: boolean | undefined,
    public attributes: Record<string, AttributeValue> | undefined,
  ) {}

  /** The numbers of span_id (ids.ts lastId), of start_ns (its high and low 32 bits) and of
   * thread_trace_id as the fields hold them now. */
  setWire(idHi: number, idLo: number, startHi: number, startLo: number, threadHi: number, threadLo: number): void {
    if (!(startHi >= 0 && startHi <= 0xffff_ffff)) return; // not a u64 (never: a clock gone wrong)
    this.#id = this.span_id;
    this.#start = this.start_ns;
    this.#thread = this.thread_trace_id ?? undefined;
    this.#idHi = idHi;
    this.#idLo = idLo;
    this.#startHi = startHi;
    this.#startLo = startLo;
    this.#threadHi = threadHi;
    this.#threadLo = threadLo;
  }

  /** Writes those numbers at out[at .. at + 5] (id hi, lo, start hi, lo, thread hi, lo), or
   * returns false when none were given or span_id, start_ns or thread_trace_id was changed
   * since (a string set later is written from itself). */
  wire(out: Float64Array, at: number): boolean {
    if (this.#id === undefined || this.span_id !== this.#id || this.start_ns !== this.#start || this.thread_trace_id !== this.#thread) return false;
    out[at] = this.#idHi;
    out[at + 1] = this.#idLo;
    out[at + 2] = this.#startHi;
    out[at + 3] = this.#startLo;
    out[at + 4] = this.#threadHi;
    out[at + 5] = this.#threadLo;
    return true;
  }
}

export interface SpanContext {
  host: string;
  processName: string;
  service: string;
  /** CLOCK_MONOTONIC → unix ns. */
  toUnixNs(monoNs: bigint): bigint;
}

/** Operations made, direct-mapped by their method and path (operationOf). */
const OPERATION_SLOTS = 256;
const operations: ({ method: string | undefined; path: string | undefined; op: string } | undefined)[] =
  new Array(OPERATION_SLOTS).fill(undefined);

/**
 * `${method} ${path}`, the same string as for the same method and path before when it is in
 * the cache: no new concatenation per span (a rope, which the JSON writer then reads character
 * by character through V8's slow path), and the writer's runs compare it by identity.
 */
function operationOf(method: string | undefined, path: string | undefined): string {
  const slot = ((path?.length ?? 0) * 7 + (method?.length ?? 0) + (path !== undefined && path.length > 1 ? path.charCodeAt(1) : 0)) & (OPERATION_SLOTS - 1);
  const hit = operations[slot];
  if (hit !== undefined && hit.method === method && hit.path === path) return hit.op;
  const op = `${method} ${path}`;
  if (op.length <= 512) operations[slot] = { method, path, op };
  return op;
}

/**
 * Every field is given, undefined when absent (JSON leaves it out, as validateESpan does): all
 * spans share one object shape (AgentSpan), where adding the optional fields one by one made a
 * new hidden class for each combination, slower to build and to serialise; the shipper's JSON
 * writer relies on that shape.
 */
export function buildSpan(x: Exchange, ctx: SpanContext): ESpan {
  const end = x.respEndNs ?? x.respStartNs ?? x.reqStartNs;
  const req = x.request;
  const resp = x.response;
  const status = resp?.status;
  const entry = x.kind === "entry";
  const read = entry ? x.reqBytes : x.respBytes;
  const written = entry ? x.respBytes : x.reqBytes;
  const app = x.app;
  let attributes: Record<string, string | number | boolean> | undefined;
  if (x.reqOffset > 0) (attributes ??= {})["espan.pipelined_offset"] = x.reqOffset;
  if (x.respSeqUnresolved) (attributes ??= {})["espan.resp_seq"] = "unresolved";
  if (x.respEndUnknown) (attributes ??= {})["espan.response_end"] = "unknown";
  if (req && !req.headComplete) (attributes ??= {})["espan.request_head"] = "truncated";
  const spanId = randomId64();
  const idHi = lastId.hi;
  const idLo = lastId.lo;
  const start = ctx.toUnixNs(x.reqStartNs);
  const span = new AgentSpan(
    spanId, // span_id
    x.kind, // kind
    x.reqSeq, // req_seq
    x.respSeq!, // resp_seq
    start.toString(), // start_ns
    end > x.reqStartNs ? Number(end - x.reqStartNs) : 0, // duration_ns
    ctx.host, // host
    x.pid, // pid
    x.tid, // tid
    ctx.processName, // process_name
    ctx.service, // service
    x.localIp, // src_ip
    x.remoteIp, // dst_ip
    x.localPort, // src_port
    x.remotePort, // dst_port
    x.l7, // l7_proto
    x.threadTraceId, // thread_trace_id
    req ? operationOf(req.method, req.path) : undefined, // operation
    req?.method, // http_method
    req?.path, // http_route
    req?.version ?? (status !== undefined ? resp!.version : undefined), // http_version
    status, // http_status_code
    status === undefined ? undefined : status >= (entry ? 500 : 400) ? "error" : "ok", // status
    read, // bytes_read
    written, // bytes_written
    app?.app_trace_id, // app_trace_id
    app?.app_parent_id, // app_parent_id
    app?.app_sampled, // app_sampled
    attributes, // attributes
  );
  span.setWire(idHi, idLo, Number(start >> 32n), Number(start & 0xffff_ffffn), x.threadIdHi, x.threadIdLo);
  return span;
}
