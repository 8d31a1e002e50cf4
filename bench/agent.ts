/**
 * The agent's overhead: a traced HTTP server and client on loopback (wrk, or a Node keep-alive
 * client when wrk is missing, against a Node HTTP server), with and without the agent in the
 * same run. Each round starts a fresh agent, warms it up, then runs --pairs pairs of short loads:
 * one with its BPF programs detached (the agent process alive and idle) and one attached, in
 * alternating order (without→with, then with→without). A pair's runs are seconds apart, so drift
 * on the shared 2-core VM (the without-agent rate of one 10 s run swung 2,851 → 1,784 req/s
 * between rounds) hits both alike. Reports:
 *
 * - requests/s with and without the agent, and the throughput loss: the median of every pair's
 *   ratio over all rounds, with its spread (quartiles and range of the pairs' losses). An idle
 *   agent's own CPU (~0.3% of a core) counts in "without"
 * - the other figures: medians of the rounds, each summed over the round's attached runs
 * - BPF run time per request (BPF_ENABLE_STATS via the addon's runStats: the sum of every
 *   program's run_time_ns over the load, / requests); "net" subtracts what the programs spent
 *   on the rest of the machine, measured with the agent attached and no load just before
 *   (run-time stats stay on through the traced phases, so their throughput includes that cost:
 *   two clock reads per program run)
 * - agent CPU per span (process.cpuUsage of the agent process from the load's start until the
 *   last span is shipped, / spans produced), the agent's RSS, and what it lost: ring-buffer drops
 *   show as fewer than 2 spans per request (client exit + server entry). The agent is a
 *   long-running process: the figure is its steady state, measured after --agent-warmup seconds
 *   of the same load on the same agent process, then 2 s more of it after the connections of
 *   the first closed (V8 optimises the agent's hot code by how often it ran: a fresh agent's
 *   first 10 s cost up to twice as much per span, and longer at lower span rates; and it
 *   re-optimises once after a load's end first ran); the fresh-agent figure (the first
 *   --agent-warmup seconds) is reported too
 *
 * Figures go to BENCHMARKS.md; nothing here asserts. Needs root and the built addon.
 *
 *   node dist/bench-agent.js [--seconds 5] [--rounds 3] [--pairs 4] [--connections 16] [--threads 2]
 *                            [--client auto|wrk|node] [--strategy auto|tp_btf|fd_lookup] [--json]
 *                            [--capture-only]        (also an agent per round that only drains the
 *                                                     ring: the BPF capture without the agent's JS)
 *                            [--agent-profile DIR]   (a V8 CPU profile of each agent process)
 *                            [--agent-node-args "A B"] (more node options for the agent processes)
 *                            [--server-work US]      (the server does ~US µs of JSON work per
 *                                                     request; default 0: hello world)
 *                            [--drain-ms MS]         (the agent's ring-buffer drain period; default:
 *                                                     the pipeline's)
 *                            [--agent-warmup S]      (seconds of load on each fresh agent before
 *                                                     the measured one; default 10, 0: none)
 *                            [--server-only]         (trace the server alone, not the client: one
 *                                                     span per request, as on a host whose clients
 *                                                     are elsewhere)
 */
