/**
 * `npm run bench:core`: generated spans through the WASM engine and the TS reference model in
 * the same run, with arrival streaming at a fixed rate so windows expire as in production.
 * Reports spans/s (median of the runs), the ratio, held/pending spans, bytes per held span,
 * and peak memory. Figures go to BENCHMARKS.md; nothing here asserts.
 *
 *   node dist/bench-core.js [--spans 1000000] [--runs 3] [--rate 50000] [--shards 1] [--model-runs 1] [--wasm FILE]
 *                           [--records-only] [--profile-warm FILE.cpuprofile]
 *   node dist/bench-core.js --fan-out N [--wasm FILE]   (one thread making N calls, then its entry:
 *                                                        the time to link them, growing with N)
 *   node dist/bench-core.js --one-key N [--wasm FILE]   (N spans reporting one net key: bad input)
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { parseArgs } from "node:util";
import type { ESpan } from "../contract/espan.ts";
import type { LinkConfig } from "../src/linker/config.ts";
import { LinkerEngine } from "../src/linker/engine.ts";
import { LocalCluster } from "../src/linker/local-cluster.ts";
import { loadEngineModule } from "../src/linker/load-node.ts";
import { generateTrafficChunks } from "../test/gen/traffic.ts";
import { ReferenceLinker } from "../test/model/reference-linker.ts";
import { machine, median } from "./report.ts";

const { values: args } = parseArgs({
  options: {
    spans: { type: "string", default: "1000000" },
    runs: { type: "string", default: "3" },
    "model-runs": { type: "string", default: "1" },
    rate: { type: "string", default: "50000" },
    batch: { type: "string", default: "500" },
    shards: { type: "string", default: "1" },
    window: { type: "string", default: "20000" },
    settle: { type: "string", default: "2000" },
    json: { type: "boolean", default: false },
    /** Another build of the engine (e.g. one with names, for `node --cpu-prof`). */
    wasm: { type: "string" },
    /** Stop after the engine's runs on pre-encoded records (for profiling the engine alone). */
    "records-only": { type: "boolean", default: false },
    /** Only time one thread group of this many exits waiting for their entry (a worst case of fan-out). */
    "fan-out": { type: "string" },
    /** Only time this many exits that all report one net key (bad input: conflicts of one net group). */
    "one-key": { type: "string" },
    /**
     * Write a CPU profile of the warm runs only (open in Chrome DevTools; build the engine with
     * names for it: `npx asc assembly/index.ts --target release --debug -o F`, then `--wasm F`).
     * `node --cpu-prof` would mix in generation, encoding and the cold runs' page faults.
     */
    "profile-warm": { type: "string" },
  },
});
const N = Number(args.spans);
const RATE = Number(args.rate); // spans per second of (simulated) arrival
const BATCH = Number(args.batch);
const CFG: LinkConfig = { windowMs: Number(args.window), settleMs: Number(args.settle), samplingRate: 0.1, useAppTraceId: true };

const TRAFFIC = {
  seed: 7, traces: Math.ceil(N / 5), appInstrumentedFraction: 0.2, untracedCallerFraction: 0.3,
  clientRootFraction: 0.4, dbCallFraction: 0.3, natFraction: 0.2,
};

/** Generated traffic in emit order, cut into arrival batches of BATCH spans at RATE spans/s. */
function* trafficBatches(): Generator<{ spans: ESpan[]; at: number }> {
  let pending: ESpan[] = [];
  let sent = 0;
  for (const chunk of generateTrafficChunks(TRAFFIC, 500)) {
    pending.push(...chunk.spans);
    while (pending.length >= BATCH && sent < N) {
      const spans = pending.slice(0, Math.min(BATCH, N - sent));
      pending = pending.slice(spans.length);
      yield { spans, at: Math.floor((sent / RATE) * 1000) };
      sent += spans.length;
    }
    if (sent >= N) return;
  }
  if (pending.length > 0 && sent < N) yield { spans: pending.slice(0, N - sent), at: Math.floor((sent / RATE) * 1000) };
}

