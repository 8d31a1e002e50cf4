/**
 * The agent's overhead: a traced HTTP server and client on loopback (wrk, or a Node keep-alive
 * client when wrk is missing, against a Node HTTP server), with and without the agent in the
 * same run, alternating (rounds go without→with, then with→without, so that drift on a shared
 * machine hits both alike). Reports, medians of the rounds:
 *
 * - requests/s with and without the agent, their ratio and the throughput loss
 * - BPF run time per request (BPF_ENABLE_STATS via the addon's runStats: the sum of every
 *   program's run_time_ns over the load, / requests); "net" subtracts what the programs spent
 *   on the rest of the machine, measured with the agent attached and no load just before
 *   (run-time stats stay on through the traced phases, so their throughput includes that cost:
 *   two clock reads per program run)
 * - agent CPU per span (process.cpuUsage of the agent process from the load's start until the
 *   last span is shipped, / spans produced), the agent's RSS, and what it lost: ring-buffer drops
 *   show as fewer than 2 spans per request (client exit + server entry). The agent is a
 *   long-running process: the figure is its steady state, measured after --agent-warmup seconds
 *   of the same load on the same agent process (V8 optimises the agent's hot code by how often
 *   it ran: a fresh agent's first 10 s cost up to twice as much per span, and longer at lower
 *   span rates); that fresh-agent figure is reported too
 *
 * Figures go to BENCHMARKS.md; nothing here asserts. Needs root and the built addon.
 *
 *   node dist/bench-agent.js [--seconds 10] [--rounds 3] [--connections 16] [--threads 2]
 *                            [--client auto|wrk|node] [--strategy auto|tp_btf|fd_lookup] [--json]
 *                            [--capture-only]        (a third phase: the BPF capture without the agent's JS)
 *                            [--agent-profile DIR]   (a V8 CPU profile of each agent process)
 *                            [--server-work US]      (the server does ~US µs of JSON work per
 *                                                     request; default 0: hello world)
 *                            [--drain-ms MS]         (the agent's ring-buffer drain period; default:
 *                                                     the pipeline's)
 *                            [--agent-warmup S]      (seconds of load on each fresh agent before
 *                                                     the measured one; default 10, 0: none)
 */
import { fork, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Strategy } from "../agent/native/index.js";
import { runRole, type AgentReply, type AgentRequest, type AgentSnapshot, type Role } from "./agent-roles.ts";
import { machine, median } from "./report.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    rounds: { type: "string", default: "3" },
    connections: { type: "string", default: "16" },
    threads: { type: "string", default: "2" },
    client: { type: "string", default: "auto" },
    strategy: { type: "string", default: "auto" },
    idle: { type: "string", default: "2" },
    warmup: { type: "string", default: "2" },
    json: { type: "boolean", default: false },
    /** Also measure the capture alone (BPF programs attached, ring drained, records dropped). */
    "capture-only": { type: "boolean", default: false },
    /** Write a V8 CPU profile of each agent process (node --cpu-prof) into this directory. */
    "agent-profile": { type: "string" },
    /** µs of JSON work the server does per request (0: hello world). */
    "server-work": { type: "string", default: "0" },
    /** The agent's drain period (ms); default: the pipeline's own. */
    "drain-ms": { type: "string" },
    /** Seconds of load on each fresh agent before the measured load (its steady state). */
    "agent-warmup": { type: "string", default: "10" },
    // internal: the benchmark's own child processes
    role: { type: "string" },
    port: { type: "string" },
    sink: { type: "string" },
    "select-var": { type: "string" },
    "capture-only-role": { type: "boolean", default: false },
  },
});

/** Targets of the agent issue: reported against, never asserted. */
const TARGETS = { bpfNsPerRequest: 6000, agentCpuUsPerSpan: 5, throughputLossPct: 10 };

