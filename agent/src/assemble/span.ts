// Exchange → eSpan (ESPAN.md fields; contract/espan.ts is the one type).
//
// status follows the OpenTelemetry HTTP semantic conventions, as the linker's OTLP export does
// (src/export/otlp-span.ts): a server span (entry) is an error for 5xx only, since a 4xx is the
// client's mistake, not the server's; a client span (exit) is an error for 4xx and 5xx. No
// status line seen (non-HTTP, or cut) → no status.
import type { ESpan } from "../../../contract/espan.ts";
import { randomId64 } from "../ids.ts";
import type { Exchange } from "./exchange.ts";

export interface SpanContext {
  host: string;
  processName: string;
  service: string;
  /** CLOCK_MONOTONIC → unix ns. */
  toUnixNs(monoNs: bigint): bigint;
}

/**
 * Every field is in the literal, undefined when absent (JSON leaves it out, as validateESpan
 * does): all spans share one object shape, where adding the optional fields one by one made a
 * new hidden class for each combination, slower to build and to serialise.
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
  return {
    span_id: randomId64(),
    kind: x.kind,
    req_seq: x.reqSeq,
    resp_seq: x.respSeq!,
    start_ns: ctx.toUnixNs(x.reqStartNs).toString(),
    duration_ns: end > x.reqStartNs ? Number(end - x.reqStartNs) : 0,
    host: ctx.host,
    pid: x.pid,
    tid: x.tid,
    process_name: ctx.processName,
    service: ctx.service,
    src_ip: x.localIp,
    dst_ip: x.remoteIp,
    src_port: x.localPort,
    dst_port: x.remotePort,
    l7_proto: x.l7,
    thread_trace_id: x.threadTraceId,
    operation: req ? `${req.method} ${req.path}` : undefined,
    http_method: req?.method,
    http_route: req?.path,
    http_version: req?.version ?? (status !== undefined ? resp!.version : undefined),
    http_status_code: status,
    status: status === undefined ? undefined : status >= (entry ? 500 : 400) ? "error" : "ok",
    bytes_read: read,
    bytes_written: written,
    app_trace_id: app?.app_trace_id,
    app_parent_id: app?.app_parent_id,
    app_sampled: app?.app_sampled,
    attributes,
  };
}
