// The agent's configuration: one typed object, its defaults in one const, validated once at
// start-up with errors that name the key and where its value came from.
//
// Sources, later ones win: DEFAULTS < the TOML file (`--config agent.toml`, shaped like the
// seed's `[[inputs.ebpf]]` table) < environment variables ENV_INPUT_EBPF_<KEY> (the seed's
// names: ENV_INPUT_EBPF_TRACE_SERVER, ENV_INPUT_EBPF_TRACE_ENV_LIST, ...; lists are
// comma-separated) < command-line flags. Keys keep the seed's snake_case spelling so an error
// names the key exactly as the operator wrote it.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { parse as parseToml } from "smol-toml";

export interface AgentConfig {
  /** Ingest base URL; "host:port" gets http:// as in the seed. "" = do not ship (stdout). */
  trace_server: string;
  /** Bearer token for the ingest; "" = no Authorization header. */
  token: string;
  /** The `host` of every span; "" = os.hostname(). */
  host_name: string;
  /** Trace every process except blacklisted ones (and the agent). */
  trace_all_process: boolean;
  /** Trace processes whose environment has a variable with one of these names. */
  trace_env_list: string[];
  trace_env_blacklist: string[];
  /** Trace processes with exactly this name (task name or executable basename). */
  trace_name_list: string[];
  trace_name_blacklist: string[];
  /** Payload bytes captured per message start, 0..4096. 4096: a JWT or a long URL pushes
   * `traceparent` past byte 256 (reference/bpf.md §5). */
  capture_bytes: number;
  /** Batches that do not fit in memory, and those unsent at exit, go here; replayed at start.
   * "" = no disk spool (drops begin when the memory queue is full). */
  spool_dir: string;
  /** Disk spool bound in bytes (gzip batches). */
  spool_max_bytes: number;
  /** Memory queue bound in spans. */
  queue_max_spans: number;
  /** Spans per POST, 1..10000. */
  batch_size: number;
  /** A partial batch leaves after this many ms. */
  flush_interval: number;
  /** A response whose end is unseen is exported after its connection was quiet this many ms. */
  idle_flush: number;
  /** Status line on stderr every this many ms; 0 = never. */
  status_interval: number;
  /** Print spans on stdout (a summary line on a terminal, NDJSON otherwise). */
  stdout: boolean;
}

export const DEFAULTS: Readonly<AgentConfig> = Object.freeze({
  trace_server: "",
  token: "",
  host_name: "",
  trace_all_process: false,
  trace_env_list: [],
  trace_env_blacklist: [],
  trace_name_list: [],
  trace_name_blacklist: [],
  capture_bytes: 4096,
  spool_dir: "/var/lib/espan-agent/spool",
  spool_max_bytes: 512 * 1024 * 1024,
  queue_max_spans: 100_000,
  // A POST costs the agent ~1 ms of CPU whatever its size (Node's HTTP client, the socket
  // write and the answer's wake-up, zlib's set-up): at 500 spans a batch that was ~2 us a span.
  // Alternating live runs on a hello-world server (~35k spans/s): 8.1-8.8 us a span at 2000
  // against 10.4-10.7 at 500; at 10,000 a busy host POSTs ~5 times a second instead of ~25
  // (bench:agent, BENCHMARKS.md "Agent"). The ingest takes bodies up to 8 MiB (10,000 spans:
  // ~5 MB of JSON, ~500 KB gzipped; 64 MiB once inflated). A slow host still sends within
  // flush_interval.
  batch_size: 10_000,
  flush_interval: 1000,
  // Well under the ingest's settle (2 s): a span whose response end is unseen (head and body
  // written separately, then a quiet keep-alive connection) must still reach the linker before
  // its root's trace is decided, or an app trace id it carries is missed (testbed/README.md).
  idle_flush: 1000,
  status_interval: 10_000,
  stdout: false,
});

export type ConfigKey = keyof AgentConfig;
type Kind = "string" | "bool" | "list" | "int" | "duration";

/** Type and bounds of every key; a key missing here is unknown. */
const SCHEMA: Record<ConfigKey, { kind: Kind; min?: number; max?: number }> = {
  trace_server: { kind: "string" },
  token: { kind: "string" },
  host_name: { kind: "string" },
  trace_all_process: { kind: "bool" },
  trace_env_list: { kind: "list" },
  trace_env_blacklist: { kind: "list" },
  trace_name_list: { kind: "list" },
  trace_name_blacklist: { kind: "list" },
  capture_bytes: { kind: "int", min: 0, max: 4096 },
  spool_dir: { kind: "string" },
  spool_max_bytes: { kind: "int", min: 0 },
  queue_max_spans: { kind: "int", min: 1 },
  batch_size: { kind: "int", min: 1, max: 10_000 },
  flush_interval: { kind: "duration", min: 10, max: 60_000 },
  idle_flush: { kind: "duration", min: 100, max: 600_000 },
  status_interval: { kind: "duration", min: 0 },
  stdout: { kind: "bool" },
};