const SELF = fileURLToPath(import.meta.url);
const SELECT_VAR = `ESPAN_BENCH_TRACE_${process.pid}`;
const log = (line: string) => process.stderr.write(`bench-agent: ${line}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Load {
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
}

interface WithAgent extends Load {
  strategy: string;
  agentStartMs: number;
  spans: number;
  spansPerRequest: number;
  recordsPerRequest: number;
  ringDrops: number;
  bpfNsPerRequest: number;
  bpfNsPerRequestNet: number;
  bpfRunsPerRequest: number;
  /** BPF ns/s spent on the rest of the machine (attached, no load). */
  bpfBackgroundNsPerSec: number;
  agentCpuUsPerSpan: number;
  /** Its system part (the kernel: syscalls, page faults). */
  agentSysUsPerSpan: number;
  /** The same over the warm-up load of the fresh agent (undefined without one). */
  agentCpuUsPerSpanFresh: number | undefined;
  /** Agent CPU during the load, % of one core. */
  agentCpuPct: number;
  agentIdleCpuPct: number;
  agentRssMiB: number;
  agentPeakRssMiB: number;
  agentHeapUsedMiB: number;
  /** RSS attached, before the load. */
  agentIdleRssMiB: number;
  /** Spans produced but not shipped yet when the load ended (a backlog of the shipper). */
  queuedAtLoadEnd: number;
  programs: { name: string; nsPerRequest: number; runsPerRequest: number }[];
}

interface Round {
  without: Load;
  with: WithAgent;
  ratio: number;
  /** --capture-only: the BPF capture alone. */
  capture?: WithAgent;
  captureRatio?: number;
}

// ---- child processes ----

function startServerChild(role: Role, env: NodeJS.ProcessEnv, extra: string[] = []): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [SELF, "--role", role, ...extra], { stdio: ["ignore", "pipe", "inherit"], env });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.once("exit", (code) => reject(new Error(`${role} exited (${code}) before listening`)));
  });
}

/** A client that waits on stdin before it execs (so the agent selects it before its first
 * syscall); resolves with its stdout once it exits. */
function gated(cmd: string, argv: string[], env: NodeJS.ProcessEnv) {
  const child = spawn("sh", ["-c", 'read _ && exec "$0" "$@"', cmd, ...argv], { stdio: ["pipe", "pipe", "pipe"], env });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<string>((resolve) => child.once("close", () => resolve(out)));
  return { pid: child.pid!, release: () => child.stdin!.end("\n"), exited };
}

/** The agent process: the real pipeline, asked for snapshots over IPC. */
class AgentProcess {
  private nextId = 1;
  private readonly waiting = new Map<number, (r: AgentReply) => void>();
  private constructor(private readonly child: ChildProcess) {
    child.on("message", (m: AgentReply) => {
      if ("id" in m) {
        this.waiting.get(m.id)?.(m);
        this.waiting.delete(m.id);
      }
    });
  }

  static start(sink: string, strategy: string, captureOnly: boolean): Promise<{ agent: AgentProcess; strategy: string; startMs: number }> {
    const profile = args["agent-profile"];
    const argv = ["--role", "agent", "--sink", sink, "--select-var", SELECT_VAR, "--strategy", strategy, ...(captureOnly ? ["--capture-only-role"] : []),
      ...(args["drain-ms"] ? ["--drain-ms", args["drain-ms"]] : [])];
    const child = fork(SELF, argv, {
      stdio: ["ignore", "ignore", "inherit", "ipc"],
      execArgv: profile ? ["--cpu-prof", "--cpu-prof-dir", profile] : [],
    });
    return new Promise((resolve, reject) => {
      child.once("message", (m: AgentReply) => {
        if (m.kind === "ready") resolve({ agent: new AgentProcess(child), strategy: m.strategy, startMs: m.startMs });
        else reject(new Error(`agent: ${"message" in m ? m.message : JSON.stringify(m)}`));
      });
      child.once("exit", (code) => reject(new Error(`agent exited (${code}) before it was ready`)));
    });
  }

  private ask(req: Omit<AgentRequest, "id">): Promise<AgentReply> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.send({ ...req, id });
    });
  }

  async snapshot(): Promise<AgentSnapshot> {
    const r = await this.ask({ cmd: "snapshot" });
    return (r as { snapshot: AgentSnapshot }).snapshot;
  }

  async traced(pid: number): Promise<void> {
    const r = (await this.ask({ cmd: "traced", pid } as Omit<AgentRequest, "id">)) as { ok: boolean };
    if (!r.ok) throw new Error(`the agent did not select pid ${pid}`);
  }

  async stop(): Promise<void> {
    const exited = new Promise<void>((r) => this.child.once("exit", () => r()));
    await this.ask({ cmd: "stop" });
    await exited;
  }
}

// ---- load ----

type ClientKind = "wrk" | "node";

function pickClient(wanted: string): ClientKind {
  const haveWrk = spawnSync("wrk", ["--version"], { stdio: "ignore" }).error === undefined;
  if (wanted === "wrk" && !haveWrk) throw new Error("--client wrk: wrk is not installed (scripts/setup-system.sh installs it)");
  if (wanted === "node" || !haveWrk) return "node";
  return "wrk";
}

const UNIT_S: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, m: 60 };

function parseWrk(out: string): Omit<Load, "rps"> {
  const m = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out);
  if (!m) throw new Error(`cannot read wrk's output:\n${out}`);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sock ? sock.slice(1).reduce((a, x) => a + Number(x), 0) : 0);
  return { requests: Number(m[1]) - non2xx, errors, seconds: Number(m[2]) * UNIT_S[m[3]] };
}

