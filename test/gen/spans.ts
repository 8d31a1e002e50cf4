/**
 * Turns one request/response of the model into the eSpan an agent would send for one side of it.
 * Both sides share the seqs, protocol fields and any W3C header; each side reports addresses and
 * byte counts from its own socket's point of view.
 */
import type { ESpan } from "../../contract/espan.ts";
import type { Conn } from "./tcp.ts";
import type { Proc, Route } from "./topology.ts";

/** W3C context as it travels in a request header (traceparent). */
export interface AppCtx {
  traceId: string;
  parentId: string;
  sampled: boolean;
}

/** One request/response on a connection: what both of its spans share. */
export interface Exchange {
  conn: Conn;
  proto: string;
  route: Route;
  /** HTTP status; for databases 0 = ok, else an error. */
  code: number;
  reqSeq: number;
  respSeq: number;
  reqBytes: number;
  respBytes: number;
  /** The caller's exit span id, "" when the caller is untraced. */
  exitId: string;
  rootId: string;
  /** The header on the wire: written by an instrumented caller, never sent to a database. */
  ctx: AppCtx | null;
}

/**
 * Each shape is one object literal (all fields at once, no later additions but the rare ones):
 * a million spans then cost one allocation each instead of growing property stores.
 * thread_trace_id comes last so that dropping it (client roots) is V8's cheap last-property delete.
 */
export function makeSpan(
  kind: "entry" | "exit",
  id: string,
  ttid: string | undefined,
  startNs: string,
  durationNs: number,
  proc: Proc,
  tid: number,
  x: Exchange,
): ESpan {
  const exit = kind === "exit";
  const c = x.conn;
  let s: ESpan;
  if (x.route.method !== undefined) {
    s = {
      span_id: id,
      kind,
      req_seq: x.reqSeq,
      resp_seq: x.respSeq,
      start_ns: startNs,
      duration_ns: durationNs,
      host: proc.host.name,
      pid: proc.pid,
      tid,
      process_name: proc.processName,
      service: proc.service,
      src_ip: exit ? c.clientIp : c.serverIp,
      src_port: exit ? c.clientPort : c.serverPort,
      dst_ip: exit ? c.dialIp : c.peerIp,
      dst_port: exit ? c.dialPort : c.peerPort,
      l7_proto: x.proto,
      operation: x.route.operation,
      http_method: x.route.method,
      http_route: x.route.route,
      http_status_code: x.code,
      http_version: x.proto === "grpc" ? "2" : "1.1",
      bytes_read: exit ? x.respBytes : x.reqBytes,
      bytes_written: exit ? x.reqBytes : x.respBytes,
      status: x.code >= 500 ? "error" : "ok",
      thread_trace_id: ttid,
    };
  } else {
    s = {
      span_id: id,
      kind,
      req_seq: x.reqSeq,
      resp_seq: x.respSeq,
      start_ns: startNs,
      duration_ns: durationNs,
      host: proc.host.name,
      pid: proc.pid,
      tid,
      process_name: proc.processName,
      service: proc.service,
      src_ip: exit ? c.clientIp : c.serverIp,
      src_port: exit ? c.clientPort : c.serverPort,
      dst_ip: exit ? c.dialIp : c.peerIp,
      dst_port: exit ? c.dialPort : c.peerPort,
      l7_proto: x.proto,
      operation: x.route.operation,
      bytes_read: exit ? x.respBytes : x.reqBytes,
      bytes_written: exit ? x.reqBytes : x.respBytes,
      status: x.code !== 0 ? "error" : "ok",
      thread_trace_id: ttid,
    };
  }
  // Absent, not undefined: "no thread id" must look the same as on the wire.
  if (ttid === undefined) delete s.thread_trace_id;
  // The exit wrote the header, the entry read it: any traced server shows it, instrumented or not.
  if (x.ctx !== null) {
    s.app_trace_id = x.ctx.traceId;
    s.app_parent_id = x.ctx.parentId;
    s.app_sampled = x.ctx.sampled;
  }
  return s;
}