export const CONFIG_KEYS = Object.keys(SCHEMA) as ConfigKey[];

/** Keys of the seed's [[inputs.ebpf]] that espan does not use: accepted with a warning, so
 * a seed config file works unchanged. */
const SEED_ONLY_KEYS = new Set([
  "enabled_plugins", "l7net_enabled", "l7net_disabled", "interval", "ipv6_disabled", "ephemeral_port",
  "pprof_host", "pprof_port", "cpu_limit", "mem_limit", "net_limit", "sampling_rate",
  "sampling_rate_pts_per_min", "conv_to_ddtrace", "tags", "netlog_blacklist", "netlog_metric",
  "netlog_metric_only", "enable_pprof", "workload_labels", "workload_label_prefix",
]);

export const envName = (key: ConfigKey) => `ENV_INPUT_EBPF_${key.toUpperCase()}`;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

/** A value and where it came from, before validation. */
interface Layer {
  source: (key: ConfigKey) => string;
  values: Partial<Record<ConfigKey, unknown>>;
}

export interface LoadOptions {
  /** Flag values by key (main.ts maps commander's options); undefined = not given. */
  flags?: Partial<Record<ConfigKey, unknown>>;
  env?: Record<string, string | undefined>;
  /** Path of a TOML file. */
  configPath?: string;
  readFile?: (path: string) => string;
}

export interface Loaded {
  config: AgentConfig;
  warnings: string[];
}

/** Merges defaults < TOML < env < flags and validates. Throws ConfigError naming each key. */
export function loadConfig(opts: LoadOptions = {}): Loaded {
  const problems: string[] = [];
  const warnings: string[] = [];
  const layers: Layer[] = [];
  if (opts.configPath) {
    layers.push(tomlLayer(opts.configPath, opts.readFile ?? ((p) => readFileSync(p, "utf8")), problems, warnings));
  }
  layers.push(envLayer(opts.env ?? {}));
  layers.push({ source: (key) => `--${key.replace(/_/g, "-")}`, values: opts.flags ?? {} });

  const config: AgentConfig = structuredClone(DEFAULTS) as AgentConfig;
  for (const layer of layers) {
    for (const [key, raw] of Object.entries(layer.values) as [ConfigKey, unknown][]) {
      if (raw === undefined) continue;
      const r = coerce(key, raw);
      if (typeof r === "string") problems.push(`${key} (from ${layer.source(key)}): ${r}`);
      else (config as unknown as Record<string, unknown>)[key] = r.value;
    }
  }
  problems.push(...validate(config));
  if (problems.length > 0) throw new ConfigError(problems);
  if (config.host_name === "") config.host_name = hostname();
  if (config.trace_server !== "") config.trace_server = normalizeServer(config.trace_server);
  if (config.capture_bytes < 1024) {
    warnings.push(`capture_bytes = ${config.capture_bytes}: traceparent after a long header (a JWT) will be missed; 4096 is advised`);
  }
  return { config, warnings };
}

/** "host:port" → "http://host:port"; no trailing slash. */
export function normalizeServer(s: string): string {
  const withScheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(s) ? s : `http://${s}`;
  return withScheme.replace(/\/+$/, "");
}

/** The POST target: <trace_server>/v1/bpftracing (kept when the server URL already ends so). */
export function ingestUrl(config: AgentConfig): string {
  return config.trace_server.endsWith("/v1/bpftracing") ? config.trace_server : `${config.trace_server}/v1/bpftracing`;
}

/** Cross-key and semantic checks on the merged config. */
function validate(c: AgentConfig): string[] {
  const problems: string[] = [];
  if (c.trace_server !== "") {
    try {
      const u = new URL(normalizeServer(c.trace_server));
      if (u.protocol !== "http:" && u.protocol !== "https:") problems.push(`trace_server: must be http:// or https://, got ${u.protocol}`);
    } catch {
      problems.push(`trace_server: not a URL or host:port: ${JSON.stringify(c.trace_server)}`);
    }
  }
  if (!c.trace_all_process && c.trace_name_list.length === 0 && c.trace_env_list.length === 0) {
    problems.push("trace_all_process / trace_name_list / trace_env_list: nothing would be traced; set trace_all_process = true or list process names or environment variable names");
  }
  for (const key of ["trace_env_list", "trace_env_blacklist"] as const) {
    for (const name of c[key]) if (/[=\s]/.test(name)) problems.push(`${key}: ${JSON.stringify(name)} is not an environment variable name`);
  }
  return problems;
}

