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

export function buildSpan(x: Exchange, ctx: SpanContext): ESpan {
  const end = x.respEndNs ?? x.respStartNs ?? x.reqStartNs;
  const span: ESpan = {
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
  };
  if (x.threadTraceId !== undefined) span.thread_trace_id = x.threadTraceId;
  const req = x.request;
  if (req) {
    span.operation = `${req.method} ${req.path}`;
    span.http_method = req.method;
    span.http_route = req.path;
    if (req.version !== undefined) span.http_version = req.version;
  }
  const status = x.response?.status;
  if (status !== undefined) {
    span.http_status_code = status;
    if (span.http_version === undefined && x.response!.version !== undefined) span.http_version = x.response!.version;
    span.status = status >= (x.kind === "entry" ? 500 : 400) ? "error" : "ok";
  }
  const [read, written] = x.kind === "entry" ? [x.reqBytes, x.respBytes] : [x.respBytes, x.reqBytes];
  if (read !== undefined) span.bytes_read = read;
  if (written !== undefined) span.bytes_written = written;
  if (x.app) {
    span.app_trace_id = x.app.app_trace_id;
    if (x.app.app_parent_id !== undefined) span.app_parent_id = x.app.app_parent_id;
    if (x.app.app_sampled !== undefined) span.app_sampled = x.app.app_sampled;
  }
  const attributes: Record<string, string | number | boolean> = {};
  if (x.reqOffset > 0) attributes["espan.pipelined_offset"] = x.reqOffset;
  if (x.respSeqUnresolved) attributes["espan.resp_seq"] = "unresolved";
  if (x.respEndUnknown) attributes["espan.response_end"] = "unknown";
  if (req && !req.headComplete) attributes["espan.request_head"] = "truncated";
  if (Object.keys(attributes).length > 0) span.attributes = attributes;
  return span;
}
