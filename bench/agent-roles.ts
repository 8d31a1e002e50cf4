/**
 * The processes of the agent benchmark (bench/agent.ts), each started from the same bundle as
 * `node dist/bench-agent.js --role <role>`:
 *
 * - server: a Node HTTP/1.1 keep-alive server answering every GET with a small body; with
 *   serverWorkUs, it first does about that much JSON work per request (stringify and parse of
 *   a small document, calibrated at start): a server that does something, against the
 *   hello-world one whose requests cost almost nothing but the HTTP itself
 * - client: a Node keep-alive load client (C connections, one request in flight on each, for
 *   D seconds; used when wrk is not installed), prints "DONE <ok> <errors> <ms>"
 * - sink:   stands in for the ingest: reads each POST and answers 202 (no decoding, so it costs
 *   the shared CPUs little)
 * - agent:  the real agent pipeline (agent/src/pipeline.ts) shipping to the sink, with BPF
 *   run-time stats on, answering snapshots over the IPC channel; with captureOnly, only the
 *   capture (the same BPF programs, the ring buffer drained and its records thrown away): what
 *   the kernel side costs the traced programs, without the agent's JavaScript
 *
 * Servers print "PORT <n>" once listening on loopback.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { loadConfig } from "../agent/src/config.ts";
import { startAgent, type Agent } from "../agent/src/pipeline.ts";
import { layout, open, type Capture, type Strategy } from "../agent/native/index.js";

export type Role = "server" | "client" | "sink" | "agent";

export interface RoleArgs {
  port?: number;
  /** server: µs of JSON work per request (0: hello world). */
  serverWorkUs?: number;
  connections?: number;
  seconds?: number;
  sink?: string;
  selectVar?: string;
  strategy?: Strategy | "auto";
  captureOnly?: boolean;
  /** agent: the ring-buffer drain period (ms); undefined: the pipeline's default. */
  drainMs?: number;
}

export function runRole(role: Role, a: RoleArgs): void {
  if (role === "server") return serverRole(a.serverWorkUs ?? 0);
  if (role === "sink") return sinkRole();
  if (role === "client") return void clientRole(a.port!, a.connections!, a.seconds!);
  if (a.captureOnly) return captureOnlyRole(a.strategy ?? "auto");
  return agentRole(a.sink!, a.selectVar!, a.strategy ?? "auto", a.drainMs);
}

function listen(server: http.Server): void {
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1", () => process.stdout.write(`PORT ${(server.address() as AddressInfo).port}\n`));
  process.on("SIGTERM", () => process.exit(0));
}

function serverRole(workUs: number): void {
  const body = Buffer.from("ok\n");
  const work = jsonWork(workUs);
  listen(
    http.createServer((req, res) => {
      req.resume();
      work();
      res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
      res.end(body);
    }),
  );
}

/** A function doing about `us` µs of JSON work (a ~1 KB document stringified and parsed, as
 * many times as that takes here, measured at start); a no-op for 0. */
function jsonWork(us: number): () => void {
  if (us <= 0) return () => {};
  const doc = {
    id: 12345, user: { name: "Ada Lovelace", email: "ada@example.com", roles: ["admin", "editor"] },
    items: Array.from({ length: 12 }, (_, i) => ({ sku: `SKU-${1000 + i}`, qty: i % 3, price: 9.99 + i, tags: ["a", "b"] })),
  };
  let sink = 0;
  const unit = () => {
    sink += (JSON.parse(JSON.stringify(doc)) as typeof doc).items.length;
  };
  for (let i = 0; i < 2000; i++) unit(); // warm up
  const n = 4000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) unit();
  const perUnitUs = ((performance.now() - t0) * 1000) / n;
  const reps = Math.max(1, Math.round(us / perUnitUs));
  process.stderr.write(`bench-agent server: ${reps} JSON round trips per request (~${(reps * perUnitUs).toFixed(0)} µs)\n`);
  return () => {
    for (let i = 0; i < reps; i++) unit();
    if (sink < 0) process.stderr.write("");
  };
}

function sinkRole(): void {
  const accepted = Buffer.from('{"accepted":0}');
  listen(
    http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(202, { "content-type": "application/json", "content-length": accepted.length });
        res.end(accepted);
      });
    }),
  );
}

async function clientRole(port: number, connections: number, seconds: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let ok = 0;
  let errors = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      http
        .get({ host: "127.0.0.1", port, path: "/bench", agent }, (res) => {
          res.resume();
          res.on("end", () => {
            if (res.statusCode === 200) ok++;
            else errors++;
            resolve();
          });
        })
        .on("error", () => {
          errors++;
          resolve();
        });
    });
  const worker = async () => {
    while (performance.now() < end) await one();
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const ms = performance.now() - t0;
  agent.destroy();
  process.stdout.write(`DONE ${ok} ${errors} ${ms.toFixed(1)}\n`);
}

/** What the agent process reports at each snapshot. */
export interface AgentSnapshot {
  atMs: number;
  /** process.cpuUsage(), user + system, µs (every thread of the agent process). */
  cpuUs: number;
  /** Its system part (in the kernel: syscalls, page faults). */
  sysUs: number;
  rss: number;
  /** Peak RSS so far, bytes. */
  maxRss: number;
  heapUsed: number;
  strategy: string;
  records: number;
  drops: number;
  spans: number;
  orphanResponses: number;
  noResponse: number;
  idleFlushed: number;
  sent: number;
  shipDropped: number;
  rejected: number;
  retries: number;
  /** Spans not shipped yet: the partial batch and the queue. */
  queued: number;
  programs: { name: string; runCount: number; runTimeNs: number }[];
}

/** attach/detach: the programs on or off, the agent process alive and warm (the benchmark's runs
 * without the capture alternate with runs with it on one agent). */