/** Parses and bounds-checks one value; returns the reason when it is wrong. */
function coerce(key: ConfigKey, raw: unknown): { value: unknown } | string {
  const spec = SCHEMA[key];
  switch (spec.kind) {
    case "string":
      return typeof raw === "string" ? { value: raw.trim() } : `must be a string, got ${JSON.stringify(raw)}`;
    case "bool": {
      if (typeof raw === "boolean") return { value: raw };
      const t = typeof raw === "string" ? raw.trim().toLowerCase() : "";
      if (["true", "1", "yes", "on"].includes(t)) return { value: true };
      if (["false", "0", "no", "off", ""].includes(t) && typeof raw === "string") return { value: false };
      return `must be true or false, got ${JSON.stringify(raw)}`;
    }
    case "list": {
      const items = typeof raw === "string" ? raw.split(",") : Array.isArray(raw) ? raw : null;
      if (!items || items.some((i) => typeof i !== "string")) return `must be a list of strings (or comma-separated), got ${JSON.stringify(raw)}`;
      return { value: (items as string[]).map((i) => i.trim()).filter((i) => i !== "") };
    }
    case "int":
    case "duration": {
      const n = spec.kind === "int" ? toInt(raw) : toMs(raw);
      if (n === undefined) {
        return spec.kind === "int" ? `must be an integer, got ${JSON.stringify(raw)}` : `must be a duration ("500ms", "1s", "2m") or milliseconds, got ${JSON.stringify(raw)}`;
      }
      if (spec.min !== undefined && n < spec.min) return `must be ≥ ${spec.min}${spec.kind === "duration" ? " ms" : ""}, got ${n}`;
      if (spec.max !== undefined && n > spec.max) return `must be ≤ ${spec.max}${spec.kind === "duration" ? " ms" : ""}, got ${n}`;
      return { value: n };
    }
  }
}

function toInt(raw: unknown): number | undefined {
  if (typeof raw === "number" && Number.isSafeInteger(raw)) return raw;
  if (typeof raw === "bigint") return Number(raw);
  if (typeof raw === "string" && /^\s*-?[0-9]+\s*$/.test(raw)) return Number(raw);
  return undefined;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds from a number (ms) or a duration string like the seed's "10s". */
export function toMs(raw: unknown): number | undefined {
  if (typeof raw === "number" || typeof raw === "bigint" || (typeof raw === "string" && /^\s*[0-9]+\s*$/.test(raw))) {
    return toInt(raw);
  }
  if (typeof raw !== "string") return undefined;
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)\s*$/.exec(raw);
  return m ? Math.round(Number(m[1]) * UNIT_MS[m[2]]) : undefined;
}

function envLayer(env: Record<string, string | undefined>): Layer {
  const values: Partial<Record<ConfigKey, unknown>> = {};
  for (const key of CONFIG_KEYS) {
    const v = env[envName(key)];
    if (v !== undefined) values[key] = v;
  }
  return { source: envName, values };
}

function tomlLayer(path: string, read: (p: string) => string, problems: string[], warnings: string[]): Layer {
  const layer: Layer = { source: (key) => `${path}: inputs.ebpf.${key}`, values: {} };
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(read(path)) as Record<string, unknown>;
  } catch (e) {
    problems.push(`${path}: ${(e as Error).message.split("\n")[0]}`);
    return layer;
  }
  const inputs = doc.inputs as Record<string, unknown> | undefined;
  let table = inputs?.ebpf as unknown;
  if (Array.isArray(table)) {
    if (table.length !== 1) problems.push(`${path}: inputs.ebpf: expected one [[inputs.ebpf]] table, found ${table.length}`);
    table = table[0];
  }
  if (typeof table !== "object" || table === null) {
    problems.push(`${path}: no [[inputs.ebpf]] table`);
    return layer;
  }
  for (const [key, value] of Object.entries(table)) {
    if (key in SCHEMA) layer.values[key as ConfigKey] = value;
    else if (SEED_ONLY_KEYS.has(key)) warnings.push(`${path}: inputs.ebpf.${key} is a seed option espan does not use; ignored`);
    else problems.push(`${path}: inputs.ebpf.${key}: unknown key`);
  }
  return layer;
}