interface Run {
  breakdown?: Record<string, number>;
  /** Engine runs: time in tick (timers: expiry, decisions, frees) and in ingest. */
  tickMs?: number;
  ingestMs?: number;
  seconds: number;
  maxHeld: number;
  maxPending: number;
  memory: number;
  bytesPerHeld: number;
  decided: number;
}

/**
 * The engine alone: records encoded beforehand, so the time is the engine's. `e` is a fresh
 * instance (cold: its memory grows and is faulted in during the run, its tables grow) or one reset
 * after a run (warm: the memory and table sizes a long-running shard keeps and reuses).
 */
function runEngineRecords(e: LinkerEngine, encoded: Uint8Array[], at: number[]): Run {
  let maxHeld = 0;
  let maxPending = 0;
  let bytesAtMax = 0;
  let breakdown: Record<string, number> = {};
  let decided = 0;
  const t0 = performance.now();
  let tickMs = 0;
  let ingestMs = 0;
  for (let i = 0; i < encoded.length; i++) {
    const a = performance.now();
    e.tick(at[i]);
    const b = performance.now();
    e.ingestRecords(encoded[i]);
    ingestMs += performance.now() - b;
    tickMs += b - a;
    decided += e.drainCount();
    if (i % 64 === 0) {
      const held = e.heldRecords;
      if (held > maxHeld) {
        maxHeld = held;
        bytesAtMax = e.memoryUsed;
        breakdown = e.memoryBreakdown();
      }
      maxPending = Math.max(maxPending, held - e.decidedHeld);
    }
  }
  // After the stream, time runs on as a shard's alarms would run it (every 100 ms, output read
  // each time) until every window and settle is over.
  const end = at[at.length - 1] + 2 * (CFG.windowMs + CFG.settleMs);
  for (let t = at[at.length - 1] + 100; t <= end; t += 100) {
    e.tick(t);
    decided += e.drainCount();
  }
  e.tick(Number.MAX_SAFE_INTEGER);
  decided += e.drainCount();
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, maxHeld, maxPending, memory: e.memoryReserved, bytesPerHeld: bytesAtMax / maxHeld, decided, breakdown, tickMs, ingestMs };
}

/** From eSpan objects: encoding included (what the CLI and a shard pay). */
function runEngineSpans(module: WebAssembly.Module, batches: ESpan[][], at: number[], shards: number): Run {
  const c = new LocalCluster(module, CFG, shards);
  let decided = 0;
  const t0 = performance.now();
  for (let i = 0; i < batches.length; i++) {
    c.tick(at[i]);
    c.ingest(batches[i], at[i]);
    for (const e of c.engines) decided += e.drainCount();
  }
  c.tick(Number.MAX_SAFE_INTEGER);
  for (const e of c.engines) decided += e.drainCount();
  const seconds = (performance.now() - t0) / 1000;
  const memory = c.engines.reduce((a, e) => a + e.memoryReserved, 0);
  return { seconds, maxHeld: 0, maxPending: 0, memory, bytesPerHeld: 0, decided };
}

function runModel(batches: ESpan[][], at: number[]): Run {
  const m = new ReferenceLinker(CFG);
  let decided = 0;
  const t0 = performance.now();
  for (let i = 0; i < batches.length; i++) {
    m.tick(at[i]);
    m.add(batches[i], at[i]);
    decided += m.drain().length;
  }
  m.tick(Number.MAX_SAFE_INTEGER);
  decided += m.drain().length;
  return { seconds: (performance.now() - t0) / 1000, maxHeld: 0, maxPending: 0, memory: 0, bytesPerHeld: 0, decided };
}

if (args["fan-out"] || args["one-key"]) {
  worstCase(Number(args["fan-out"] ?? args["one-key"]), args["fan-out"] !== undefined);
  process.exit(0);
}

/**
 * The worst cases of the engine's tables, timed (3 runs). Fan-out: one entry whose thread made `n`
 * calls to untraced servers, shipped before the entry (its response ends last): `n` exits wait in
 * one thread group, all under its key, then the entry adopts them all. One key: `n` exits that
 * all report one seq pair (an agent gone wrong): conflicts of one net group, all but the first.
 */
