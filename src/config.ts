/**
 * The ingest's configuration: one typed object, defaults in one place, validated once, every
 * error naming its variable. Read from the worker's bindings (wrangler [vars] or secrets); the
 * start scripts (src/cli/start.ts) pass the environment of the start command into them and call
 * the same parser first, so a bad value stops start-up with a message naming it.
 */
import { DEFAULT_LINK_CONFIG, type LinkConfig } from "./linker/config.ts";
import type { OtlpProtocol } from "./export/otlp-encode.ts";

export interface WorkerConfig {
  link: LinkConfig;
  /** Linker shards (Durable Objects). */
  shards: number;
  /** Trace store shards (Durable Objects keyed by trace id). */
  storeShards: number;
  /** Bearer token for /v1/bpftracing and /api; empty: no auth. */
  token: string;
  /** How long sampled traces stay in the built-in store (ms). */
  retentionMs: number;
  /** Largest request body accepted, compressed or not (bytes). */
  maxBody: number;
  /** Spans a shard may hold undecided before it answers 429. */
  maxPending: number;
  /** Spans a shard may hold waiting for the collector before it answers 429. */
  maxExportBacklog: number;
  /** OTLP/HTTP traces endpoint; empty: no export (the built-in store only). */
  otlpEndpoint: string;
  otlpProtocol: OtlpProtocol;
  otlpHeaders: Record<string, string>;
}

/** Names of the variables, with their defaults (as strings, the way they are set). */
export const VARS = {
  ENV_INPUT_EBPFTRACE_WINDOW: "20s",
  ENV_INPUT_EBPFTRACE_SAMPLING_RATE: "0.1",
  ENV_INPUT_EBPFTRACE_USE_APP_TRACE_ID: "true",
  ESPAN_SHARDS: "1",
  ESPAN_STORE_SHARDS: "4",
  ESPAN_SETTLE: "2s",
  ESPAN_TOKEN: "",
  ESPAN_RETENTION: "24h",
  ESPAN_MAX_BODY: "8388608",
  ESPAN_MAX_PENDING: "1000000",
  ESPAN_MAX_EXPORT_BACKLOG: "200000",
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "",
  OTEL_EXPORTER_OTLP_ENDPOINT: "",
  OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
  OTEL_EXPORTER_OTLP_HEADERS: "",
} as const;

export type VarName = keyof typeof VARS;

export class ConfigError extends Error {
  constructor(readonly variable: string, reason: string) {
    super(`${variable}: ${reason}`);
  }
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "20s", "500ms", "2m", "24h", "1d"; a bare number is seconds (as DataKit's window). */
export function parseDuration(name: string, v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(v);
  if (!m) throw new ConfigError(name, `"${v}" is not a duration (e.g. 20s, 500ms, 2m, 24h)`);
  return Math.round(Number(m[1]) * UNITS[m[2] ?? "s"]);
}

function parseInt_(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || n < min || n > max) throw new ConfigError(name, `"${v}" must be an integer from ${min} to ${max}`);
  return n;
}

function parseBool(name: string, v: string): boolean {
  const s = v.trim().toLowerCase();
  if (s === "true" || s === "1" || s === "yes") return true;
  if (s === "false" || s === "0" || s === "no") return false;
  throw new ConfigError(name, `"${v}" must be true or false`);
}

/** OTEL_EXPORTER_OTLP_HEADERS: "k1=v1,k2=v2", values URL-encoded (the OTel spec). */
export function parseHeaders(name: string, v: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of v.split(",")) {
    if (part.trim() === "") continue;
    const eq = part.indexOf("=");
    if (eq <= 0) throw new ConfigError(name, `"${part.trim()}" is not key=value`);
    try {
      out[decodeURIComponent(part.slice(0, eq).trim())] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      throw new ConfigError(name, `"${part.trim()}" is not URL-encoded`);
    }
  }
  return out;
}

function parseUrl(name: string, v: string): string {
  try {
    const u = new URL(v);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
    return u.toString();
  } catch {
    throw new ConfigError(name, `"${v}" is not an http(s) URL`);
  }
}

/** Validates everything; throws a ConfigError naming the first bad variable. */
export function loadConfig(src: Partial<Record<string, unknown>>): WorkerConfig {
  const get = (k: VarName): string => {
    const v = src[k];
    return v === undefined || v === null || v === "" ? VARS[k] : String(v);
  };
  const rateText = get("ENV_INPUT_EBPFTRACE_SAMPLING_RATE");
  const rate = Number(rateText);
  if (rateText.trim() === "" || !Number.isFinite(rate) || rate < 0) {
    throw new ConfigError("ENV_INPUT_EBPFTRACE_SAMPLING_RATE", `"${rateText}" must be a number ≥ 0 (1 keeps every trace)`);
  }
  const windowMs = parseDuration("ENV_INPUT_EBPFTRACE_WINDOW", get("ENV_INPUT_EBPFTRACE_WINDOW"));
  if (windowMs < 1000) throw new ConfigError("ENV_INPUT_EBPFTRACE_WINDOW", "must be at least 1s");
  const protocol = get("OTEL_EXPORTER_OTLP_PROTOCOL");
  if (protocol !== "http/protobuf" && protocol !== "http/json") {
    throw new ConfigError("OTEL_EXPORTER_OTLP_PROTOCOL", `"${protocol}" must be http/protobuf or http/json (grpc is not supported)`);
  }
  let endpoint = "";
  if (get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) endpoint = parseUrl("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
  else if (get("OTEL_EXPORTER_OTLP_ENDPOINT")) {
    // The spec: the signal path is appended to the base endpoint.
    endpoint = parseUrl("OTEL_EXPORTER_OTLP_ENDPOINT", get("OTEL_EXPORTER_OTLP_ENDPOINT").replace(/\/+$/, "") + "/v1/traces");
  }
  return {
    link: {
      ...DEFAULT_LINK_CONFIG,
      windowMs,
      settleMs: parseDuration("ESPAN_SETTLE", get("ESPAN_SETTLE")),
      samplingRate: rate,
      useAppTraceId: parseBool("ENV_INPUT_EBPFTRACE_USE_APP_TRACE_ID", get("ENV_INPUT_EBPFTRACE_USE_APP_TRACE_ID")),
    },
    shards: parseInt_("ESPAN_SHARDS", get("ESPAN_SHARDS"), 1, 1024),
    storeShards: parseInt_("ESPAN_STORE_SHARDS", get("ESPAN_STORE_SHARDS"), 1, 1024),
    token: get("ESPAN_TOKEN"),
    retentionMs: parseDuration("ESPAN_RETENTION", get("ESPAN_RETENTION")),
    maxBody: parseInt_("ESPAN_MAX_BODY", get("ESPAN_MAX_BODY"), 1024, 1 << 30),
    maxPending: parseInt_("ESPAN_MAX_PENDING", get("ESPAN_MAX_PENDING"), 1, 1 << 30),
    maxExportBacklog: parseInt_("ESPAN_MAX_EXPORT_BACKLOG", get("ESPAN_MAX_EXPORT_BACKLOG"), 1, 1 << 30),
    otlpEndpoint: endpoint,
    otlpProtocol: protocol,
    otlpHeaders: parseHeaders("OTEL_EXPORTER_OTLP_HEADERS", get("OTEL_EXPORTER_OTLP_HEADERS")),
  };
}
