/**
 * A linked eSpan as an OpenTelemetry span (the SDK's ReadableSpan shape), so the official
 * OTLP serializers (@opentelemetry/otlp-transformer) encode it: JSON and protobuf alike.
 * Attributes follow the OTel semantic conventions (HTTP, network, resource); what has no
 * convention keeps its eSpan name under `espan.`.
 */
import type { Attributes, HrTime, SpanContext } from "@opentelemetry/api";
import { resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import type { ESpan, LinkedSpan } from "../../contract/espan.ts";
import { ESPAN_FIELDS } from "../../contract/espan.ts";

// @opentelemetry/api's enums, as numbers (a type-only import keeps the api out of the bundle).
const KIND_SERVER = 1;
const KIND_CLIENT = 2;
const STATUS_UNSET = 0;
const STATUS_ERROR = 2;
const TRACE_FLAG_SAMPLED = 1;

export const SCOPE = { name: "espan", version: "0.1.0" };

/** Fields that become something other than a plain `espan.*` attribute. */
const MAPPED = new Set([
  "span_id", "kind", "start_ns", "duration_ns", "host", "pid", "tid", "process_name", "service", "src_ip", "dst_ip",
  "src_port", "dst_port", "l7_proto", "operation", "http_method", "http_route", "http_status_code", "http_version",
  "status", "attributes", "trace_id", "parent_id",
]);
const KNOWN = new Set(ESPAN_FIELDS);

/** The resource of a span's process (OTel semantic conventions), in the order it is encoded. */
export function resourceAttributes(s: ESpan): Record<string, string | number | undefined> {
  return {
    "service.name": s.service,
    "host.name": s.host,
    "process.pid": s.pid,
    "process.executable.name": s.process_name,
    "telemetry.sdk.name": "espan",
    "telemetry.sdk.language": "ebpf",
  };
}

/** Resources are shared by spans of the same process; the cache lives as long as its owner (bounded). */
export class ResourceCache {
  private readonly byKey = new Map<string, Resource>();
  constructor(private readonly max = 10_000) {}
  get(s: ESpan): Resource {
    const key = `${s.service}\u0000${s.host}\u0000${s.pid}\u0000${s.process_name}`;
    let r = this.byKey.get(key);
    if (!r) {
      if (this.byKey.size >= this.max) this.byKey.clear();
      r = resourceFromAttributes(resourceAttributes(s));
      this.byKey.set(key, r);
    }
    return r;
  }
}

const NS_PER_S = 1_000_000_000;

/**
 * HrTime of a decimal ns string plus `addNs`, without BigInt: the string splits into seconds
 * and nanoseconds (each exact as a double), the addition carries into the seconds.
 */
export function hrTimeOf(ns: string, addNs = 0): HrTime {
  const cut = ns.length - 9;
  let secs = cut > 0 ? Number(ns.slice(0, cut)) : 0;
  let nanos = Number(cut > 0 ? ns.slice(cut) : ns) + addNs;
  if (nanos >= NS_PER_S) {
    const carry = Math.floor(nanos / NS_PER_S);
    secs += carry;
    nanos -= carry * NS_PER_S;
  }
  return [secs, nanos];
}

/** Fields that never become a plain attribute of their own name (otlp-proto.ts writes the same). */
export const SKIP = new Set([...MAPPED, "req_seq", "resp_seq", "thread_trace_id"]);

/**
 * A span's attributes by the OTel semantic conventions. otlp-proto.ts writes the same keys in the
 * same order straight to protobuf: change both (test/unit/export/otlp-proto.test.ts compares bytes).
 */
export function spanAttributes(s: ESpan): Attributes {
  const server = s.kind === "entry";
  const a: Attributes = {
    "network.transport": "tcp",
    "network.protocol.name": s.l7_proto,
    "network.local.address": s.src_ip,
    "network.local.port": s.src_port,
    "network.peer.address": s.dst_ip,
    "network.peer.port": s.dst_port,
    "server.address": server ? s.src_ip : s.dst_ip,
    "server.port": server ? s.src_port : s.dst_port,
    "thread.id": s.tid,
    "espan.req_seq": s.req_seq,
    "espan.resp_seq": s.resp_seq,
  };
  if (server) {
    a["client.address"] = s.dst_ip;
    a["client.port"] = s.dst_port;
  }
  if (s.http_method !== undefined) a["http.request.method"] = s.http_method;
  if (s.http_route !== undefined && server) a["http.route"] = s.http_route;
  if (s.http_route !== undefined) a["url.path"] = s.http_route;
  if (s.http_status_code !== undefined) a["http.response.status_code"] = s.http_status_code;
  if (s.http_version !== undefined) a["network.protocol.version"] = s.http_version;
  if (s.thread_trace_id) a["espan.thread_trace_id"] = s.thread_trace_id;
  for (const k in s) {
    if (SKIP.has(k)) continue;
    const v = s[k];
    if (v === undefined || v === null || typeof v === "object") continue;
    // Known optional fields (bytes, app ids) and unknown top-level fields alike.
    a[KNOWN.has(k) ? `espan.${k}` : k] = v as string | number | boolean;
  }
  if (s.attributes) Object.assign(a, s.attributes);
  return a;
}

/** SERVER 5xx and CLIENT 4xx/5xx are errors (OTel HTTP conventions), as is status "error". */
export function statusCode(s: ESpan): number {
  if (s.status === "error") return STATUS_ERROR;
  const code = s.http_status_code;
  if (code !== undefined && (code >= 500 || (s.kind === "exit" && code >= 400))) return STATUS_ERROR;
  return STATUS_UNSET;
}

/** The span in the SDK's ReadableSpan shape (structural: the serializers read only these). */
export function toReadableSpan(s: LinkedSpan, resources: ResourceCache) {
  return readableOf(s, s.trace_id, s.parent_id, resources);
}

/**
 * The same from an eSpan and its place in a trace, without a LinkedSpan copy of it. A class,
 * not an object literal with a `spanContext` arrow: no closure per span.
 */
export function readableOf(s: ESpan, traceId: string, parentId: string, resources: ResourceCache): ReadableOf {
  return new ReadableOf(s, traceId, parentId, resources);
}

class ReadableOf {
  readonly name: string;
  readonly kind: number;
  readonly parentSpanContext: (SpanContext & { isRemote: boolean }) | undefined;
  readonly startTime: HrTime;
  readonly endTime: HrTime;
  readonly duration: HrTime;
  readonly status: { code: number };
  readonly attributes: Attributes;
  readonly links = [];
  readonly events = [];
  readonly ended = true;
  readonly resource: Resource;
  readonly instrumentationScope = SCOPE;
  readonly droppedAttributesCount = 0;
  readonly droppedEventsCount = 0;
  readonly droppedLinksCount = 0;
  private readonly ctx: SpanContext;

  constructor(s: ESpan, traceId: string, parentId: string, resources: ResourceCache) {
    const dur = s.duration_ns;
    this.ctx = { traceId, spanId: s.span_id, traceFlags: TRACE_FLAG_SAMPLED };
    this.name = s.operation || `${s.l7_proto} ${s.kind === "entry" ? "server" : "client"}`;
    this.kind = s.kind === "entry" ? KIND_SERVER : KIND_CLIENT;
    this.parentSpanContext = parentId ? { traceId, spanId: parentId, traceFlags: TRACE_FLAG_SAMPLED, isRemote: s.kind === "entry" } : undefined;
    this.startTime = hrTimeOf(s.start_ns);
    this.endTime = hrTimeOf(s.start_ns, dur);
    this.duration = [Math.floor(dur / NS_PER_S), dur % NS_PER_S];
    this.status = { code: statusCode(s) };
    this.attributes = spanAttributes(s);
    this.resource = resources.get(s);
  }

  spanContext(): SpanContext {
    return this.ctx;
  }
}