function parseNodeClient(out: string): Omit<Load, "rps"> {
  const m = /DONE (\d+) (\d+) ([\d.]+)/.exec(out);
  if (!m) throw new Error(`cannot read the client's output:\n${out}`);
  return { requests: Number(m[1]), errors: Number(m[2]), seconds: Number(m[3]) / 1000 };
}

interface Bench {
  client: ClientKind;
  port: number;
  seconds: number;
  connections: number;
  threads: number;
  clientEnv: NodeJS.ProcessEnv;
  serverPid: number;
  /** µs of JSON work per request in the server (0: hello world). */
  serverWorkUs: number;
  /** Seconds of load on each fresh agent before the measured load. */
  agentWarmupS: number;
}

/** One load run; `beforeRelease` runs once the client process exists, before its first request. */
async function runLoad(b: Bench, seconds: number, beforeRelease?: (pid: number) => Promise<void>): Promise<Load> {
  const url = `http://127.0.0.1:${b.port}/bench`;
  const g =
    b.client === "wrk"
      ? gated("wrk", [`-t${b.threads}`, `-c${b.connections}`, `-d${seconds}s`, url], b.clientEnv)
      : gated(process.execPath, [SELF, "--role", "client", "--port", String(b.port), "--connections", String(b.connections), "--seconds", String(seconds)], b.clientEnv);
  await beforeRelease?.(g.pid);
  g.release();
  const out = await g.exited;
  const r = b.client === "wrk" ? parseWrk(out) : parseNodeClient(out);
  return { ...r, rps: r.requests / r.seconds };
}

const bpfTotals = (s: AgentSnapshot) => s.programs.reduce((a, p) => ({ ns: a.ns + p.runTimeNs, runs: a.runs + p.runCount }), { ns: 0, runs: 0 });

/** Snapshots until every span produced has been shipped and nothing changed for a second
 * (connections closed, idle flushes done), or 20 s; returns the last one. */
async function settled(agent: AgentProcess, from: AgentSnapshot): Promise<AgentSnapshot> {
  let last = from;
  const deadline = Date.now() + 20_000;
  let stable = 0;
  while (Date.now() < deadline) {
    await sleep(250);
    const s = await agent.snapshot();
    stable = s.spans === last.spans && s.queued === 0 && s.sent + s.shipDropped + s.rejected >= s.spans ? stable + 1 : 0;
    last = s;
    if (stable >= 4) break;
  }
  return last;
}