import { fork, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Strategy } from "../agent/native/index.js";
import { runRole, type AgentReply, type AgentRequest, type AgentSnapshot, type Role } from "./agent-roles.ts";
import { machine, median } from "./report.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    /** Pairs of runs (without, with the capture attached) on each round's agent. */
    pairs: { type: "string", default: "4" },
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
    /** More node options for each agent process, space-separated (e.g. "--trace-gc"). */
    "agent-node-args": { type: "string" },
    /** µs of JSON work the server does per request (0: hello world). */
    "server-work": { type: "string", default: "0" },
    /** The agent's drain period (ms); default: the pipeline's own. */
    "drain-ms": { type: "string" },
    /** Seconds of load on each fresh agent before the measured load (its steady state). */
    "agent-warmup": { type: "string", default: "10" },
    /** Trace the server only (the client runs without the selecting variable). */
    "server-only": { type: "boolean", default: false },
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
/** The node options `npx espan-agent` runs the agent with: those on bin/espan-agent.js's `#!` line. */
const AGENT_NODE_FLAGS = readFileSync(join(dirname(SELF), "..", "bin", "espan-agent.js"), "utf8").split("\n")[0].split(/\s+/).filter((w) => w.startsWith("--"));
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
  /** The runs with the programs detached, summed. */
  without: Load;
  /** The runs with them attached, summed. */
  with: WithAgent;
  /** The median of the pairs' ratios. */
  ratio: number;
  pairs: Pair[];
  /** --capture-only: the BPF capture alone (its own agent process and pairs). */
  capture?: WithAgent;
  captureRatio?: number;
  capturePairs?: Pair[];
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
      stdio: ["ignore", 2, "inherit", "ipc"],
      execArgv: [...AGENT_NODE_FLAGS, ...(profile ? ["--cpu-prof", "--cpu-prof-dir", profile] : []), ...(args["agent-node-args"]?.split(/\s+/).filter(Boolean) ?? [])],
    });
    return new Promise((resolve, reject) => {
      child.once("message", (m: AgentReply) => {
        if (m.kind === "ready") resolve({ agent: new AgentProcess(child), strategy: m.strategy, startMs: m.startMs });
        else reject(new Error(`agent: ${"message" in m ? m.message : JSON.stringify(m)}`));
      });
      child.once("exit", (code) => reject(new Error(`agent exited (${code}) before it was ready`)));
    });
  }

  ask(req: Omit<AgentRequest, "id">): Promise<AgentReply> {
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
  /** Pairs of runs (without, with) on each agent. */
  pairs: number;
  /** Only the server is traced: 1 span per request, not 2. */
  serverOnly: boolean;
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

/** One run of a pair: requests/s without the capture and with it, on one warm agent. */
interface Pair {
  without: number;
  with: number;
  ratio: number;
}

/**
 * One fresh agent: attached, its idle cost, a warm-up load (its fresh figure), then `pairs` pairs of
 * loads, each a run with the programs detached (the agent process idle) and one attached, in
 * alternating order. The figures of the attached runs are summed; each pair gives a ratio.
 */
async function withAgent(b: Bench, sink: string, strategy: string, idleS: number, warmupS: number, captureOnly = false): Promise<{ traced: WithAgent; without: Load; pairs: Pair[] }> {
  const { agent, strategy: loaded, startMs } = await AgentProcess.start(sink, strategy, captureOnly);
  // The client is waited for only when it is traced (not with --server-only).
  const clientTraced = (pid: number): Promise<void> => (b.serverOnly ? Promise.resolve() : agent.traced(pid));
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
        await clientTraced(pid);
        w0 = await agent.snapshot();
      });
      const w1 = await settled(agent, await agent.snapshot());
      fresh = (w1.cpuUs - w0.cpuUs) / (w1.spans - w0.spans);
      // And a short second load: the first one's end (its connections closing, the client
      // process exiting) and this one's start run code paths the first load had not, which
      // makes V8 drop the optimised code of the agent's hot functions (--trace-deopt: record,
      // the connection list, the orphan-response path) and compile them again when the next
      // load comes: ~50 ms of compiling (perf), ~1 µs a span of a 5 s measured run at ~6k
      // spans/s, that a long-running agent pays once. Here, not in the first measured run.
      await runLoad(b, Math.min(warmupS, 2), async (pid) => void (await clientTraced(pid)));
      await settled(agent, await agent.snapshot());
      // And one detach → load → attach → load, as the measured pairs do (a production agent
      // never detaches): records of sockets born while detached (role unknown, a thread name
      // not cached) take paths no load had taken, and V8 dropped and recompiled the agent's
      // hottest functions in the measured runs (--trace-deopt: forEachRecord, comm, head,
      // buildSpan; 5-33 ms of compiling each, ~100 ms in all against ~270 ms of agent CPU in
      // a 300 µs server's measured runs).
      await agent.ask({ cmd: "detach" });
      await runLoad(b, Math.min(warmupS, 2));
      await agent.ask({ cmd: "attach" });
      await runLoad(b, Math.min(warmupS, 2), async (pid) => void (await clientTraced(pid)));
      await settled(agent, await agent.snapshot());
    }
    const sum = { requests: 0, errors: 0, seconds: 0, spans: 0, records: 0, drops: 0, bpfNs: 0, bpfRuns: 0, cpuUs: 0, sysUs: 0, loadCpuUs: 0, loadMs: 0, queued: 0 };
    const off = { requests: 0, errors: 0, seconds: 0 };
    const progNs = new Map<string, { ns: number; runs: number }>();
    const pairs: Pair[] = [];
    let sC!: AgentSnapshot;
    for (let p = 0; p < b.pairs; p++) {
      let withRps = 0;
      let withoutRps = 0;
      for (const phase of p % 2 === 0 ? ["without", "with"] : ["with", "without"]) {
        if (phase === "without") {
          await agent.ask({ cmd: "detach" });
          const l = await runLoad(b, b.seconds);
          await agent.ask({ cmd: "attach" });
          off.requests += l.requests;
          off.errors += l.errors;
          off.seconds += l.seconds;
          withoutRps = l.rps;
          continue;
        }
        let sA!: AgentSnapshot;
        const load = await runLoad(b, b.seconds, async (pid) => {
          await clientTraced(pid);
          sA = await agent.snapshot();
        });
        const sB = await agent.snapshot();
        // Until every span of the load has been produced and shipped (its CPU counts too).
        sC = await settled(agent, sB);
        const [bA, bB] = [sA, sB].map(bpfTotals);
        sum.requests += load.requests;
        sum.errors += load.errors;
        sum.seconds += load.seconds;
        sum.spans += sC.spans - sA.spans;
        sum.records += sB.records - sA.records;
        sum.drops += sC.drops - sA.drops;
        sum.bpfNs += bB.ns - bA.ns;
        sum.bpfRuns += bB.runs - bA.runs;
        sum.cpuUs += sC.cpuUs - sA.cpuUs;
        sum.sysUs += sC.sysUs - sA.sysUs;
        sum.loadCpuUs += sB.cpuUs - sA.cpuUs;
        sum.loadMs += sB.atMs - sA.atMs;
        sum.queued = Math.max(sum.queued, sB.queued);
        const before = new Map(sA.programs.map((x) => [x.name, x]));
        for (const x of sB.programs) {
          const t = progNs.get(x.name) ?? { ns: 0, runs: 0 };
          t.ns += x.runTimeNs - (before.get(x.name)?.runTimeNs ?? 0);
          t.runs += x.runCount - (before.get(x.name)?.runCount ?? 0);
          progNs.set(x.name, t);
        }
        withRps = load.rps;
      }
      pairs.push({ without: withoutRps, with: withRps, ratio: withRps / withoutRps });
    }
    const [b0, b1] = [s0, s1].map(bpfTotals);
    const bgNsPerSec = ((b1.ns - b0.ns) / (s1.atMs - s0.atMs)) * 1000;
    const traced: WithAgent = {
      requests: sum.requests,
      errors: sum.errors,
      seconds: sum.seconds,
      rps: sum.requests / sum.seconds,
      strategy: loaded,
      agentStartMs: startMs,
      spans: sum.spans,
      spansPerRequest: sum.spans / sum.requests,
      recordsPerRequest: sum.records / sum.requests,
      ringDrops: sum.drops,
      bpfNsPerRequest: sum.bpfNs / sum.requests,
      bpfNsPerRequestNet: (sum.bpfNs - (bgNsPerSec * sum.loadMs) / 1000) / sum.requests,
      bpfRunsPerRequest: sum.bpfRuns / sum.requests,
      bpfBackgroundNsPerSec: bgNsPerSec,
      agentCpuUsPerSpan: sum.cpuUs / sum.spans,
      agentSysUsPerSpan: sum.sysUs / sum.spans,
      agentCpuUsPerSpanFresh: fresh,
      agentCpuPct: (sum.loadCpuUs / 1000 / sum.loadMs) * 100,
      agentIdleCpuPct: ((s1.cpuUs - s0.cpuUs) / 1000 / (s1.atMs - s0.atMs)) * 100,
      agentRssMiB: sC.rss / 2 ** 20,
      agentPeakRssMiB: sC.maxRss / 2 ** 20,
      agentHeapUsedMiB: sC.heapUsed / 2 ** 20,
      agentIdleRssMiB: s1.rss / 2 ** 20,
      queuedAtLoadEnd: sum.queued,
      programs: [...progNs]
        .map(([name, t]) => ({ name, nsPerRequest: t.ns / sum.requests, runsPerRequest: t.runs / sum.requests }))
        .filter((x) => x.runsPerRequest > 0)
        .sort((x, y) => y.nsPerRequest - x.nsPerRequest),
    };
    return { traced, without: { ...off, rps: off.requests / off.seconds }, pairs };
  } finally {
    await agent.stop();
  }
}

