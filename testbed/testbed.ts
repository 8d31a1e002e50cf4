// The multi-host testbed, for the tests, the demo and benchmarks:
//
//   startTestbed()  one lock → net.sh up (namespaces, bridge, veths, DNAT VIP; leftovers of a
//                   crashed run removed first) → the ingest → one agent per host → the services
//                   → the loadgen; resolves once every agent has selected its host's processes.
//   runPhase()      one workload phase from the loadgen (h2); runCron(): the cron-like job (h3).
//   stop()          everything it started, by process group; net.sh down; its files; the lock.
//
// Who runs where (see topology.ts and net.sh):
//
//   root namespace     the ingest (`node dist/start.js --workerd`) on 10.77.0.1, the root side
//                      of the bridge: the agents reach it like a remote collector.
//   estb-h1/h2/h3      each "host" is a network namespace with its own address and, per process,
//                      a UTS namespace whose host name is h1/h2/h3. Its services, its clients and
//                      its agent run inside it (nsenter --net, unshare --uts).
//
// The BPF programs of every agent see every process of the kernel: a namespace is not a
// machine. Each agent therefore selects its host's processes by an environment variable only
// that host's processes carry (ESPAN_TB_HOST_H1, ...: --trace-env-list), and takes its host name
// from its UTS namespace (os.hostname(); no --host-name). Every agent also writes its eSpans on
// stdout (NDJSON, kept in the run directory): the raw input the tests compare the export with.
//
// Processes started here carry ESPAN_TESTBED_RUN in their environment, so that `net.sh down`
// (run first by the next start, or by hand) finds them should this process die without stop().
import { metrics } from "../test/e2e/ingest/metrics.ts";
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { ESpan } from "../contract/espan.ts";
import { CRON, HOST_NAMES, HOSTS, LOADGEN, NET, SERVICES, serviceUrl, type Host, type HostName, type ServiceSpec } from "./topology.ts";
import { CRON_PLAN, type ClientRequest, type Phase, type RequestResult } from "./workload.ts";

const execFileP = promisify(execFile);

/** The package root: from this file, or from a bundle of it (the demo) under the package. */
export const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "asconfig.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("testbed: cannot find the espan package root (asconfig.json)");
    dir = up;
  }
  return dir;
})();
const TB = join(ROOT, "testbed");
const LOCK = "/run/espan-testbed.lock";

export interface IngestSettings {
  shards?: number;
  samplingRate?: number;
  useAppTraceId?: boolean;
  window?: string;
  settle?: string;
  otlpEndpoint?: string;
  otlpProtocol?: "http/json" | "http/protobuf";
}

export interface TestbedOptions {
  ingest?: IngestSettings;
  /** Progress lines (the demo prints them). */
  log?: (line: string) => void;
  /** How long to wait for another testbed on this machine to finish (default 5 min). */
  lockWaitMs?: number;
  /** Keep the run directory (logs, raw spans) after stop(). Also ESPAN_TESTBED_KEEP=1. */
  keepRunDir?: boolean;
}

/** The agent's status line, parsed (agent/src/status.ts). */
export interface AgentStatus {
  spans: number;
  entries: number;
  exits: number;
  traced: number;
  sent: number;
  queued: number;
  dropped: number;
  rejected: number;
  unlinked_ambiguous: number;
  capture_drops: number;
}

export interface OtelSdkSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** @opentelemetry/api SpanKind: 1 SERVER, 2 CLIENT. */
  kind: number;
  sampled: boolean;
  service: string;
  attributes: Record<string, unknown>;
}

export interface RunningService extends ServiceSpec {
  pid: number;
  addr: string;
}

export interface Testbed {
  runId: string;
  runDir: string;
  /** The ingest as the agents reach it (root side of the bridge). */
  ingestUrl: string;
  services: RunningService[];
  /** The eSpans an agent produced (its stdout), in order. */
  agentSpans(host: HostName): ESpan[];
  /** The agent's latest status line. */
  agentStatus(host: HostName): AgentStatus;
  /** The spans the OTel SDK recorded in checkout. */
  otelSpans(): OtelSdkSpan[];
  /** Sends one phase from the loadgen (h2) and returns its results. */
  runPhase(p: Phase): Promise<RequestResult[]>;
  /** The cron-like job on h3: resolves when its `count` runs are done. */
  runCron(o?: Partial<typeof CRON_PLAN>): Promise<RequestResult[]>;
  /** Waits until every agent has sent every span it produced so far (status lines). */
  waitShipped(timeoutMs?: number): Promise<void>;
  /** Log lines of a process (agent-h1, web, ingest, ...). */
  logOf(name: string): string;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`testbed: timed out (${timeoutMs} ms) waiting for ${what}`);
    await sleep(stepMs);
  }
}