function worstCase(n: number, fanOut: boolean): void {
  const module = loadEngineModule(args.wasm ? { path: args.wasm } : {});
  const base = { start_ns: "1764000000000000000", duration_ns: 1000, host: "h", pid: 1, tid: 1, process_name: "p", service: "s", src_ip: "10.0.0.1", dst_ip: "10.0.0.2", src_port: 40000, dst_port: 80, l7_proto: "http" } as const;
  const tid = "00000000000000aa";
  const id = (i: number) => (0x9000000 + i).toString(16).padStart(16, "0");
  const spans: ESpan[] = fanOut
    ? Array.from({ length: n }, (_, i) => ({ ...base, span_id: id(i), kind: "exit", req_seq: i, resp_seq: 7, thread_trace_id: tid }))
    : Array.from({ length: n }, (_, i) => ({ ...base, span_id: id(i), kind: "exit", req_seq: 7, resp_seq: 9 }));
  if (fanOut) spans.push({ ...base, span_id: "0000000000001234", kind: "entry", req_seq: 0xfffffff, resp_seq: 8, thread_trace_id: tid });
  for (let r = 0; r < 3; r++) {
    const e = new LinkerEngine(module, CFG);
    const records = e.encode(spans, 0);
    const size = records.byteLength / spans.length;
    const t0 = performance.now();
    for (let i = 0; i < spans.length; i += BATCH) e.ingestRecords(records.subarray(i * size, Math.min(spans.length, i + BATCH) * size));
    e.tick(Number.MAX_SAFE_INTEGER);
    const out = e.drainResults();
    const ms = (performance.now() - t0).toFixed(1);
    if (fanOut) console.log(`fan-out ${n}: ${ms} ms to ingest and link (${out.filter((x) => x.parent_id === "0000000000001234").length} exits under their entry)`);
    else console.log(`one net key ${n}: ${ms} ms to ingest and decide (${out.length} spans out, ${e.stats().conflicts} conflicts)`);
  }
}

// Phase 1: the engine alone, on records encoded beforehand. The span objects are dropped
// first: a JS heap of a million objects makes V8 collect garbage during the engine's run (wasm
// memory growth counts as external memory), which would be measured as engine time.
const tGen = performance.now();
const module = loadEngineModule(args.wasm ? { path: args.wasm } : {});
const encoder = new LinkerEngine(module, CFG);
const encoded: Uint8Array[] = [];
const at: number[] = [];
let total = 0;
for (const b of trafficBatches()) {
  encoded.push(encoder.encode(b.spans, b.at));
  at.push(b.at);
  total += b.spans.length;
}
console.error(`generated and encoded ${total} spans in ${((performance.now() - tGen) / 1000).toFixed(1)} s; arrival ${RATE}/s in batches of ${BATCH}`);

const runs = Number(args.runs);
runEngineRecords(new LinkerEngine(module, CFG), encoded.slice(0, 200), at.slice(0, 200)); // warm-up: V8 tiers wasm up to TurboFan
// Each round: a cold run on a new instance, then a warm run on the same instance after a reset.
const coldRuns: Run[] = [];
const engineRuns: Run[] = [];
const describe = (run: Run) =>
  `${(total / run.seconds / 1e6).toFixed(2)}M spans/s (ingest ${(run.ingestMs! / 1000).toFixed(2)} s, timers ${(run.tickMs! / 1000).toFixed(2)} s, after the stream ${(run.seconds - (run.ingestMs! + run.tickMs!) / 1000).toFixed(2)} s)`;
const profiler = args["profile-warm"] ? new Session() : undefined;
if (profiler) {
  profiler.connect();
  await profiler.post("Profiler.enable");
  await profiler.post("Profiler.setSamplingInterval", { interval: 100 });
}
for (let r = 0; r < runs; r++) {
  const e = new LinkerEngine(module, CFG);
  coldRuns.push(runEngineRecords(e, encoded, at));
  e.reset({ keepTables: true });
  await profiler?.post("Profiler.start");
  engineRuns.push(runEngineRecords(e, encoded, at));
  if (profiler) {
    const { profile } = await profiler.post("Profiler.stop");
    writeFileSync(r === 0 ? args["profile-warm"]! : `${args["profile-warm"]}.${r}`, JSON.stringify(profile));
  }
  console.error(`engine run ${r + 1}/${runs}: cold ${describe(coldRuns[r])}; warm ${describe(engineRuns[r])}`);
  if (r === 0) console.error(`what the engine did (warm run): ${JSON.stringify(e.stats())}`);
}
let peakRss = process.resourceUsage().maxRSS * 1024;
if (args["records-only"]) process.exit(0);