export type AgentRequest =
  | { id: number; cmd: "snapshot" }
  | { id: number; cmd: "traced"; pid: number }
  | { id: number; cmd: "attach" }
  | { id: number; cmd: "detach" }
  | { id: number; cmd: "stop" };
export type AgentReply =
  | { kind: "ready"; strategy: string; startMs: number }
  | { kind: "error"; message: string }
  | { id: number; kind: "snapshot"; snapshot: AgentSnapshot }
  | { id: number; kind: "traced"; ok: boolean }
  | { id: number; kind: "attached" | "detached" }
  | { id: number; kind: "stopped" };

function snapshot(agent: Agent): AgentSnapshot {
  const s = agent.stats();
  const c = agent.capture.stats();
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return {
    atMs: performance.timeOrigin + performance.now(),
    cpuUs: cpu.user + cpu.system,
    sysUs: cpu.system,
    rss: mem.rss,
    maxRss: process.resourceUsage().maxRSS * 1024,
    heapUsed: mem.heapUsed,
    strategy: s.capture.strategy,
    records: c.records,
    drops: c.drops,
    spans: s.assemble.spans,
    orphanResponses: s.assemble.orphan_responses,
    noResponse: s.assemble.no_response,
    idleFlushed: s.assemble.idle_flushed,
    sent: s.ship?.sent ?? 0,
    shipDropped: s.ship?.dropped ?? 0,
    rejected: s.ship?.rejected ?? 0,
    retries: s.ship?.retries ?? 0,
    queued: (s.ship?.pending ?? 0) + (s.ship?.memory_spans ?? 0) + (s.ship?.disk_spans ?? 0),
    programs: c.programs.map((p) => ({ name: p.name, runCount: p.runCount, runTimeNs: p.runTimeNs })),
  };
}

function captureOnlyRole(strategy: Strategy | "auto"): void {
  const t0 = performance.now();
  let cap: Capture;
  let records = 0;
  try {
    // As the pipeline opens it (agent/src/config.ts: capture_bytes 4096 by default).
    cap = open({ strategy, captureBytes: 4096, runStats: true });
    cap.attach();
    cap.start((_arena, _used, count) => void (records += count), 10);
  } catch (e) {
    process.send!({ kind: "error", message: (e as Error).message } satisfies AgentReply, undefined, undefined, () => process.exit(1));
    return;
  }
  const trace = layout().pidFlags.TRACE;
  const snap = (): AgentSnapshot => {
    const c = cap.stats();
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    return {
      atMs: performance.timeOrigin + performance.now(), cpuUs: cpu.user + cpu.system, sysUs: cpu.system, rss: mem.rss,
      maxRss: process.resourceUsage().maxRSS * 1024, heapUsed: mem.heapUsed, strategy: c.strategy, records, drops: c.drops,
      spans: 0, orphanResponses: 0, noResponse: 0, idleFlushed: 0, sent: 0, shipDropped: 0, rejected: 0, retries: 0, queued: 0,
      programs: c.programs.map((p) => ({ name: p.name, runCount: p.runCount, runTimeNs: p.runTimeNs })),
    };
  };
  process.on("message", (m: AgentRequest) => {
    const send = (r: AgentReply, then?: () => void) => process.send!(r, undefined, undefined, then);
    if (m.cmd === "snapshot") send({ id: m.id, kind: "snapshot", snapshot: snap() });
    else if (m.cmd === "traced") {
      cap.addPid(m.pid, trace);
      send({ id: m.id, kind: "traced", ok: true });
    } else if (m.cmd === "attach" || m.cmd === "detach") {
      if (m.cmd === "attach") cap.attach();
      else cap.detach();
      send({ id: m.id, kind: `${m.cmd}ed` });
    } else if (m.cmd === "stop") {
      cap.stop();
      cap.close();
      send({ id: m.id, kind: "stopped" }, () => process.exit(0));
    }
  });
  process.send!({ kind: "ready", strategy: cap.strategy(), startMs: performance.now() - t0 } satisfies AgentReply);
}

function agentRole(sink: string, selectVar: string, strategy: Strategy | "auto", drainMs: number | undefined): void {
  const send = (m: AgentReply) => process.send!(m);
  const t0 = performance.now();
  let agent: Agent;
  try {
    const { config } = loadConfig({
      flags: { trace_server: sink, trace_env_list: [selectVar], spool_dir: "", status_interval: 0, host_name: "bench" },
    });
    agent = startAgent({ config, capture: { strategy }, drainMs, log: (l) => process.stderr.write(`bench agent: ${l}\n`) });
    agent.capture.setRunStats(true);
  } catch (e) {
    process.send!({ kind: "error", message: (e as Error).message } satisfies AgentReply, undefined, undefined, () => process.exit(1));
    return;
  }
  process.on("message", async (m: AgentRequest) => {
    if (m.cmd === "snapshot") send({ id: m.id, kind: "snapshot", snapshot: snapshot(agent) });
    else if (m.cmd === "traced") {
      const end = Date.now() + 5000;
      let ok = false;
      while (!(ok = (agent.drain(), agent.directory.isTraced(m.pid))) && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      send({ id: m.id, kind: "traced", ok });
    } else if (m.cmd === "attach" || m.cmd === "detach") {
      if (m.cmd === "attach") agent.capture.attach();
      else {
        agent.capture.detach();
        agent.drain(); // what the programs wrote before
      }
      send({ id: m.id, kind: `${m.cmd}ed` });
    } else if (m.cmd === "stop") {
      await agent.stop(2000);
      process.send!({ id: m.id, kind: "stopped" } satisfies AgentReply, undefined, undefined, () => process.exit(0));
    }
  });
  send({ kind: "ready", strategy: agent.capture.strategy(), startMs: performance.now() - t0 });
}