// ---------------------------------------------------------------------------------------------
// The lock: one testbed per machine (fixed namespace names and addresses). A lock whose holder
// is gone (a crashed run) is taken over, and the leftovers are removed by net.sh up.

function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

async function acquireLock(waitMs: number, log: (l: string) => void): Promise<() => void> {
  const me = `${process.pid} ${startTimeOf(process.pid)}`;
  const end = Date.now() + waitMs;
  let told = false;
  for (;;) {
    try {
      const fd = openSync(LOCK, "wx");
      writeSync(fd, me);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(LOCK, "utf8") === me) rmSync(LOCK);
        } catch {
          /* gone */
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    let holder = "";
    try {
      holder = readFileSync(LOCK, "utf8");
    } catch {
      continue; // released meanwhile
    }
    const [pid, start] = holder.split(" ");
    if (!pid || startTimeOf(Number(pid)) !== start) {
      rmSync(LOCK, { force: true }); // its holder is gone: a crashed run
      continue;
    }
    if (Date.now() > end) throw new Error(`testbed: another testbed (pid ${pid}) holds ${LOCK}; stop it, or wait`);
    if (!told) log(`another testbed (pid ${pid}) is running; waiting for it to finish`);
    told = true;
    await sleep(500);
  }
}

// ---------------------------------------------------------------------------------------------
// Processes