async function withAgent(b: Bench, sink: string, strategy: string, idleS: number, warmupS: number, captureOnly = false): Promise<WithAgent> {
  const { agent, strategy: loaded, startMs } = await AgentProcess.start(sink, strategy, captureOnly);
  try {
    await agent.traced(b.serverPid);
    // What the programs cost with the agent attached and no load: the rest of the machine.
    const s0 = await agent.snapshot();
    await sleep(idleS * 1000);
    const s1 = await agent.snapshot();
    // The same load on this fresh agent first, so that the figures are its steady state.
    let fresh: number | undefined;
    if (warmupS > 0) {
      let w0!: AgentSnapshot;
      await runLoad(b, warmupS, async (pid) => {
        await agent.traced(pid);
        w0 = await agent.snapshot();
      });
      const w1 = await settled(agent, await agent.snapshot());
      fresh = (w1.cpuUs - w0.cpuUs) / (w1.spans - w0.spans);
    }
    let sA!: AgentSnapshot;
    const load = await runLoad(b, b.seconds, async (pid) => {
      await agent.traced(pid);
      sA = await agent.snapshot();
    });
    const sB = await agent.snapshot();
    // Until every span of the load has been produced and shipped (its CPU counts too).
    const sC = await settled(agent, sB);
    const spans = sC.spans - sA.spans;
    const [b0, b1, bA, bB] = [s0, s1, sA, sB].map(bpfTotals);
    const bgNsPerSec = ((b1.ns - b0.ns) / (s1.atMs - s0.atMs)) * 1000;
    const loadMs = sB.atMs - sA.atMs;
    const byName = new Map(sA.programs.map((p) => [p.name, p]));
    return {
      ...load,
      strategy: loaded,
      agentStartMs: startMs,
      spans,
      spansPerRequest: spans / load.requests,
      recordsPerRequest: (sB.records - sA.records) / load.requests,
      ringDrops: sC.drops - sA.drops,
      bpfNsPerRequest: (bB.ns - bA.ns) / load.requests,
      bpfNsPerRequestNet: (bB.ns - bA.ns - (bgNsPerSec * loadMs) / 1000) / load.requests,
      bpfRunsPerRequest: (bB.runs - bA.runs) / load.requests,
      bpfBackgroundNsPerSec: bgNsPerSec,
      agentCpuUsPerSpan: (sC.cpuUs - sA.cpuUs) / spans,
      agentSysUsPerSpan: (sC.sysUs - sA.sysUs) / spans,
      agentCpuUsPerSpanFresh: fresh,
      agentCpuPct: ((sB.cpuUs - sA.cpuUs) / 1000 / loadMs) * 100,
      agentIdleCpuPct: ((s1.cpuUs - s0.cpuUs) / 1000 / (s1.atMs - s0.atMs)) * 100,
      agentRssMiB: sC.rss / 2 ** 20,
      agentPeakRssMiB: sC.maxRss / 2 ** 20,
      agentHeapUsedMiB: sC.heapUsed / 2 ** 20,
      agentIdleRssMiB: s1.rss / 2 ** 20,
      queuedAtLoadEnd: sB.queued,
      programs: sB.programs
        .map((p) => ({
          name: p.name,
          nsPerRequest: (p.runTimeNs - (byName.get(p.name)?.runTimeNs ?? 0)) / load.requests,
          runsPerRequest: (p.runCount - (byName.get(p.name)?.runCount ?? 0)) / load.requests,
        }))
        .filter((p) => p.runsPerRequest > 0)
        .sort((x, y) => y.nsPerRequest - x.nsPerRequest),
    };
  } finally {
    await agent.stop();
  }
}

// ---- report ----

const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }) : "n/a");