// Phase 2: from eSpan objects (encoding included, what the CLI and a shard pay) and the model,
// alternating so that machine noise hits both alike.
const batches: ESpan[][] = [];
for (const b of trafficBatches()) batches.push(b.spans);
const spanRuns: Run[] = [];
const modelRuns: Run[] = [];
for (let r = 0; r < runs; r++) {
  spanRuns.push(runEngineSpans(module, batches, at, Number(args.shards)));
  if (r < Number(args["model-runs"])) modelRuns.push(runModel(batches, at));
  console.error(`run ${r + 1}/${runs}: engine from eSpans ${(total / spanRuns[r].seconds / 1e6).toFixed(2)}M/s${modelRuns[r] ? `, model ${(total / modelRuns[r].seconds / 1e3).toFixed(0)}k/s` : ""}`);
}
peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024);

const rate = (rs: Run[]) => total / median(rs.map((r) => r.seconds));
const e = engineRuns[0];
const result = {
  machine: machine(),
  spans: total,
  arrivalRate: RATE,
  batch: BATCH,
  config: CFG,
  engineSpansPerSec: rate(engineRuns),
  engineColdSpansPerSec: rate(coldRuns),
  /** Warm runs, medians (s): ingest calls, timer ticks during the stream, ticks after it (every expiry and decision left). */
  enginePhases: {
    ingest: median(engineRuns.map((r) => r.ingestMs! / 1000)),
    timers: median(engineRuns.map((r) => r.tickMs! / 1000)),
    after: median(engineRuns.map((r) => r.seconds - (r.ingestMs! + r.tickMs!) / 1000)),
  },
  engineWithEncodingSpansPerSec: rate(spanRuns),
  modelSpansPerSec: rate(modelRuns),
  ratioEngineToModel: rate(engineRuns) / rate(modelRuns),
  ratioWithEncodingToModel: rate(spanRuns) / rate(modelRuns),
  maxHeldSpans: e.maxHeld,
  maxPendingSpans: e.maxPending,
  bytesPerHeldSpan: e.bytesPerHeld,
  bytesPerHeldSpanByPart: Object.fromEntries(Object.entries(e.breakdown ?? {}).map(([k, v]) => [k, +(v / e.maxHeld).toFixed(1)])),
  wasmMemoryBytes: e.memory,
  peakRssBytes: peakRss,
  decided: e.decided,
  runs,
};
if (args.json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(`spans                      ${total} (arrival ${RATE}/s, window ${CFG.windowMs / 1000} s, settle ${CFG.settleMs / 1000} s)`);
  console.log(`engine (records, warm)     ${(result.engineSpansPerSec / 1e6).toFixed(2)} M spans/s (median of ${runs})`);
  console.log(`engine (records, cold)     ${(result.engineColdSpansPerSec / 1e6).toFixed(2)} M spans/s (a new instance: memory grown and faulted in during the run)`);
  console.log(`engine (from eSpans)       ${(result.engineWithEncodingSpansPerSec / 1e6).toFixed(2)} M spans/s`);
  console.log(`reference model            ${(result.modelSpansPerSec / 1e6).toFixed(3)} M spans/s`);
  console.log(`ratio engine / model       ${result.ratioEngineToModel.toFixed(1)}x (from eSpans: ${result.ratioWithEncodingToModel.toFixed(1)}x)`);
  console.log(`held spans (max)           ${e.maxHeld} (pending, undecided: ${e.maxPending})`);
  console.log(`bytes per held span        ${e.bytesPerHeld.toFixed(1)}: ${Object.entries(result.bytesPerHeldSpanByPart).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  console.log(`wasm memory                ${(e.memory / 2 ** 20).toFixed(1)} MiB; peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB`);
}