interface Proc {
  name: string;
  child: ChildProcess;
  output: string;
  exited: Promise<void>;
  /** Resolves with the first output line matching `re`. */
  waitLine(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
}

const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

/** argv run inside a host: its network namespace, and a UTS namespace named after it. */
function inHost(host: Host, argv: string[]): string[] {
  return ["nsenter", `--net=/run/netns/${host.netns}`, "--", "unshare", "--uts", "--", "/bin/sh", "-c", 'hostname "$0" && exec "$@"', host.name, ...argv];
}

async function freePortOn(addr: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, addr, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function render(template: string, vars: Record<string, string>): string {
  return template.replace(/@([A-Z]+)@/g, (m, k: string) => vars[k] ?? m);
}

/** Parses "espan-agent: 12.0 spans/s, spans 34 (entry 17, exit 17), ..." (agent/src/status.ts). */
export function parseStatus(line: string): AgentStatus | undefined {
  const num = (re: RegExp) => Number(re.exec(line)?.[1] ?? NaN);
  const spans = num(/spans (\d+) \(/);
  if (Number.isNaN(spans)) return undefined;
  const queue = /queue (\d+) mem \/ (\d+) disk/.exec(line);
  return {
    spans,
    entries: num(/\(entry (\d+)/),
    exits: num(/exit (\d+)\)/),
    traced: num(/traced processes (\d+)/),
    sent: num(/sent (\d+)/),
    queued: queue ? Number(queue[1]) + Number(queue[2]) : 0,
    dropped: num(/dropped (\d+)/),
    rejected: num(/rejected (\d+)/),
    unlinked_ambiguous: num(/unlinked_ambiguous (\d+)/),
    capture_drops: num(/capture drops (\d+)/),
  };
}

export async function startTestbed(opts: TestbedOptions = {}): Promise<Testbed> {
  const log = opts.log ?? (() => {});
  const release = await acquireLock(opts.lockWaitMs ?? 300_000, log);
  // Run directories of crashed runs (those kept on purpose have a KEEP file).
  for (const d of readdirSync(tmpdir())) {
    const path = join(tmpdir(), d);
    if (d.startsWith("espan-testbed-") && !existsSync(join(path, "KEEP"))) rmSync(path, { recursive: true, force: true });
  }
  const runDir = mkdtempSync(join(tmpdir(), "espan-testbed-"));
  chmodSync(runDir, 0o755); // nginx's worker runs as nobody
  const runId = runDir.slice(runDir.lastIndexOf("-") + 1);
  const keep = opts.keepRunDir || process.env.ESPAN_TESTBED_KEEP === "1";
  const procs: Proc[] = [];
  const baseEnv = {
    PATH: process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: process.env.HOME ?? "/root",
    LANG: "C.UTF-8",
    ESPAN_TESTBED_RUN: runId,
  };
  let stopped = false;

  const launch = (name: string, argv: string[], env: Record<string, string>, o: { stdout?: number; stdin?: boolean; cwd?: string } = {}): Proc => {
    const logPath = join(runDir, `${name}.log`);
    const child = spawn(argv[0], argv.slice(1), {
      cwd: o.cwd ?? ROOT,
      env: { ...baseEnv, ...env },
      detached: true, // its own process group: stop() signals the group (nginx's workers, workerd)
      stdio: [o.stdin ? "pipe" : "ignore", o.stdout ?? "pipe", "pipe"],
    });
    if (child.pid === undefined) throw new Error(`testbed: cannot start ${name} (${argv[0]})`);
    const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
    const p: Proc = {
      name,
      child,
      output: "",
      exited: new Promise((r) => child.once("close", () => r())),
      waitLine(re, timeoutMs) {
        const m = p.output.match(re);
        if (m) return Promise.resolve(m);
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`testbed: ${name} did not print ${re} within ${timeoutMs} ms:\n${p.output.slice(-2000)}`)), timeoutMs);
          const w = { re, resolve: (mm: RegExpMatchArray) => (clearTimeout(timer), resolve(mm)) };
          waiters.push(w);
          child.once("close", (code, sig) => {
            if (waiters.includes(w)) {
              clearTimeout(timer);
              reject(new Error(`testbed: ${name} exited (${code ?? sig}) before printing ${re}:\n${p.output.slice(-2000)}`));
            }
          });
        });
      },
    };
    const onData = (d: Buffer) => {
      const s = d.toString();
      p.output += s;
      if (p.output.length > 1_000_000) p.output = p.output.slice(-500_000);
      try {
        writeFileSync(logPath, s, { flag: "a" });
      } catch {
        /* run dir removed at stop */
      }
      for (const w of [...waiters]) {
        const m = p.output.match(w.re);
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    };
    if (o.stdout === undefined) child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    procs.push(p);
    return p;
  };

  const killGroup = (p: Proc, sig: NodeJS.Signals) => {
    try {
      process.kill(-p.child.pid!, sig);
    } catch {
      /* gone */
    }
  };
  const stopProc = async (p: Proc, sig: NodeJS.Signals = "SIGTERM", graceMs = 3000) => {
    if (p.child.exitCode === null && p.child.signalCode === null) killGroup(p, sig);
    await Promise.race([p.exited, sleep(graceMs)]);
    killGroup(p, "SIGKILL"); // the rest of the group (workerd, nginx workers), or a stuck process
  };

  const netDown = () => execFileP("bash", [join(TB, "net.sh"), "down"]).catch(() => {});
  // Should this process exit without stop() (an uncaught error, process.exit), leave nothing.
  const onExit = () => {
    if (stopped) return;
    for (const p of procs) killGroup(p, "SIGKILL");
    try {
      execFileSync("bash", [join(TB, "net.sh"), "down"], { stdio: "ignore" });
    } catch {
      /* best effort */
    }
    if (!keep) rmSync(runDir, { recursive: true, force: true });
    release();
  };
  process.on("exit", onExit);

  let stopping: Promise<void> | undefined;
  const teardown = () => (stopping ??= stopAll());
  const stopAll = async () => {
    const order = ["loadgen", "cron", ...SERVICES.map((s) => s.name)];
    // Clients and services first, then the agents (SIGINT: they flush and ship what is left),
    // then the ingest.
    const clients = procs.filter((p) => order.includes(p.name) || p.name.startsWith("cron"));
    await Promise.all(clients.map((p) => stopProc(p)));
    await Promise.all(procs.filter((p) => p.name.startsWith("agent-")).map((p) => stopProc(p, "SIGINT", 6000)));
    await Promise.all(procs.filter((p) => p.name === "ingest").map((p) => stopProc(p)));
    for (const p of procs) killGroup(p, "SIGKILL");
    await netDown();
    stopped = true;
    process.off("exit", onExit);
    if (!keep) rmSync(runDir, { recursive: true, force: true });
    else {
      writeFileSync(join(runDir, "KEEP"), "");
      log(`run directory kept: ${runDir}`);
    }
    release();
  };

  try {
    // 1. The network (removes a crashed run's leftovers first).
    log("network: namespaces estb-h1/h2/h3 on a bridge (estb-sw), DNAT VIP 10.77.0.100:80 -> 10.77.0.12:8080");
    await execFileP("bash", [join(TB, "net.sh"), "up"]);

    // 2. The ingest, in the root namespace, on the bridge's root side.
    // settle 3 s: a root decides its trace id `settle` after it arrives, and must by then have
    // seen the app context below it. A span whose response end is seen only by the agent's idle
    // flush (the last response on a keep-alive connection, written in several syscalls) reaches
    // the ingest up to idle_flush (1 s here) + the sweep period (1 s) + flush_interval later.
    const ing = opts.ingest ?? {};
    const port = await freePortOn(NET.rootAddr);
    const ingestUrl = `http://${NET.rootAddr}:${port}`;
    const ingest = launch("ingest", [process.execPath, join(ROOT, "dist", "start.js"), "--workerd", "--host", NET.rootAddr, "--port", String(port)], {
      ESPAN_SHARDS: String(ing.shards ?? 4),
      ENV_INPUT_EBPFTRACE_SAMPLING_RATE: String(ing.samplingRate ?? 1),
      ENV_INPUT_EBPFTRACE_USE_APP_TRACE_ID: String(ing.useAppTraceId ?? true),
      ENV_INPUT_EBPFTRACE_WINDOW: ing.window ?? "5s",
      ESPAN_SETTLE: ing.settle ?? "3s",
      ENV_INPUT_EBPFTRACE_DB_PATH: join(runDir, "db"),
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: ing.otlpEndpoint ?? "",
      OTEL_EXPORTER_OTLP_PROTOCOL: ing.otlpProtocol ?? "http/protobuf",
    });
    log(`ingest: ${ingestUrl} (workerd serve)`);
    await waitUntil("the ingest to answer /healthz", async () => {
      if (ingest.child.exitCode !== null) throw new Error(`testbed: the ingest exited:\n${ingest.output.slice(-3000)}`);
      try {
        return (await fetch(`${ingestUrl}/healthz`)).ok;
      } catch {
        return false;
      }
    }, 90_000);

    // 3. One agent per host, inside the host's namespaces.
    const agentOut: Record<string, string> = {};
    const agents: Partial<Record<HostName, Proc>> = {};
    for (const h of HOST_NAMES) {
      const host = HOSTS[h];
      agentOut[h] = join(runDir, `agent-${h}.ndjson`);
      const fd = openSync(agentOut[h], "w");
      agents[h] = launch(`agent-${h}`, inHost(host, [
        process.execPath, join(ROOT, "bin", "espan-agent.js"),
        "--trace-server", ingestUrl, "--trace-env-list", host.selectVar, "--stdout",
        "--spool-dir", "", "--status-interval", "300ms", "--idle-flush", "1s", "--flush-interval", "200ms",
      ]), {}, { stdout: fd });
      closeSync(fd);
    }
    for (const h of HOST_NAMES) await agents[h]!.waitLine(/espan-agent: capturing/, 60_000);
    log(`agents: ${HOST_NAMES.map((h) => `${h} selects ${HOSTS[h].selectVar}`).join(", ")}`);

    // 4. The services.
    const hostEnv = (h: HostName) => ({ [HOSTS[h].selectVar]: "1" });
    const otelFile = join(runDir, "otel-checkout.ndjson");
    writeFileSync(otelFile, "");
    const running: RunningService[] = [];
    const ready: Promise<unknown>[] = [];
    for (const s of SERVICES) {
      const host = HOSTS[s.host];
      const env = { ...hostEnv(s.host), ...s.env, TB_NAME: s.name, TB_CALLS: JSON.stringify(s.calls) };
      let argv: string[];
      if (s.runtime === "python") argv = [python, "-u", join(TB, "services", "pysvc.py"), host.addr, String(s.port)];
      else if (s.runtime === "node") argv = [process.execPath, join(TB, "services", "nodesvc.cjs"), host.addr, String(s.port)];
      else if (s.runtime === "node-otel") {
        argv = [process.execPath, "--require", join(TB, "services", "otel.cjs"), join(TB, "services", "nodesvc.cjs"), host.addr, String(s.port)];
        Object.assign(env, { TB_OTEL_FILE: otelFile, OTEL_TRACES_EXPORTER: "none", OTEL_METRICS_EXPORTER: "none", OTEL_LOGS_EXPORTER: "none" });
      } else {
        const upstream = new URL(s.calls.ng[0]).host;
        const conf = join(runDir, "nginx.conf");
        writeFileSync(conf, render(readFileSync(join(TB, "nginx.conf"), "utf8"), { RUN: runDir, LISTEN: `${host.addr}:${s.port}`, UPSTREAM: upstream }));
        argv = ["nginx", "-p", runDir, "-c", conf, "-e", join(runDir, "nginx-error.log")];
      }
      const p = launch(s.name, inHost(host, argv), env);
      running.push({ ...s, pid: p.child.pid!, addr: host.addr });
      ready.push(s.runtime === "nginx" ? waitListening(host, s.port, p) : p.waitLine(/READY \d+/, 30_000));
    }
    await Promise.all(ready);
    const loadgen = launch("loadgen", inHost(HOSTS[LOADGEN.host], [python, "-u", join(TB, "services", "loadgen.py")]), { ...hostEnv(LOADGEN.host), ...LOADGEN.env }, { stdin: true });
    await loadgen.waitLine(/READY/, 30_000);
    log(`services: ${SERVICES.map((s) => `${s.name}@${s.host}:${s.port} (${s.runtime})`).join(", ")}, loadgen@${LOADGEN.host}`);

    // 5. Every agent has selected its host's processes (nginx: master and worker).
    const expectTraced: Record<HostName, number> = { h1: 0, h2: 0, h3: 0 };
    for (const s of SERVICES) expectTraced[s.host] += s.runtime === "nginx" ? 2 : 1;
    expectTraced[LOADGEN.host] += 1;
    const statusOf = (h: HostName): AgentStatus => {
      const lines = agents[h]!.output.split("\n").filter((l) => l.includes("spans/s"));
      for (let i = lines.length - 1; i >= 0; i--) {
        const st = parseStatus(lines[i]);
        if (st) return st;
      }
      return { spans: 0, entries: 0, exits: 0, traced: 0, sent: 0, queued: 0, dropped: 0, rejected: 0, unlinked_ambiguous: 0, capture_drops: 0 };
    };
    await waitUntil("every agent to select its host's processes", () => HOST_NAMES.every((h) => statusOf(h).traced >= expectTraced[h]), 20_000);
    for (const h of HOST_NAMES) {
      if (statusOf(h).spans !== 0) throw new Error(`testbed: agent ${h} produced spans before any traffic:\n${readFileSync(agentOut[h], "utf8").slice(0, 2000)}`);
    }

    // The loadgen answers one phase at a time, one JSON line each.
    const answers: string[] = [];
    let partial = "";
    loadgen.child.stdout!.on("data", (d: Buffer) => {
      const parts = (partial + d.toString()).split("\n");
      partial = parts.pop()!;
      for (const l of parts) if (l.startsWith('{"phase"')) answers.push(l);
    });
    let chain: Promise<unknown> = Promise.resolve();
    const runPhase = (p: Phase): Promise<RequestResult[]> => {
      const next = chain.then(async () => {
        loadgen.child.stdin!.write(JSON.stringify(p) + "\n");
        await waitUntil(`the loadgen's phase ${p.phase}`, () => {
          if (loadgen.child.exitCode !== null) throw new Error(`testbed: the loadgen exited:\n${loadgen.output.slice(-2000)}`);
          return answers.length > 0;
        }, 60_000 + 1000 * p.ids.length, 20);
        return (JSON.parse(answers.shift()!) as { results: RequestResult[] }).results;
      });
      chain = next.catch(() => {});
      return next;
    };

    let cronRuns = 0;
    const runCron = async (o: Partial<typeof CRON_PLAN> = {}): Promise<RequestResult[]> => {
      const plan = { ...CRON_PLAN, ...o };
      const name = `cron${cronRuns++ || ""}`;
      // The shell sleeps `interval` before its first run: by then the agent has selected it from
      // its exec record, and every curl it forks is traced from its first syscall.
      const p = launch(name, inHost(HOSTS[CRON.host], ["/bin/sh", join(TB, "services", "cron.sh"), `${serviceUrl(plan.entry)}/${plan.flow}/`, `${plan.prefix}-`, String(plan.count), String(plan.intervalS)]),
        { ...hostEnv(CRON.host), ...CRON.env });
      await p.waitLine(/cron done/, (plan.count * (plan.intervalS + 10) + 10) * 1000);
      return [...p.output.matchAll(/^cron (\S+) (\d+)$/gm)].map((m) => ({ id: m[1], status: Number(m[2]) }));
    };

    const tb: Testbed = {
      runId,
      runDir,
      ingestUrl,
      services: running,
      agentSpans(h) {
        const text = readFileSync(agentOut[h], "utf8");
        return text.split("\n").filter((l) => l.startsWith("{")).flatMap((l) => {
          try {
            return [JSON.parse(l) as ESpan];
          } catch {
            return []; // a line being written
          }
        });
      },
      agentStatus: statusOf,
      otelSpans() {
        return readFileSync(otelFile, "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as OtelSdkSpan);
      },
      runPhase,
      runCron,
      async waitShipped(timeoutMs = 30_000) {
        // Status lines come every 300 ms: wait for one written after every span was produced, and
        // for no new span for 2.5 s. A connection's last span can come from the idle flush (1 s
        // here) at the next sweep (every 1 s), so "all shipped" can hold for a while before the
        // last spans of the workload are produced (seen: 6 of 648 missed).
        let produced = -1;
        let stableSince = Date.now();
        await waitUntil("the agents to ship every span", () => {
          const counts = HOST_NAMES.map((h) => tb.agentSpans(h).length);
          const total = counts.reduce((a, b) => a + b, 0);
          if (total !== produced) {
            produced = total;
            stableSince = Date.now();
          }
          const shipped = HOST_NAMES.every((h, i) => {
            const st = statusOf(h);
            return st.sent + st.dropped + st.rejected >= counts[i] && st.queued === 0 && st.spans === counts[i];
          });
          return shipped && Date.now() - stableSince >= 2500;
        }, timeoutMs);
      },
      logOf: (name) => procs.filter((p) => p.name === name).map((p) => p.output).join(""),
      stop: teardown,
    };
    return tb;
  } catch (e) {
    const logs = procs.map((p) => `--- ${p.name}\n${p.output.slice(-1500)}`).join("\n");
    await teardown();
    (e as Error).message += `\n${logs}`;
    throw e;
  }
}

