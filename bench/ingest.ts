/**
 * `npm run bench:ingest`: the ingest on `workerd serve` under a keep-alive loopback load of
 * generated eSpans, in batches of 500, as JSON then as NDJSON, each for `--seconds`. Reports
 * spans/s accepted and exported to a local OTLP sink, ack latency p50/p99, workerd's RSS, and
 * trace completion latency (the request carrying a trace's root → the sink receiving the root).
 * Exported spans/s is given twice: what the sink received while the load ran, per second of load
 * (the export's sustained rate: below the accepted rate, the export falls behind), and over the
 * sink's first to last request (which takes in the drain after the load, up to the window).
 * With a window shorter than the load (`--window 5s`) the export runs at the accepted rate, and
 * `--drain-all` waits for all of it: workerd's CPU per span then counts the whole export.
 * Sampling rate 1 (every span exported) is the stress case; `--sampling-rate 0.1` is the default
 * configuration of the ingest. Nothing asserts; figures go to BENCHMARKS.md.
 *
 *   node dist/bench-ingest.js [--seconds 30] [--connections 4] [--shards 1] [--batch 500] [--sampling-rate 1] [--window 20s] [--drain-all] [--inspect HOST:PORT]
 *
 * BENCH_INGEST_LOG=N prints the last N lines workerd logged, after each format's run (errors of
 * the ingest under load show there).
 */
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { parseArgs } from "node:util";
import { createRequire } from "node:module";
import type { ESpan } from "../contract/espan.ts";
import { generateTrafficChunks } from "../test/gen/traffic.ts";
import { startIngest, type Ingest } from "../test/e2e/ingest/ingest-server.ts";
import { metrics } from "../test/e2e/ingest/metrics.ts";
import { machine } from "./report.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "30" },
    connections: { type: "string", default: "4" },
    shards: { type: "string", default: "1" },
    batch: { type: "string", default: "500" },
    settle: { type: "string", default: "2s" },
    window: { type: "string", default: "20s" },
    json: { type: "boolean", default: false },
    formats: { type: "string", default: "json,ndjson" },
    "sampling-rate": { type: "string", default: "1" },
    /** Wait for every accepted span to be decided and exported (up to 90 s) before measuring CPU. */
    "drain-all": { type: "boolean", default: false },
    /** Opens workerd's V8 inspector on HOST:PORT (CPU profiles of the isolate under this load). */
    inspect: { type: "string" },
  },
});
const SECONDS = Number(args.seconds);
const CONNS = Number(args.connections);
const BATCH = Number(args.batch);
const SAMPLING = Number(args["sampling-rate"]);
const DRAIN_ALL = args["drain-all"]!;

const require = createRequire(import.meta.url);
const Request = require("otlp-proto-definitions/build/src/generated/root.js").opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

