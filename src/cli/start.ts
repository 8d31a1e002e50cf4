/**
 * `npm start -- [--port P]`: the ingest and linker on localhost with embedded storage (wrangler
 * dev, local and offline). `npm run serve -- [--port P] [--inspect HOST:PORT]`: the same worker on
 * bare `workerd serve` with a generated config (the self-hosted path; benchmark there: no proxy
 * hop); `--inspect` opens workerd's V8 inspector there (CPU and heap profiles of the isolate).
 *
 * The configuration comes from this command's environment (ENV_INPUT_EBPFTRACE_*, ESPAN_*,
 * OTEL_EXPORTER_OTLP_*), is validated here first (a bad value stops start-up, naming the
 * variable) and is passed into the worker as its variables. Durable Object storage lives under
 * ENV_INPUT_EBPFTRACE_DB_PATH (default ./ebpf_spandb).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ConfigError, loadConfig, VARS } from "../config.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const COMPATIBILITY_DATE = "2026-04-01";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: process.env.PORT ?? "8787" },
    host: { type: "string", default: "127.0.0.1" },
    workerd: { type: "boolean", default: false },
    inspect: { type: "string" },
  },
});
if (args.inspect !== undefined && !args.workerd) fail("--inspect: only with `npm run serve` (workerd serve); wrangler dev has its own inspector");

const port = Number(args.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`--port: "${args.port}" is not a port number`);

// Every variable the worker reads, from this environment (absent: the worker's default).
const vars: Record<string, string> = {};
for (const name of Object.keys(VARS)) {
  const v = process.env[name];
  if (v !== undefined && v !== "") vars[name] = v;
}
let summary;
try {
  summary = loadConfig(vars);
} catch (e) {
  fail(e instanceof ConfigError ? `bad configuration: ${e.message}` : String(e));
}
const dbPath = resolve(process.env.ENV_INPUT_EBPFTRACE_DB_PATH || "./ebpf_spandb");
mkdirSync(dbPath, { recursive: true });

console.error(
  `espan: ingest on http://${args.host}:${port} (${args.workerd ? "workerd serve" : "wrangler dev"}), ` +
    `${summary.shards} shard(s), window ${summary.link.windowMs / 1000} s, settle ${summary.link.settleMs / 1000} s, ` +
    `sampling ${summary.link.samplingRate}, use_app_trace_id ${summary.link.useAppTraceId}, storage ${dbPath}` +
    (summary.otlpEndpoint ? `, exporting to ${summary.otlpEndpoint} (${summary.otlpProtocol})` : ", no OTLP export (trace store only)") +
    `; web UI on http://${args.host}:${port}/ui`,
);

const child = args.workerd ? serveWorkerd() : wranglerDev();
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 + 15 : 1)));

function wranglerDev() {
  const cli = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
  const varArgs = Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  return spawn(process.execPath, [
    cli, "dev", "--local", "--ip", args.host!, "--port", String(port), "--persist-to", dbPath,
    "--show-interactive-dev-session=false", ...varArgs,
  ], { cwd: ROOT, stdio: "inherit", env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" } });
}

function serveWorkerd() {
  const out = join(ROOT, "dist", "worker");
  const built = spawnSync(process.execPath, [join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js"), "deploy", "--dry-run", "--outdir", out], {
    cwd: ROOT, stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  if (built.status !== 0) fail("bundling the worker (wrangler deploy --dry-run) failed");
  const storage = join(dbPath, "workerd");
  mkdirSync(storage, { recursive: true });
  const config = join(out, "espan.capnp");
  writeFileSync(config, capnpConfig(readdirSync(out).filter((f) => f.endsWith(".wasm")), storage));
  return spawn(join(ROOT, "node_modules", ".bin", "workerd"), ["serve", config, ...(args.inspect ? [`--inspector-addr=${args.inspect}`] : [])], { cwd: out, stdio: "inherit" });
}

/** The workerd config: the bundle's modules, the bindings, SQLite-backed Durable Objects on disk. */
function capnpConfig(wasm: string[], storage: string): string {
  const s = JSON.stringify; // capnp string literals take JSON's escapes
  const bindings = [
    `(name = "LINKER_SHARD", durableObjectNamespace = "LinkerShard")`,
    `(name = "TRACE_STORE", durableObjectNamespace = "TraceStore")`,
    ...Object.entries(vars).map(([k, v]) => `(name = ${s(k)}, text = ${s(v)})`),
  ];
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .espan),
    (name = "do-storage", disk = (path = ${s(storage)}, writable = true)),
    # The OTLP collector may be on this machine: allow local and private addresses.
    (name = "internet", network = (allow = ["public", "private", "local"], tlsOptions = (trustBrowserCas = true))),
  ],
  sockets = [(name = "http", address = ${s(`${args.host}:${port}`)}, http = (), service = "main")],
);
const espan :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "index.js"),
${wasm.map((w) => `    (name = ${s(w)}, wasm = embed ${s(w)}),`).join("\n")}
  ],
  compatibilityDate = ${s(COMPATIBILITY_DATE)},
  compatibilityFlags = ["nodejs_compat"],
  bindings = [
${bindings.map((b) => `    ${b},`).join("\n")}
  ],
  durableObjectNamespaces = [
    (className = "LinkerShard", uniqueKey = "espan-LinkerShard", enableSql = true),
    (className = "TraceStore", uniqueKey = "espan-TraceStore", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "do-storage"),
);
`;
}

function fail(message: string): never {
  console.error(`espan: ${message}`);
  process.exit(1);
}