function summarize(rounds: Round[]) {
  const m = (f: (r: Round) => number) => median(rounds.map(f));
  const ratio = m((r) => r.ratio);
  const cap = rounds.every((r) => r.capture)
    ? {
        rps: m((r) => r.capture!.rps),
        throughputRatio: m((r) => r.captureRatio!),
        throughputLossPct: (1 - m((r) => r.captureRatio!)) * 100,
        bpfNsPerRequest: m((r) => r.capture!.bpfNsPerRequest),
        bpfNsPerRequestNet: m((r) => r.capture!.bpfNsPerRequestNet),
        recordsPerRequest: m((r) => r.capture!.recordsPerRequest),
        drainCpuPct: m((r) => r.capture!.agentCpuPct),
      }
    : undefined;
  return {
    rpsWithout: m((r) => r.without.rps),
    rpsWith: m((r) => r.with.rps),
    throughputRatio: ratio,
    throughputLossPct: (1 - ratio) * 100,
    bpfNsPerRequest: m((r) => r.with.bpfNsPerRequest),
    bpfNsPerRequestNet: m((r) => r.with.bpfNsPerRequestNet),
    bpfRunsPerRequest: m((r) => r.with.bpfRunsPerRequest),
    bpfBackgroundNsPerSec: m((r) => r.with.bpfBackgroundNsPerSec),
    agentCpuUsPerSpan: m((r) => r.with.agentCpuUsPerSpan),
    agentSysUsPerSpan: m((r) => r.with.agentSysUsPerSpan),
    agentCpuUsPerSpanFresh: rounds.every((r) => r.with.agentCpuUsPerSpanFresh !== undefined) ? m((r) => r.with.agentCpuUsPerSpanFresh!) : undefined,
    agentCpuPct: m((r) => r.with.agentCpuPct),
    agentIdleCpuPct: m((r) => r.with.agentIdleCpuPct),
    spansPerRequest: m((r) => r.with.spansPerRequest),
    recordsPerRequest: m((r) => r.with.recordsPerRequest),
    agentHeapUsedMiB: m((r) => r.with.agentHeapUsedMiB),
    queuedAtLoadEnd: m((r) => r.with.queuedAtLoadEnd),
    agentIdleRssMiB: m((r) => r.with.agentIdleRssMiB),
    agentRssMiB: m((r) => r.with.agentRssMiB),
    agentPeakRssMiB: m((r) => r.with.agentPeakRssMiB),
    agentStartMs: m((r) => r.with.agentStartMs),
    ringDrops: rounds.reduce((a, r) => a + r.with.ringDrops, 0),
    clientErrors: rounds.reduce((a, r) => a + r.with.errors + r.without.errors + (r.capture?.errors ?? 0), 0),
    captureOnly: cap,
  };
}

