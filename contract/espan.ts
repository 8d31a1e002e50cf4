/**
 * The eSpan: one request/response of a network call, as the agent sends it to the ingest.
 * This file is ESPAN.md (wire contract v1) in code. It is the only definition of the type:
 * the agent, the ingest worker and the CLI all import it, and a unit test checks the field
 * table below against ESPAN.md itself.
 */

export type SpanKind = "entry" | "exit";
export type AttributeValue = string | number | boolean;

export interface ESpan {
  span_id: string;
  kind: SpanKind;
  req_seq: number;
  resp_seq: number;
  /** Entry: its own fresh id. Exit: the open entry's id on the same thread, or absent. */
  thread_trace_id?: string | null;
  /** Unix ns as a decimal string (normalised by the validator; uint64 exceeds 2^53). */
  start_ns: string;
  duration_ns: number;
  host: string;
  pid: number;
  tid: number;
  process_name: string;
  service: string;
  src_ip: string;
  dst_ip: string;
  src_port: number;
  dst_port: number;
  l7_proto: string;
  operation?: string;
  http_method?: string;
  http_route?: string;
  http_status_code?: number;
  http_version?: string;
  bytes_read?: number;
  bytes_written?: number;
  status?: "ok" | "error";
  app_trace_id?: string;
  app_parent_id?: string;
  app_sampled?: boolean;
  attributes?: Record<string, AttributeValue>;
  /** Unknown top-level fields are kept and exported as attributes. */
  [extra: string]: unknown;
}

/** A span as the linker exports it: the eSpan plus its place in a trace. */
export interface LinkedSpan extends ESpan {
  trace_id: string;
  /** "" for a root. */
  parent_id: string;
}

export interface FieldError {
  field: string;
  reason: string;
}

export type Validation = { ok: true; span: ESpan } | { ok: false; errors: FieldError[] };

type Check = (v: unknown) => string | null;

const HEX16 = /^[0-9a-f]{16}$/;
const HEX32_ANY_CASE = /^[0-9a-fA-F]{32}$/;
const HEX16_ANY_CASE = /^[0-9a-fA-F]{16}$/;
const DECIMAL = /^[0-9]{1,20}$/;
const U64_MAX = 18446744073709551615n;
const U32_MAX = 4294967295;

const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);
const str: Check = (v) => (typeof v === "string" ? null : "must be a string");
const nonEmpty: Check = (v) =>
  typeof v !== "string" ? "must be a string" : v.length === 0 ? "must not be empty" : null;
const intIn =
  (lo: number, hi: number): Check =>
  (v) =>
    !isInt(v) ? "must be an integer" : v < lo || v > hi ? `must be in ${lo}..${hi}` : null;
const hex16: Check = (v) =>
  typeof v !== "string" || !HEX16.test(v)
    ? "must be 16 lower-case hex digits"
    : /^0+$/.test(v)
      ? "must not be all zero"
      : null;
const u64: Check = (v) => {
  if (isInt(v)) return v < 0 ? "must be ≥ 0" : null;
  if (typeof v !== "string" || !DECIMAL.test(v)) return "must be a string of decimal digits or an integer";
  // Fewer than 20 digits always fit (no BigInt on the hot path).
  return v.length === 20 && BigInt(v) > U64_MAX ? "must fit in 64 bits" : null;
};

/** Required fields with their checks, in ESPAN.md's order. */
export const REQUIRED: Record<string, Check> = {
  span_id: hex16,
  kind: (v) => (v === "entry" || v === "exit" ? null : 'must be "entry" or "exit"'),
  req_seq: intIn(0, U32_MAX),
  resp_seq: intIn(0, U32_MAX),
  start_ns: u64,
  duration_ns: (v) => (!isInt(v) ? "must be an integer" : v < 0 ? "must be ≥ 0" : null),
  host: nonEmpty,
  pid: intIn(0, U32_MAX),
  tid: intIn(0, U32_MAX),
  process_name: str,
  service: nonEmpty,
  src_ip: str,
  dst_ip: str,
  src_port: intIn(0, 65535),
  dst_port: intIn(0, 65535),
  l7_proto: nonEmpty,
};

