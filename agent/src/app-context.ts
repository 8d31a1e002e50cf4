// The application's own trace context, read from request headers: W3C `traceparent`, Datadog
// `x-datadog-*`, Zipkin B3 (`b3` single header and `X-B3-*`). Output in eSpan form: a 128-bit
// trace id as 32 lower-case hex, the parent span id as 16 lower-case hex, the sampled flag.
//
// Precedence: W3C, then Datadog, then B3 (single header, then multi). W3C first because it is
// the standard, what OpenTelemetry sends by default, and the only one that carries the whole
// 128-bit id in one field; an app that sends several formats (Datadog tracers configured for
// "datadog,tracecontext") names the same trace in each. The seed read Datadog first; either
// order gives the same trace for such apps. A format whose value is invalid is skipped and the
// next one is tried: a bad header never hides a good one, and never throws.
//
// Traps of the seed this avoids (reference/datakit.md §2.3): header names are matched in any
// case (the caller lower-cases them); the W3C sampled flag is bit 0 of trace-flags ("01"/"00"),
// not the string "1"; Datadog's high 64 bits come from `_dd.p.tid` in `x-datadog-tags`; a
// Datadog request without a sampling priority has no sampling decision (not "rejected").

export interface AppContext {
  app_trace_id: string;
  app_parent_id?: string;
  app_sampled?: boolean;
}

/** Headers by lower-case name (http1.ts parseHead gives them so). */
export type Headers = ReadonlyMap<string, string>;

const HEX_ANY = /^[0-9a-fA-F]+$/;
const ZEROS = /^0+$/;
const U64_MAX = (1n << 64n) - 1n;

const isHex = (s: string, n: number) => s.length === n && HEX_ANY.test(s) && !ZEROS.test(s);

/** The first format present and valid, or undefined. */
export function extractAppContext(headers: Headers): AppContext | undefined {
  if (headers.size === 0) return undefined; // most requests: parseHead kept no header
  return fromW3C(headers) ?? fromDatadog(headers) ?? fromB3Single(headers) ?? fromB3Multi(headers);
}

/**
 * W3C Trace Context: `traceparent: VV-TTTT…(32)-PPPP…(16)-FF`. Version 00 has exactly these
 * four fields; a higher version may append fields after a '-' (forward compatibility, Trace
 * Context §3.2.4); version ff is invalid. Hex in upper case is accepted and lowered (the spec
 * asks senders for lower case; reading upper case costs nothing and loses nothing).
 */
export function fromW3C(headers: Headers): AppContext | undefined {
  const v = headers.get("traceparent");
  if (v === undefined) return undefined;
  const parts = v.trim().split("-");
  if (parts.length < 4) return undefined;
  const [version, traceId, parentId, flags] = parts;
  if (!/^[0-9a-fA-F]{2}$/.test(version) || version.toLowerCase() === "ff") return undefined;
  if (version === "00" && parts.length !== 4) return undefined;
  if (!isHex(traceId, 32) || !isHex(parentId, 16) || !/^[0-9a-fA-F]{2}$/.test(flags)) return undefined;
  return {
    app_trace_id: traceId.toLowerCase(),
    app_parent_id: parentId.toLowerCase(),
    app_sampled: (parseInt(flags, 16) & 1) === 1,
  };
}

/** A decimal unsigned 64-bit id ("0" and out-of-range values are invalid). */
function decimalU64(s: string | undefined): bigint | undefined {
  if (s === undefined) return undefined;
  const t = s.trim();
  if (!/^[0-9]{1,20}$/.test(t)) return undefined;
  const n = BigInt(t);
  return n === 0n || n > U64_MAX ? undefined : n;
}

const hex16 = (n: bigint) => n.toString(16).padStart(16, "0");

/**
 * Datadog: `x-datadog-trace-id` (decimal, the low 64 bits), `x-datadog-parent-id` (decimal),
 * `x-datadog-sampling-priority` (integer; > 0 keeps: 1 auto-keep, 2 user-keep; 0 and -1 drop),
 * and the high 64 bits as `_dd.p.tid=<16 hex>` in `x-datadog-tags` (Datadog's 128-bit ids).
 */
export function fromDatadog(headers: Headers): AppContext | undefined {
  const low = decimalU64(headers.get("x-datadog-trace-id"));
  if (low === undefined) return undefined;
  let high = "0000000000000000";
  const tags = headers.get("x-datadog-tags");
  if (tags !== undefined) {
    for (const tag of tags.split(",")) {
      const eq = tag.indexOf("=");
      if (eq < 0 || tag.slice(0, eq).trim() !== "_dd.p.tid") continue;
      const tid = tag.slice(eq + 1).trim();
      if (tid.length === 16 && HEX_ANY.test(tid)) high = tid.toLowerCase();
    }
  }
  const ctx: AppContext = { app_trace_id: high + hex16(low) };
  const parent = decimalU64(headers.get("x-datadog-parent-id"));
  if (parent !== undefined) ctx.app_parent_id = hex16(parent);
  const priority = headers.get("x-datadog-sampling-priority")?.trim();
  if (priority !== undefined && /^-?[0-9]{1,3}$/.test(priority)) ctx.app_sampled = Number(priority) > 0;
  return ctx;
}

/** A B3 trace id: 16 hex (64-bit, zero-padded on the left to 128 bits) or 32 hex. */
function b3TraceId(s: string): string | undefined {
  if (isHex(s, 32)) return s.toLowerCase();
  if (isHex(s, 16)) return `0000000000000000${s.toLowerCase()}`;
  return undefined;
}

/** B3 sampling state: "1"/"0", "d" (debug: sampled); legacy "true"/"false" in X-B3-Sampled. */
function b3Sampled(s: string | undefined): boolean | undefined {
  switch (s?.trim().toLowerCase()) {
    case "1": case "d": case "true": return true;
    case "0": case "false": return false;
    default: return undefined;
  }
}

/**
 * B3 single header: `b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`. The form that
 * carries only a sampling state (`b3: 0`) names no trace: nothing to report.
 */
export function fromB3Single(headers: Headers): AppContext | undefined {
  const v = headers.get("b3");
  if (v === undefined) return undefined;
  const parts = v.trim().split("-");
  if (parts.length < 2 || parts.length > 4) return undefined;
  const traceId = b3TraceId(parts[0]);
  if (traceId === undefined || !isHex(parts[1], 16)) return undefined;
  const ctx: AppContext = { app_trace_id: traceId, app_parent_id: parts[1].toLowerCase() };
  if (parts.length >= 3) {
    const sampled = b3Sampled(parts[2]);
    if (sampled === undefined) return undefined;
    ctx.app_sampled = sampled;
  }
  return ctx;
}

/** B3 multiple headers: X-B3-TraceId, X-B3-SpanId, X-B3-Sampled, X-B3-Flags (1 = debug). */
export function fromB3Multi(headers: Headers): AppContext | undefined {
  const t = headers.get("x-b3-traceid");
  if (t === undefined) return undefined;
  const traceId = b3TraceId(t.trim());
  if (traceId === undefined) return undefined;
  const ctx: AppContext = { app_trace_id: traceId };
  const span = headers.get("x-b3-spanid")?.trim();
  if (span !== undefined && isHex(span, 16)) ctx.app_parent_id = span.toLowerCase();
  if (headers.get("x-b3-flags")?.trim() === "1") ctx.app_sampled = true; // debug implies sampled
  else {
    const sampled = b3Sampled(headers.get("x-b3-sampled"));
    if (sampled !== undefined) ctx.app_sampled = sampled;
  }
  return ctx;
}