function printSummary(b: Bench, rounds: Round[], s: ReturnType<typeof summarize>, load: { start: number[]; end: number[] }) {
  const la = (x: number[]) => x.map((v) => v.toFixed(2)).join(" ");
  const client = b.client === "wrk" ? `wrk -t${b.threads} -c${b.connections}` : `Node keep-alive client, ${b.connections} connections`;
  const server = b.serverWorkUs > 0 ? `Node HTTP server doing ~${b.serverWorkUs} µs of JSON work per request` : "hello-world Node HTTP server";
  console.log(`espan agent benchmark: ${client} → ${server} on loopback, both traced; ${b.seconds} s × ${rounds.length} rounds, alternating`);
  console.log(`machine: ${machine()}`);
  console.log(`load average: ${la(load.start)} at start, ${la(load.end)} at end; seq strategy ${rounds[0]?.with.strategy}`);
  console.log("");
  const row = (name: string, f: (r: Round) => string, med: string) =>
    console.log(`${name.padEnd(34)}${rounds.map((r) => f(r).padStart(11)).join("")}${med.padStart(13)}`);
  row("", (r) => `round ${rounds.indexOf(r) + 1}`, "median");
  row("requests/s without the agent", (r) => fmt(r.without.rps), fmt(s.rpsWithout));
  row("requests/s with the agent", (r) => fmt(r.with.rps), fmt(s.rpsWith));
  row("throughput with / without", (r) => fmt(r.ratio, 3), fmt(s.throughputRatio, 3));
  if (s.captureOnly) {
    row("requests/s, capture alone", (r) => fmt(r.capture!.rps), fmt(s.captureOnly.rps));
    row("  throughput / without", (r) => fmt(r.captureRatio!, 3), fmt(s.captureOnly.throughputRatio, 3));
    row("  BPF ns per request", (r) => fmt(r.capture!.bpfNsPerRequest), fmt(s.captureOnly.bpfNsPerRequest));
    row("  ring drain CPU, % of a core", (r) => fmt(r.capture!.agentCpuPct, 1), fmt(s.captureOnly.drainCpuPct, 1));
  }
  row("BPF ns per request", (r) => fmt(r.with.bpfNsPerRequest), fmt(s.bpfNsPerRequest));
  row("  net of the rest of the machine", (r) => fmt(r.with.bpfNsPerRequestNet), fmt(s.bpfNsPerRequestNet));
  row("BPF program runs per request", (r) => fmt(r.with.bpfRunsPerRequest, 1), fmt(s.bpfRunsPerRequest, 1));
  row("agent CPU µs per span", (r) => fmt(r.with.agentCpuUsPerSpan, 2), fmt(s.agentCpuUsPerSpan, 2));
  row("  of which system (the kernel)", (r) => fmt(r.with.agentSysUsPerSpan, 2), fmt(s.agentSysUsPerSpan, 2));
  if (s.agentCpuUsPerSpanFresh !== undefined) {
    row(`  fresh agent, its first ${fmt(b.agentWarmupS)} s`, (r) => fmt(r.with.agentCpuUsPerSpanFresh!, 2), fmt(s.agentCpuUsPerSpanFresh, 2));
  }
  row("agent CPU during load, % of a core", (r) => fmt(r.with.agentCpuPct, 1), fmt(s.agentCpuPct, 1));
  row("ring records per request", (r) => fmt(r.with.recordsPerRequest, 2), fmt(s.recordsPerRequest, 2));
  row("spans per request (2 expected)", (r) => fmt(r.with.spansPerRequest, 3), fmt(s.spansPerRequest, 3));
  row("agent RSS MiB (attached, no load)", (r) => fmt(r.with.agentIdleRssMiB, 1), fmt(s.agentIdleRssMiB, 1));
  row("agent RSS MiB (after the load)", (r) => fmt(r.with.agentRssMiB, 1), fmt(s.agentRssMiB, 1));
  row("agent peak RSS MiB", (r) => fmt(r.with.agentPeakRssMiB, 1), fmt(s.agentPeakRssMiB, 1));
  row("agent JS heap used MiB", (r) => fmt(r.with.agentHeapUsedMiB, 1), fmt(s.agentHeapUsedMiB, 1));
  row("spans not shipped at the load's end", (r) => fmt(r.with.queuedAtLoadEnd), fmt(s.queuedAtLoadEnd));
  console.log("");
  console.log(`BPF background (attached, no load): ${fmt(s.bpfBackgroundNsPerSec / 1000)} µs/s; agent idle CPU ${fmt(s.agentIdleCpuPct, 2)}% of a core; agent start ${fmt(s.agentStartMs)} ms`);
  console.log(`ring buffer drops ${s.ringDrops}; client errors ${s.clientErrors}`);
  const last = rounds[rounds.length - 1];
  if (last) {
    console.log(`BPF ns per request by program (round ${rounds.length}): ` +
      last.with.programs.slice(0, 8).map((p) => `${p.name} ${fmt(p.nsPerRequest)} (${fmt(p.runsPerRequest, 1)} runs)`).join(", "));
  }
  console.log("");
  const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
  console.log("targets (reported, not asserted):");
  console.log(`  BPF ≤ ${TARGETS.bpfNsPerRequest / 1000} µs per request, both sides traced: ${fmt(s.bpfNsPerRequest / 1000, 2)} µs (net ${fmt(s.bpfNsPerRequestNet / 1000, 2)}): ${verdict(s.bpfNsPerRequest <= TARGETS.bpfNsPerRequest)}`);
  console.log(`  agent CPU ≤ ${TARGETS.agentCpuUsPerSpan} µs per span: ${fmt(s.agentCpuUsPerSpan, 2)} µs: ${verdict(s.agentCpuUsPerSpan <= TARGETS.agentCpuUsPerSpan)}`);
  console.log(`  throughput loss ≤ ${TARGETS.throughputLossPct}% at saturation: ${fmt(s.throughputLossPct, 1)}%: ${verdict(s.throughputLossPct <= TARGETS.throughputLossPct)}` +
    (s.captureOnly ? ` (the capture alone: ${fmt(s.captureOnly.throughputLossPct, 1)}%)` : ""));
}

// ---- main ----

