/**
 * The ingest as users run it: `node dist/start.js --workerd` (bare `workerd serve`, generated
 * config, storage on disk) in its own process group, so a test can stop it, or kill -9 it (the
 * launcher and workerd together) and start it again on the same storage.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The package root, from this file or from a bundle of it in dist/ (the benchmarks). */
const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "asconfig.json"))) dir = dirname(dir);
  return dir;
})();

export interface IngestOptions {
  shards?: number;
  samplingRate?: number;
  useAppTraceId?: boolean;
  window?: string;
  settle?: string;
  token?: string;
  otlpEndpoint?: string;
  otlpProtocol?: "http/json" | "http/protobuf";
  dbPath?: string;
  extraEnv?: Record<string, string>;
  /** More arguments for `start.js --workerd` (e.g. --inspect). */
  extraArgs?: string[];
}

export interface Ingest {
  url: string;
  dbPath: string;
  /** SIGTERM, and wait; then removes the storage startIngest made, unless `keepStorage` (to restart on it). */
  stop(opts?: { keepStorage?: boolean }): Promise<void>;
  /** SIGKILL to the launcher and workerd at once: no chance to flush anything. */
  kill9(): Promise<void>;
  /** A new process on the same storage and port. */
  restart(): Promise<void>;
  log(): string;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
    s.on("error", rej);
  });
}

/**
 * Storage of its own for an ingest, removed by stop() (unless kept) or when this process exits
 * normally: a benchmark's store grows by a gigabyte a minute, and left-over stores filled the disk.
 */
function tempDb(): string {
  const path = mkdtempSync(join(tmpdir(), "espan-db-"));
  process.once("exit", () => rmSync(path, { recursive: true, force: true }));
  return path;
}

export async function startIngest(o: IngestOptions = {}): Promise<Ingest> {
  const port = await freePort();
  const ownDb = o.dbPath === undefined;
  const dbPath = o.dbPath ?? tempDb();
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ESPAN_SHARDS: String(o.shards ?? 4),
    ENV_INPUT_EBPFTRACE_SAMPLING_RATE: String(o.samplingRate ?? 1),
    ENV_INPUT_EBPFTRACE_USE_APP_TRACE_ID: String(o.useAppTraceId ?? true),
    ENV_INPUT_EBPFTRACE_WINDOW: o.window ?? "2s",
    ESPAN_SETTLE: o.settle ?? "200ms",
    ENV_INPUT_EBPFTRACE_DB_PATH: dbPath,
    ESPAN_TOKEN: o.token ?? "",
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: o.otlpEndpoint ?? "",
    OTEL_EXPORTER_OTLP_PROTOCOL: o.otlpProtocol ?? "http/protobuf",
    ...o.extraEnv,
  };
  let child: ChildProcess;
  let output = "";
  const launch = async () => {
    child = spawn(process.execPath, [join(ROOT, "dist", "start.js"), "--workerd", "--port", String(port), ...(o.extraArgs ?? [])], {
      cwd: ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));
    await waitHealthy(`http://127.0.0.1:${port}`, () => output);
  };
  const exited = () => new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once("exit", () => r())));
  const signalGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      /* already gone */
    }
  };
  await launch();
  return {
    url: `http://127.0.0.1:${port}`,
    dbPath,
    async stop(opts = {}) {
      signalGroup("SIGTERM");
      await exited();
      signalGroup("SIGKILL"); // workerd, should it outlive the launcher
      if (ownDb && !opts.keepStorage) rmSync(dbPath, { recursive: true, force: true });
    },
    async kill9() {
      signalGroup("SIGKILL");
      await exited();
    },
    async restart() {
      await launch();
    },
    log: () => output,
  };
}

async function waitHealthy(url: string, log: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`ingest did not become healthy at ${url}:\n${log()}`);
}

/**
 * What an agent does across a crash of the ingest: posts batches 0 .. count/2 - 1 (each must be
 * acknowledged), posts the next one and kills the whole ingest (kill -9) while it is in flight,
 * restarts it, and posts again every batch not acknowledged (a stored one is then a duplicate).
 * `post(i, again)` sends batch i and returns the HTTP status (0 when the connection failed).
 */
export async function postAcrossKill9(ingest: Ingest, count: number, post: (i: number, again: boolean) => Promise<number>): Promise<void> {
  const acked = new Set<number>();
  const killAt = Math.floor(count / 2);
  for (let i = 0; i < killAt; i++) {
    const status = await post(i, false);
    if (status !== 202) throw new Error(`batch ${i} before the kill: HTTP ${status}`);
    acked.add(i);
  }
  const inFlight = post(killAt, false).catch(() => 0);
  await new Promise((r) => setTimeout(r, 5));
  await ingest.kill9();
  if ((await inFlight) === 202) acked.add(killAt);
  await ingest.restart();
  for (let i = 0; i < count; i++) {
    if (acked.has(i)) continue;
    const status = await post(i, true);
    if (status !== 202) throw new Error(`batch ${i} sent again after the restart: HTTP ${status}`);
  }
}

/** POSTs eSpans as JSON (or NDJSON), optionally gzip. */
export async function postSpans(url: string, spans: unknown[], o: { ndjson?: boolean; token?: string } = {}): Promise<Response> {
  const body = o.ndjson ? spans.map((s) => JSON.stringify(s)).join("\n") : JSON.stringify({ spans });
  return fetch(`${url}/v1/bpftracing`, {
    method: "POST",
    headers: {
      "content-type": o.ndjson ? "application/x-ndjson" : "application/json",
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
    },
    body,
  });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