/** The OTLP sink: counts spans, notes when each root span arrived. */
async function startSink() {
  const state = { spans: 0, rootsSeen: new Map<string, number>(), firstAt: 0, lastAt: 0, spansBy: (_t: number) => 0 };
  const arrivals: [number, number][] = []; // [time, spans so far]
  state.spansBy = (t: number) => {
    let n = 0;
    for (const [at, total] of arrivals) if (at <= t) n = total;
    return n;
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const now = performance.now();
      const msg = Request.decode(Buffer.concat(chunks));
      for (const rs of msg.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) {
        state.spans++;
        if (!s.parentSpanId || s.parentSpanId.length === 0) state.rootsSeen.set(Buffer.from(s.spanId).toString("hex"), now);
      }
      if (!state.firstAt) state.firstAt = now;
      state.lastAt = now;
      arrivals.push([now, state.spans]);
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { state, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/traces`, close: () => server.close() };
}

/** Bodies of BATCH generated spans, made ahead of the load (on this process's core). */
function* bodies(format: "json" | "ndjson", seed: number): Generator<{ body: string; roots: string[] }> {
  let pending: ESpan[] = [];
  for (const chunk of generateTrafficChunks({ seed, traces: 1e9, clientRootFraction: 0.5, untracedCallerFraction: 0.1, dbCallFraction: 0.3, natFraction: 0.2 }, 200)) {
    pending.push(...chunk.spans);
    while (pending.length >= BATCH) {
      const spans = pending.slice(0, BATCH);
      pending = pending.slice(BATCH);
      const roots = spans.filter((s) => s.kind === "exit" && !s.thread_trace_id).map((s) => s.span_id);
      yield { body: format === "json" ? JSON.stringify({ spans }) : spans.map((s) => JSON.stringify(s)).join("\n"), roots };
    }
  }
}

/** RSS of this run's workerd: a `workerd` process descended from the launcher serving `port` (other runs on the machine are not counted). */
function rssOfIngest(port: string): number {
  return ingestProcesses(port).reduce((best, pid) => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      return m ? Math.max(best, Number(m[1]) * 1024) : best;
    } catch {
      return best; // gone
    }
  }, 0);
}

/** CPU seconds (user + system) this run's workerd has used so far. */
function cpuOfIngest(port: string): number {
  let ticks = 0;
  for (const pid of ingestProcesses(port)) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    } catch {
      /* gone */
    }
  }
  return ticks / 100; // USER_HZ
}

function ingestProcesses(port: string): number[] {
  const fs = require("node:fs") as typeof import("node:fs");
  const parent = new Map<number, number>();
  const cmd = new Map<number, string>();
  for (const p of fs.readdirSync("/proc").filter((p: string) => /^\d+$/.test(p))) {
    try {
      cmd.set(Number(p), readFileSync(`/proc/${p}/cmdline`, "utf8"));
      parent.set(Number(p), Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, "utf8"))![1]));
    } catch {
      /* gone */
    }
  }
  const launchers = new Set([...cmd].filter(([, c]) => c.includes("start.js") && c.includes(`--port\0${port}\0`)).map(([pid]) => pid));
  const out: number[] = [];
  for (const [pid, c] of cmd) {
    if (!c.includes("workerd")) continue;
    let up = parent.get(pid);
    while (up && !launchers.has(up)) up = parent.get(up);
    if (up) out.push(pid);
  }
  return out;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};

async function runFormat(format: "json" | "ndjson", seed: number) {
  const sink = await startSink();
  const ingest: Ingest = await startIngest({
    shards: Number(args.shards), samplingRate: SAMPLING, useAppTraceId: true, window: args.window, settle: args.settle,
    otlpEndpoint: sink.url, otlpProtocol: "http/protobuf", extraEnv: { ESPAN_MAX_PENDING: "5000000", ESPAN_MAX_EXPORT_BACKLOG: "5000000" },
    extraArgs: args.inspect ? ["--inspect", args.inspect] : [],
  });
  const url = new URL(`${ingest.url}/v1/bpftracing`);
  const agent = new Agent({ keepAlive: true, maxSockets: CONNS });
  const gen = bodies(format, seed);
  const acks: number[] = [];
  const rootPosted = new Map<string, number>();
  let accepted = 0;
  let refused = 0;
  let maxRss = 0;
  const cpu0 = cpuOfIngest(url.port);
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  const post = (body: string) => new Promise<number>((resolve) => {
    const req = request(url, { method: "POST", agent, headers: { "content-type": format === "json" ? "application/json" : "application/x-ndjson" } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", () => resolve(0));
    req.end(body);
  });
  const worker = async () => {
    while (performance.now() < end) {
      const { body, roots } = gen.next().value!;
      const t = performance.now();
      const status = await post(body);
      const done = performance.now();
      if (status === 202) {
        acks.push(done - t);
        accepted += BATCH;
        for (const r of roots) rootPosted.set(r, t);
      } else refused++;
    }
  };
  // The export backlog (spans decided, waiting for the store and the collector) once a second:
  // what shows whether the export keeps up (spans are decided settle after a client root, or
  // when their window ends, so exported spans/s during a load as long as the window trails the
  // accepted rate whatever the export's speed).
  let backlogMax = 0;
  const sampler = setInterval(() => {
    maxRss = Math.max(maxRss, rssOfIngest(url.port));
    void metrics(ingest.url).then((m) => (backlogMax = Math.max(backlogMax, m.espan_export_backlog_spans ?? 0)), () => {});
  }, 1000);
  await Promise.all(Array.from({ length: CONNS }, worker));
  const loadEnd = performance.now();
  const atEnd = await metrics(ingest.url);
  const exportedAtEnd = sink.state.spansBy(performance.now());
  const loadSeconds = (loadEnd - t0) / 1000;
  // Let the last settle and exports drain (client roots decide `settle` after arrival).
  // --drain-all: until the sink has every accepted span (sampling 1) and the backlog is gone, so
  // that workerd's CPU per span counts the whole export of what was accepted.
  const drainUntil = performance.now() + (DRAIN_ALL ? 90_000 : 15_000);
  const drained = async () => {
    if (!DRAIN_ALL) return sink.state.spans >= accepted * 0.5 * Math.min(1, SAMPLING);
    const m = await metrics(ingest.url);
    return (m.espan_spans_linked_total ?? 0) >= accepted && (m.espan_export_backlog_spans ?? 0) === 0;
  };
  while (performance.now() < drainUntil && !(await drained())) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 4000));
  clearInterval(sampler);
  const cpuSeconds = cpuOfIngest(url.port) - cpu0;
  const m = await metrics(ingest.url);
  const completion: number[] = [];
  for (const [id, at] of rootPosted) {
    const seen = sink.state.rootsSeen.get(id);
    if (seen !== undefined) completion.push(seen - at);
  }
  const exportedInLoad = sink.state.spans;
  if (process.env.BENCH_INGEST_LOG) console.error(ingest.log().split("\n").filter((l) => l).slice(-Number(process.env.BENCH_INGEST_LOG)).join("\n"));
  await ingest.stop();
  sink.close();
  agent.destroy();
  return {
    format,
    seconds: +loadSeconds.toFixed(1),
    acceptedSpansPerSec: Math.round(accepted / loadSeconds),
    exportedDuringLoadPerSec: Math.round(sink.state.spansBy(loadEnd) / loadSeconds),
    exportedSpansPerSec: Math.round(exportedInLoad / ((sink.state.lastAt - sink.state.firstAt) / 1000 || 1)),
    exportedSpans: exportedInLoad,
    // Decided (linked) spans by the end of the load, per second of load; sampled in of them
    // exported by then; the export backlog at the end and its largest sample during the load.
    decidedDuringLoadPerSec: Math.round((atEnd.espan_spans_linked_total ?? 0) / loadSeconds),
    exportedOfSampledAtEnd: +(exportedAtEnd / Math.max(1, (atEnd.espan_spans_linked_total ?? 0) - (atEnd.espan_spans_sampled_out_total ?? 0))).toFixed(3),
    exportBacklogAtEnd: atEnd.espan_export_backlog_spans ?? 0,
    exportBacklogMax: backlogMax,
    refusedRequests: refused,
    ackP50Ms: +pct(acks, 50).toFixed(1),
    ackP99Ms: +pct(acks, 99).toFixed(1),
    completionP50Ms: Math.round(pct(completion, 50)),
    completionP99Ms: Math.round(pct(completion, 99)),
    clientRootTraces: completion.length,
    clientRootsPosted: rootPosted.size,
    workerdRssMiB: Math.round(maxRss / 2 ** 20),
    // workerd's CPU over the load and the drain, per accepted span: steadier than rates on a shared machine.
    workerdCpuUsPerSpan: +((cpuSeconds * 1e6) / (accepted || 1)).toFixed(1),
    crossShardMessages: m.espan_cross_shard_messages_total,
    exportFailures: m.espan_export_failures_total ?? 0,
  };
}

const results = [];
for (const [i, f] of (args.formats!.split(",") as ("json" | "ndjson")[]).entries()) {
  console.error(`${f}: ${SECONDS} s of load, ${CONNS} keep-alive connections, batches of ${BATCH}, ${args.shards} shards, sampling rate ${SAMPLING}...`);
  results.push(await runFormat(f, 100 + i));
  console.error(JSON.stringify(results[results.length - 1]));
}
const out = { machine: machine(), shards: Number(args.shards), samplingRate: SAMPLING, connections: CONNS, batch: BATCH, settle: args.settle, window: args.window, results };
if (args.json) console.log(JSON.stringify(out, null, 2));
else {
  for (const r of results) {
    console.log(`${r.format.padEnd(7)} sampling ${SAMPLING}: accepted ${r.acceptedSpansPerSec} spans/s, exported ${r.exportedDuringLoadPerSec} spans/s during the load ` +
      `(${r.exportedSpansPerSec} spans/s first to last; decided ${r.decidedDuringLoadPerSec} spans/s, export backlog max ${r.exportBacklogMax} at end ${r.exportBacklogAtEnd}), ack p50 ${r.ackP50Ms} ms p99 ${r.ackP99Ms} ms, ` +
      `completion p50 ${r.completionP50Ms} ms p99 ${r.completionP99Ms} ms (${r.clientRootTraces} client-root traces), workerd RSS ${r.workerdRssMiB} MiB, workerd CPU ${r.workerdCpuUsPerSpan} µs/span, refused ${r.refusedRequests}`);
  }
}