async function main(): Promise<void> {
  const seconds = Number(args.seconds);
  const nRounds = Number(args.rounds);
  const idleS = Number(args.idle);
  const warmupS = Number(args.warmup);
  for (const [k, v] of Object.entries({ seconds, rounds: nRounds, idle: idleS, warmup: warmupS, connections: Number(args.connections), threads: Number(args.threads) })) {
    if (!Number.isFinite(v) || v < 0 || (k !== "warmup" && v === 0)) throw new Error(`--${k}: expected a positive number`);
  }
  if (!["auto", "tp_btf", "fd_lookup"].includes(args.strategy!)) throw new Error("--strategy: auto, tp_btf or fd_lookup");
  if (process.getuid?.() !== 0) throw new Error("needs root (the agent loads BPF programs)");

  const clientEnv = { ...process.env, [SELECT_VAR]: "1" };
  const loadStart = loadavg();
  const sink = await startServerChild("sink", process.env);
  const serverWorkUs = Number(args["server-work"]);
  if (!Number.isFinite(serverWorkUs) || serverWorkUs < 0) throw new Error("--server-work: expected µs >= 0");
  const agentWarmupS = Number(args["agent-warmup"]);
  if (!Number.isFinite(agentWarmupS) || agentWarmupS < 0) throw new Error("--agent-warmup: expected seconds >= 0");
  const server = await startServerChild("server", clientEnv, ["--server-work", String(serverWorkUs)]);
  const b: Bench = {
    client: pickClient(args.client!), port: server.port, seconds, clientEnv, serverPid: server.child.pid!,
    connections: Number(args.connections), threads: Number(args.threads), serverWorkUs, agentWarmupS,
  };
  const sinkUrl = `http://127.0.0.1:${sink.port}`;
  const rounds: Round[] = [];
  try {
    if (warmupS > 0) {
      log(`warm-up: ${warmupS} s without the agent`);
      await runLoad(b, warmupS);
    }
    const strategy = args.strategy as Strategy | "auto";
    const phases = args["capture-only"] ? ["without", "capture", "with"] : ["without", "with"];
    for (let r = 0; r < nRounds; r++) {
      let without: Load | undefined;
      let traced: WithAgent | undefined;
      let capture: WithAgent | undefined;
      for (const phase of r % 2 === 0 ? phases : [...phases].reverse()) {
        if (phase === "without") without = await runLoad(b, seconds);
        else if (phase === "capture") capture = await withAgent(b, sinkUrl, strategy, idleS, 0, true);
        else traced = await withAgent(b, sinkUrl, strategy, idleS, b.agentWarmupS);
      }
      const round: Round = { without: without!, with: traced!, ratio: traced!.rps / without!.rps };
      if (capture) Object.assign(round, { capture, captureRatio: capture.rps / without!.rps });
      rounds.push(round);
      log(
        `round ${r + 1}/${nRounds}: ${fmt(round.without.rps)} req/s without, ${fmt(round.with.rps)} with (×${round.ratio.toFixed(3)}); ` +
          `BPF ${fmt(round.with.bpfNsPerRequest)} ns/req; agent ${fmt(round.with.agentCpuUsPerSpan, 2)} µs/span` +
          (round.with.agentCpuUsPerSpanFresh !== undefined ? ` (fresh ${fmt(round.with.agentCpuUsPerSpanFresh, 2)})` : "") +
          `, ${fmt(round.with.spans)} spans; ` +
          (capture ? `capture alone ${fmt(capture.rps)} req/s (×${round.captureRatio!.toFixed(3)}), BPF ${fmt(capture.bpfNsPerRequest)} ns/req; ` : "") +
          `load average ${loadavg()[0].toFixed(2)}`,
      );
    }
  } finally {
    server.child.kill("SIGTERM");
    sink.child.kill("SIGTERM");
  }
  const load = { start: loadStart, end: loadavg() };
  const summary = summarize(rounds);
  if (args.json) {
    console.log(JSON.stringify({
      machine: machine(), loadAverage: load, client: b.client, connections: b.connections, threads: b.threads, serverWorkUs, agentWarmupS,
      seconds, rounds, median: summary, targets: TARGETS,
    }, null, 2));
  } else {
    printSummary(b, rounds, summary, load);
  }
}

if (args.role) {
  runRole(args.role as Role, {
    port: Number(args.port), connections: Number(args.connections), seconds: Number(args.seconds), serverWorkUs: Number(args["server-work"]),
    sink: args.sink, selectVar: args["select-var"], strategy: args.strategy as Strategy | "auto", captureOnly: args["capture-only-role"],
    drainMs: args["drain-ms"] ? Number(args["drain-ms"]) : undefined,
  });
} else {
  main().catch((e) => {
    log((e as Error).stack ?? String(e));
    process.exit(1);
  });
}