/** Waits until something listens on addr:port inside the host (ss in its namespace: no
 * connection is made, so the traced service sees no probe). */
async function waitListening(host: Host, port: number, p: Proc): Promise<void> {
  await waitUntil(`${p.name} to listen on ${host.addr}:${port}`, async () => {
    if (p.child.exitCode !== null) throw new Error(`testbed: ${p.name} exited (${p.child.exitCode}):\n${p.output}`);
    const { stdout } = await execFileP("nsenter", [`--net=/run/netns/${host.netns}`, "ss", "-Hltn", `sport = :${port}`]);
    return stdout.trim() !== "";
  }, 20_000);
}

/** /metrics, each metric summed over its labels. */
/** /metrics, each metric summed over its labels (the parser the ingest's tests use). */
export const ingestMetrics = metrics;

/** Resolves once the ingest has received at least `spans` spans and decided, exported and
 * released every one of them. */
export async function waitLinked(url: string, spans: number, timeoutMs = 60_000): Promise<Record<string, number>> {
  let m: Record<string, number> = {};
  await waitUntil(`the ingest to link ${spans} spans`, async () => {
    m = await ingestMetrics(url);
    const received = m.espan_spans_received_total ?? 0;
    return received >= spans && (m.espan_spans_linked_total ?? 0) >= received - (m.espan_spans_duplicate_total ?? 0) &&
      (m.espan_export_backlog_spans ?? 0) === 0 && (m.espan_pending_spans ?? 0) === 0 && (m.espan_held_spans ?? 0) === 0;
  }, timeoutMs, 200).catch((e: Error) => {
    throw new Error(`${e.message}: ${JSON.stringify(m)}`);
  });
  return m;
}

/** The whole workload: the phases one after the other from the loadgen, while the cron-like
 * job runs on h3. Every client request, with what it is expected to produce. */
export async function runWorkload(tb: Testbed, plan: Phase[], cron: typeof CRON_PLAN | null = CRON_PLAN): Promise<ClientRequest[]> {
  const cronDone = cron ? tb.runCron(cron) : Promise.resolve([]);
  const out: ClientRequest[] = [];
  for (const p of plan) {
    const results = await tb.runPhase(p);
    for (const r of results) out.push({ ...r, phase: p.phase, flow: p.flow, client: LOADGEN.name, traceparent: p.traceparent, concurrency: p.concurrency });
  }
  for (const r of await cronDone) out.push({ ...r, phase: "cron", flow: cron!.flow, client: CRON.name, traceparent: false, concurrency: 1 });
  return out;
}