/** Optional fields: absent (or null) is fine; present must be right. */
export const OPTIONAL: Record<string, Check> = {
  thread_trace_id: (v) =>
    typeof v !== "string" || !HEX16_ANY_CASE.test(v) ? "must be 16 hex digits" : null,
  operation: str,
  http_method: str,
  http_route: str,
  http_status_code: intIn(0, 999),
  http_version: str,
  bytes_read: (v) => (!isInt(v) || v < 0 ? "must be an integer ≥ 0" : null),
  bytes_written: (v) => (!isInt(v) || v < 0 ? "must be an integer ≥ 0" : null),
  status: (v) => (v === "ok" || v === "error" ? null : 'must be "ok" or "error"'),
  app_trace_id: (v) =>
    typeof v !== "string" || !HEX32_ANY_CASE.test(v)
      ? "must be 32 hex digits"
      : /^0+$/.test(v)
        ? "must not be all zero"
        : null,
  app_parent_id: (v) =>
    typeof v !== "string" || !HEX16_ANY_CASE.test(v)
      ? "must be 16 hex digits"
      : /^0+$/.test(v)
        ? "must not be all zero"
        : null,
  app_sampled: (v) => (typeof v === "boolean" ? null : "must be a boolean"),
  attributes: (v) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return "must be an object";
    for (const [k, a] of Object.entries(v)) {
      const t = typeof a;
      if (t !== "string" && t !== "number" && t !== "boolean") return `value of "${k}" must be a string, number or boolean`;
    }
    return null;
  },
};

/** Every field ESPAN.md names. */
export const ESPAN_FIELDS: readonly string[] = [...Object.keys(REQUIRED), ...Object.keys(OPTIONAL)];

/**
 * Checks one decoded JSON value against ESPAN.md. On success returns a normalised copy:
 * `start_ns` as a decimal string, hex ids in lower case, null optionals removed.
 * On failure names every bad field and why.
 */
export function validateESpan(input: unknown): Validation {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return { ok: false, errors: [{ field: "(span)", reason: "must be a JSON object" }] };
  }
  const src = input as Record<string, unknown>;
  const errors: FieldError[] = [];
  for (const [field, check] of REQUIRED_CHECKS) {
    const v = src[field];
    const reason = v === undefined || v === null ? "is required" : check(v);
    if (reason) errors.push({ field, reason });
  }
  for (const [field, check] of OPTIONAL_CHECKS) {
    const v = src[field];
    if (v === undefined || v === null) continue;
    const reason = check(v);
    if (reason) errors.push({ field, reason });
  }
  if (src.kind === "entry" && (src.thread_trace_id === undefined || src.thread_trace_id === null)) {
    errors.push({ field: "thread_trace_id", reason: "is required for an entry" });
  }
  if (errors.length > 0) return { ok: false, errors };

  // Normalise, copying only when something changes (the ingest's hot path: a copy and a BigInt
  // per span cost more than the checks).
  let span = src;
  for (const k in src) if (src[k] === null) span = edit(span, src, k, undefined);
  const start = src.start_ns;
  if (typeof start === "number" || !CANONICAL_DECIMAL.test(start as string)) {
    span = edit(span, src, "start_ns", BigInt(start as string | number).toString());
  }
  for (const k of LOWER_CASE_IDS) {
    const v = span[k];
    if (typeof v === "string" && UPPER_HEX.test(v)) span = edit(span, src, k, v.toLowerCase());
  }
  return { ok: true, span: span as ESpan };
}

const REQUIRED_CHECKS = Object.entries(REQUIRED);
const OPTIONAL_CHECKS = Object.entries(OPTIONAL);
const UPPER_HEX = /[A-F]/;

/** `span` with field `k` set to `v` (deleted if undefined): a copy of `src` made on the first edit. */
function edit(span: Record<string, unknown>, src: Record<string, unknown>, k: string, v: unknown): Record<string, unknown> {
  if (span === src) span = { ...src };
  if (v === undefined) delete span[k];
  else span[k] = v;
  return span;
}

/** Decimal digits without leading zeros, as BigInt(x).toString() writes them. */
const CANONICAL_DECIMAL = /^(0|[1-9][0-9]*)$/;
const LOWER_CASE_IDS = ["thread_trace_id", "app_trace_id", "app_parent_id"];

/** One line per error, naming the span and the field: for CLI messages and HTTP bodies. */
export function describeErrors(where: string, errors: FieldError[]): string {
  return errors.map((e) => `${where}: ${e.field} ${e.reason}`).join("\n");
}