// ---- report ----

const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }) : "n/a");

/** The spread of the pairs' throughput loss, %: quartiles and extremes (losses sorted). */
function lossSpread(pairs: Pair[]) {
  const loss = pairs.map((p) => (1 - p.ratio) * 100).sort((x, y) => x - y);
  const q = (f: number) => {
    const i = (loss.length - 1) * f;
    const lo = Math.floor(i);
    return loss[lo] + (loss[Math.min(lo + 1, loss.length - 1)] - loss[lo]) * (i - lo);
  };
  return { pairs: loss.length, min: loss[0], p25: q(0.25), median: q(0.5), p75: q(0.75), max: loss[loss.length - 1] };
}

function summarize(rounds: Round[]) {
  const m = (f: (r: Round) => number) => median(rounds.map(f));
  // The loss is the median over every pair of every round: a pair's two runs are seconds apart,
  // so drift on the shared machine hits both; its spread says how far one pair can be trusted.
  const allPairs = rounds.flatMap((r) => r.pairs);
  const ratio = median(allPairs.map((p) => p.ratio));
  const capPairs = rounds.flatMap((r) => r.capturePairs ?? []);
  const capRatio = median(capPairs.map((p) => p.ratio));
  const cap = rounds.every((r) => r.capture)
    ? {
        rps: m((r) => r.capture!.rps),
        throughputRatio: capRatio,
        throughputLossPct: (1 - capRatio) * 100,
        lossSpread: lossSpread(capPairs),
        bpfNsPerRequest: m((r) => r.capture!.bpfNsPerRequest),
        bpfNsPerRequestNet: m((r) => r.capture!.bpfNsPerRequestNet),
        recordsPerRequest: m((r) => r.capture!.recordsPerRequest),
        drainCpuPct: m((r) => r.capture!.agentCpuPct),
      }
    : undefined;
  return {
    rpsWithout: median(allPairs.map((p) => p.without)),
    rpsWith: median(allPairs.map((p) => p.with)),
    throughputRatio: ratio,
    throughputLossPct: (1 - ratio) * 100,
    lossSpread: lossSpread(allPairs),
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
  console.log(`espan agent benchmark: ${client} → ${server} on loopback, ${b.serverOnly ? "the server traced" : "both traced"}; ${rounds.length} rounds (a fresh agent each), ${b.pairs} pairs of ${b.seconds} s runs each, alternating`);
  console.log(`machine: ${machine()}`);
  console.log(`load average: ${la(load.start)} at start, ${la(load.end)} at end; seq strategy ${rounds[0]?.with.strategy}`);
  console.log("");
  const row = (name: string, f: (r: Round) => string, med: string) =>
    console.log(`${name.padEnd(34)}${rounds.map((r) => f(r).padStart(11)).join("")}${med.padStart(13)}`);
  row("", (r) => `round ${rounds.indexOf(r) + 1}`, "median");
  row("requests/s without the agent", (r) => fmt(r.without.rps), fmt(s.rpsWithout));
  row("requests/s with the agent", (r) => fmt(r.with.rps), fmt(s.rpsWith));
  row("throughput with / without", (r) => fmt(r.ratio, 3), fmt(s.throughputRatio, 3));
  const ls = s.lossSpread;
  console.log(`  loss over ${ls.pairs} pairs: median ${fmt(ls.median, 1)}%, quartiles ${fmt(ls.p25, 1)}–${fmt(ls.p75, 1)}%, range ${fmt(ls.min, 1)}–${fmt(ls.max, 1)}%`);
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
  row(`spans per request (${b.serverOnly ? 1 : 2} expected)`, (r) => fmt(r.with.spansPerRequest, 3), fmt(s.spansPerRequest, 3));
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
  console.log(`  BPF ≤ ${TARGETS.bpfNsPerRequest / 1000} µs per request, both sides traced${b.serverOnly ? " (here the server only)" : ""}: ${fmt(s.bpfNsPerRequest / 1000, 2)} µs (net ${fmt(s.bpfNsPerRequestNet / 1000, 2)}): ${verdict(s.bpfNsPerRequest <= TARGETS.bpfNsPerRequest)}`);
  console.log(`  agent CPU ≤ ${TARGETS.agentCpuUsPerSpan} µs per span: ${fmt(s.agentCpuUsPerSpan, 2)} µs: ${verdict(s.agentCpuUsPerSpan <= TARGETS.agentCpuUsPerSpan)}`);
  console.log(`  throughput loss ≤ ${TARGETS.throughputLossPct}% at saturation: ${fmt(s.throughputLossPct, 1)}% (median of ${ls.pairs} pairs, quartiles ${fmt(ls.p25, 1)}–${fmt(ls.p75, 1)}%): ${verdict(s.throughputLossPct <= TARGETS.throughputLossPct)}` +
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

  const serverOnly = args["server-only"]!;
  const serverEnv = { ...process.env, [SELECT_VAR]: "1" };
  const clientEnv = serverOnly ? process.env : serverEnv;
  const loadStart = loadavg();
  const sink = await startServerChild("sink", process.env);
  const serverWorkUs = Number(args["server-work"]);
  if (!Number.isFinite(serverWorkUs) || serverWorkUs < 0) throw new Error("--server-work: expected µs >= 0");
  const agentWarmupS = Number(args["agent-warmup"]);
  if (!Number.isFinite(agentWarmupS) || agentWarmupS < 0) throw new Error("--agent-warmup: expected seconds >= 0");
  const server = await startServerChild("server", serverEnv, ["--server-work", String(serverWorkUs)]);
  const pairs = Number(args.pairs);
  if (!Number.isInteger(pairs) || pairs < 1) throw new Error("--pairs: expected an integer >= 1");
  const b: Bench = {
    client: pickClient(args.client!), port: server.port, seconds, clientEnv, serverPid: server.child.pid!,
    connections: Number(args.connections), threads: Number(args.threads), serverWorkUs, agentWarmupS, pairs, serverOnly,
  };
  const sinkUrl = `http://127.0.0.1:${sink.port}`;
  const rounds: Round[] = [];
  try {
    if (warmupS > 0) {
      log(`warm-up: ${warmupS} s without the agent`);
      await runLoad(b, warmupS);
    }
    const strategy = args.strategy as Strategy | "auto";
    const phases = args["capture-only"] ? ["capture", "with"] : ["with"];
    for (let r = 0; r < nRounds; r++) {
      let full: Awaited<ReturnType<typeof withAgent>> | undefined;
      let cap: Awaited<ReturnType<typeof withAgent>> | undefined;
      for (const phase of r % 2 === 0 ? phases : [...phases].reverse()) {
        if (phase === "capture") cap = await withAgent(b, sinkUrl, strategy, idleS, 0, true);
        else full = await withAgent(b, sinkUrl, strategy, idleS, b.agentWarmupS);
      }
      const round: Round = { without: full!.without, with: full!.traced, ratio: median(full!.pairs.map((p) => p.ratio)), pairs: full!.pairs };
      if (cap) Object.assign(round, { capture: cap.traced, captureRatio: median(cap.pairs.map((p) => p.ratio)), capturePairs: cap.pairs });
      rounds.push(round);
      log(
        `round ${r + 1}/${nRounds}: ${fmt(round.without.rps)} req/s without, ${fmt(round.with.rps)} with (pairs ×${round.pairs.map((p) => p.ratio.toFixed(3)).join(" ×")}); ` +
          `BPF ${fmt(round.with.bpfNsPerRequest)} ns/req; agent ${fmt(round.with.agentCpuUsPerSpan, 2)} µs/span` +
          (round.with.agentCpuUsPerSpanFresh !== undefined ? ` (fresh ${fmt(round.with.agentCpuUsPerSpanFresh, 2)})` : "") +
          `, ${fmt(round.with.spans)} spans; ` +
          (round.capture ? `capture alone ${fmt(round.capture.rps)} req/s (×${round.captureRatio!.toFixed(3)}), BPF ${fmt(round.capture.bpfNsPerRequest)} ns/req; ` : "") +
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
      machine: machine(), loadAverage: load, client: b.client, connections: b.connections, threads: b.threads, serverWorkUs, agentWarmupS, serverOnly,
      seconds, pairs: b.pairs, rounds, median: summary, targets: TARGETS,
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
