/**
 * `npm run bench`: every benchmark of the project in one go (linker core, ingest, agent, testbed
 * linking accuracy), one after the other so they do not share the cores, then BENCHMARKS.md
 * rewritten with the figures, the commands and the machine. Each benchmark is its own process
 * (`node dist/bench-*.js --json`); one that fails is reported as failed, the rest still run.
 *
 *   node dist/bench-all.js [--quick] [--only TEXT]
 *
 * --quick: smaller runs, for a check that it all works. --only TEXT: runs only the benchmarks
 * whose heading contains TEXT and replaces their sections in the existing BENCHMARKS.md.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { machine } from "./report.ts";

const { values: args } = parseArgs({ options: { quick: { type: "boolean", default: false }, only: { type: "string" } } });
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

interface Bench {
  name: string;
  script: string;
  args: string[];
  quick: string[];
  render: (r: any) => string;
}

const k = (n: number) => Math.round(n).toLocaleString("en-US");
const verdict = (ok: boolean) => (ok ? "**met**" : "**not met**");

function renderIngest(r: any): string {
  const max = (f: (x: any) => number) => Math.max(...r.results.map(f));
  return `| format | accepted spans/s | decided / exported spans/s during the load (export backlog at most) | ack p50 / p99 | completion p50 / p99 (client-root traces) | workerd CPU per span | workerd RSS |
|---|---|---|---|---|---|---|
${r.results.map((x: any) => `| ${x.format} | ${k(x.acceptedSpansPerSec)} | ${k(x.decidedDuringLoadPerSec)} / ${k(x.exportedDuringLoadPerSec)} (${k(x.exportBacklogMax)}) | ${x.ackP50Ms} / ${x.ackP99Ms} ms | ${(x.completionP50Ms / 1000).toFixed(1)} / ${(x.completionP99Ms / 1000).toFixed(1)} s (${k(x.clientRootTraces)}) | ${x.workerdCpuUsPerSpan} µs | ${x.workerdRssMiB} MiB |`).join("\n")}

${r.shards} shard(s), sampling rate ${r.samplingRate}, ${r.connections} keep-alive connections, batches of ${r.batch}, settle ${r.settle}, window ${r.window}.
Targets: ≥ 50 k spans/s ${verdict(max((x) => x.acceptedSpansPerSec) >= 50_000)}; p99 ack < 100 ms
${verdict(max((x) => x.ackP99Ms) < 100)}; completion p50 ≤ 3 s ${verdict(max((x) => x.completionP50Ms) <= 3000)}.
Spans are decided 2 s (settle) after a client-side root, or when their window ends, so over a
load as long as the window "exported" is to be read against "decided" (every span, sampled in or
out) times the sampling rate, not against "accepted".
Completion is measured on traces whose root is known when it arrives (a client-side root): a
trace rooted at a server entry waits its window (20 s) in case its caller's exit is still on
the way, as the seed does. DataKit's anchor: ≥ 4 cores for 1e6 spans/min, about 4.2 k spans/s
per core; espan on one workerd thread accepted ${k(max((x) => x.acceptedSpansPerSec))} spans/s here.
\`ESPAN_SHARDS\` defaults to 1: one workerd process runs every Durable Object on one thread, so
more shards there add cross-shard messages and no CPU (4 shards did half the work of 1 when
measured); on Cloudflare they spread over machines.`;
}

/** Where the hello-world server's loss comes from (measured apart from bench:agent's runs). */
const HELLO_WORLD_LOSS = `
Where the hello-world loss comes from. On this 2-CPU VM the server's one JavaScript thread is the
bottleneck: without the agent it keeps a core busy (~105% with Node's helper threads) while the
machine is ~30% idle (/proc/stat over wrk runs, 2026-12-05), so whatever takes that thread's time
or shares its core costs throughput: the BPF programs run inside its send and recv calls, and
the agent's CPU (~20% of a core) lands on its core part of the time even with idle time left
(under SCHED_IDLE the agent took the idle time, the server still lost ~23%, and the ring
overflowed: priority is no way out). The capture alone, in steps against no capture
(\`bash scripts/capture-floor.sh 10 4\`, 2026-12-05, medians of 10 pairs of 4 s runs): the
programs attached and returning at once 2.3%; with the pid filter, TCP checks, seq and the
socket's state 3.0%; the record built and its payload copied, not sent, 6.1%; the capture as
shipped (the record through the ring buffer, drained and its HTTP heads scanned by the addon)
11.3% (other runs 9.4–10.8%). The agent's work on top costs about as much again at ~3 µs a span.
So ≤ 10% needs both a cheaper capture and an agent near ~0.5 µs a span, and no single part
dominates either: each step of the capture adds 1–5 points, and the agent's own profile (perf,
hello world) is flat: gzip 12%, the JavaScript that turns records into eSpans ~40% and V8's
runtime under it ~23% (map lookups, BigInt conversions, write barriers), the addon's HTTP scan
~8%, the kernel ~8%.`;

/** The server-only section: the same server, its client not traced. */
const SERVER_ONLY = `
The first section's server and load, with wrk not traced: one span per request, what an agent
sees on a server whose clients run on other hosts (the programs still run in wrk's calls, 4 runs
a request, and return at the pid filter there). The agent does half the work per request, but
the capture alone costs nearly as much as with both sides traced: most of it is in the server's
own send and recv calls (BPF time, the record, the ring), which the server pays in full here.`;

/** The fd_lookup section: the first section's load with the strategy of kernels before 6.3. */
function fdLookup(m: any): string {
  return `
The first section's server and load with the seq strategy of kernels without the tp_btf socket
tracepoints (before Linux 6.3): programs on the entry and exit of every read, write, send and
recv syscall of every process on the host; at entry the fd is followed to its socket and the seq
and the user buffer are stashed in a hash map, at exit the record is made. Every such syscall on
the host pays the entry and exit programs, traced or not (the pid filter rejects the others):
with the agent attached and no load they ran ${k(m.bpfBackgroundNsPerSec / 1000)} µs a second on this otherwise quiet
machine. The tp_btf strategy (the first section) runs only inside socket sends and receives.`;
}

/** Where the agent's time goes, for the sections of the standard setup (both ends traced, tp_btf). */
const AGENT_COSTS = `
What is left per span is mostly the JavaScript that turns records into exchanges and
eSpans (decoding, HTTP pairing, linking, the eSpan object: ~2 µs), gzip (~0.4 µs) and the
kernel; the JSON of the agent's own spans is written by the addon (agent/native/src/span_json.c:
~0.3 µs a span with JS's staging, ~1 µs when JS wrote it). At ~6k spans/s (the heavier server)
each span carries more of the agent's fixed costs (records reach JS in lumps of up to 1 MiB or
250 ms, ~4 times a second there; timers; a POST a second), V8 keeps a smaller young generation
(more scavenges per span), the agent's short bursts are preempted by wrk's wake-ups on the same
cores, and the BPF programs run with caches the server's JSON work has cooled: the same code
costs more per span and per request there. Paths a fresh agent meets late (sockets born while
it was detached, a thread name not seen) make V8 drop and recompile its hottest functions, 5–33
ms of compiling each (--trace-deopt); the warm-up's detach cycle takes them before the measured
runs, as a long-running agent (which never detaches) takes them once.`;

/** What closes an agent section: what its variant measures, or where the time goes. */
function agentNotes(r: any, m: any): string {
  if (r.serverOnly) return SERVER_ONLY;
  if (r.rounds[0]?.with.strategy === "fd_lookup") return fdLookup(m);
  return (r.serverWorkUs > 0 ? "" : HELLO_WORLD_LOSS) + AGENT_COSTS;
}

function renderAgent(r: any): string {
  const m = r.median;
  const server = r.serverWorkUs > 0 ? `a Node server doing ~${r.serverWorkUs} µs of JSON work per request` : "a hello-world Node server";
  return `| measure | figure |
|---|---|
| requests/s without → with the agent (wrk, ${r.connections} connections, ${server}) | ${k(m.rpsWithout)} → ${k(m.rpsWith)} (loss ${m.throughputLossPct.toFixed(1)}%) |
| throughput loss over ${m.lossSpread.pairs} pairs of ${r.seconds} s runs: median, quartiles, range | ${m.lossSpread.median.toFixed(1)}%, ${m.lossSpread.p25.toFixed(1)}–${m.lossSpread.p75.toFixed(1)}%, ${m.lossSpread.min.toFixed(1)}–${m.lossSpread.max.toFixed(1)}% |${m.captureOnly ? `
| throughput loss of the BPF capture alone (ring drained, no JS), ${m.captureOnly.lossSpread.pairs} pairs | ${m.captureOnly.throughputLossPct.toFixed(1)}% (quartiles ${m.captureOnly.lossSpread.p25.toFixed(1)}–${m.captureOnly.lossSpread.p75.toFixed(1)}%); BPF ${(m.captureOnly.bpfNsPerRequest / 1000).toFixed(2)} µs per request |` : ""}
| BPF run time per request (${r.serverOnly ? "the server traced" : "both sides traced"}; ${m.bpfRunsPerRequest.toFixed(1)} program runs) | ${(m.bpfNsPerRequest / 1000).toFixed(2)} µs |
| agent CPU per span, steady state (after ${r.agentWarmupS} s of the same load on the agent) | ${m.agentCpuUsPerSpan.toFixed(1)} µs, ${m.agentSysUsPerSpan.toFixed(1)} of it in the kernel (${m.agentCpuPct.toFixed(0)}% of a core under load) |
| agent CPU per span, a fresh agent's first ${r.agentWarmupS} s | ${m.agentCpuUsPerSpanFresh === undefined ? "not measured" : `${m.agentCpuUsPerSpanFresh.toFixed(1)} µs`} |
| spans per request (${r.serverOnly ? 1 : 2} expected) / ring-buffer drops / spans not shipped at the load's end | ${m.spansPerRequest.toFixed(2)} / ${k(m.ringDrops)} / ${k(m.queuedAtLoadEnd)} |
| agent RSS idle → under load (peak) | ${k(m.agentIdleRssMiB)} → ${k(m.agentRssMiB)} MiB (${k(m.agentPeakRssMiB)}) |

Targets: ≤ 6 µs BPF per request ${r.serverOnly ? "(a target for both sides traced: the first section)" : verdict(m.bpfNsPerRequest <= 6000)}; ≤ 5 µs agent CPU per span
${verdict(m.agentCpuUsPerSpan <= 5)}; ≤ 10% throughput loss ${verdict(m.throughputLossPct <= 10)}. ${r.rounds.length} rounds, each a fresh agent
warmed up by ${r.agentWarmupS} s of the load (then 2 s more, and one detach → load → attach → load cycle), then
${r.pairs} pairs of runs with its programs detached and attached (alternating order); the loss is the median of every pair's ratio, the other figures medians of
the rounds. The agent is a long-running process: V8 optimises its hot code by use, so a fresh
agent's first seconds cost more per span, for longer at lower span rates.${agentNotes(r, m)}`;
}

/** The ingest benchmark at one sampling rate. */
function ingestBench(rate: string, title: string): Bench {
  const common = ["--shards", "1", "--sampling-rate", rate];
  return { name: `Ingest on workerd serve: ${title}`, script: "bench-ingest.js", args: ["--seconds", "30", ...common], quick: ["--seconds", "5", ...common], render: renderIngest };
}

/** The agent benchmark against one kind of server. */
function agentBench(server: string[], title: string): Bench {
  return { name: `Agent: ${title}`, script: "bench-agent.js", args: ["--seconds", "5", "--rounds", "2", "--pairs", "4", "--capture-only", ...server], quick: ["--seconds", "3", "--rounds", "1", "--pairs", "2", ...server], render: renderAgent };
}

const BENCHES: Bench[] = [
  {
    name: "Linker core",
    script: "bench-core.js",
    args: ["--spans", "1000000", "--runs", "3", "--model-runs", "1"],
    quick: ["--spans", "100000", "--runs", "1"],
    render: (r) => `| measure | figure |
|---|---|
| WASM engine, records pre-encoded, warm instance | ${(r.engineSpansPerSec / 1e6).toFixed(2)} M spans/s (ingest ${r.enginePhases.ingest.toFixed(2)} s, timers ${r.enginePhases.timers.toFixed(2)} s, after the stream ${r.enginePhases.after.toFixed(2)} s) |
| the same on a new instance (memory grown and faulted in during the run) | ${(r.engineColdSpansPerSec / 1e6).toFixed(2)} M spans/s |
| WASM engine from eSpan objects (encoding included) | ${(r.engineWithEncodingSpansPerSec / 1e6).toFixed(2)} M spans/s |
| TS reference model | ${(r.modelSpansPerSec / 1e6).toFixed(3)} M spans/s |
| engine / model | ${r.ratioEngineToModel.toFixed(1)}× (from eSpans ${r.ratioWithEncodingToModel.toFixed(1)}×) |
| held spans at the peak (undecided) | ${k(r.maxHeldSpans)} (${k(r.maxPendingSpans)}) |
| WASM bytes per held span | ${r.bytesPerHeldSpan.toFixed(1)}: ${Object.entries(r.bytesPerHeldSpanByPart).map(([p, v]) => `${p} ${v}`).join(", ")} |
| peak RSS (the benchmark process, generated spans included) | ${k(r.peakRssBytes / 2 ** 20)} MiB |

Targets: ≥ 5 M spans/s ${verdict(r.engineSpansPerSec >= 5e6)}; ≥ 3× the model ${verdict(r.ratioEngineToModel >= 3)};
≤ 100 B per pending span ${verdict(r.bytesPerHeldSpan <= 100)}. ${r.spans.toLocaleString("en-US")} generated spans arriving
at ${k(r.arrivalRate)}/s, window ${r.config.windowMs / 1000} s, settle ${r.config.settleMs / 1000} s: every span is held
at the end of the stream; then time runs on in 100 ms ticks, as a shard's alarms run it, until every
window and settle is over.

Warm is the figure of a running shard, whose memory and tables are grown once and reused: each
round runs the stream on a new instance (cold), resets it keeping its tables' size and runs it
again (warm). Cold runs pay for the kernel faulting in ~100 MB of fresh WebAssembly memory, which
on this VM alone costs about as much as the engine's work, and for growing the tables (a rehash
reads each entry's record).
Where the time goes (\`--profile-warm FILE\` on a build with names profiles the warm runs alone):
the frees after each window (table removals), the decision walks, table probes and inserts, the
timers, i.e. random accesses into ~100 MB at a million held spans; the table buckets a batch will
probe, and those the frees will clear, are loaded ahead in tight loops (group prefetching) so the
misses overlap. What is left is instructions, not memory: the same stream with a 100 ms window
(\`--window 100 --settle 50\`: ~7k held spans, half a MiB, in L2) does the same work (the same roots,
orphans and links) at 2.5 against 2.2 M spans/s at 20 s in one session, so cache misses cost ~12%;
transparent huge pages changed nothing. The ~1,000 cycles a span are spread flat (counts from a
build instrumented with binaryen's \`--log-execution\`, per span): 2 table probes, inserts and
removals each, 1 expiry, 0.58 horizons (links still waiting for a root that decides after their
window: an orphan entry's tree), 0.19 decisions and their walks, 1 free; no step dominates.
The floor (\`bash scripts/engine-floor.sh\`, 2026-12-05): a build that keeps the bookkeeping and
drops the linking (each span's record written, its net group scanned and filed, its thread group
probed and filed, an expiry timer; at expiry the record freed and taken out of both tables; no
links, app contexts, roots, decisions or output) runs at 3.0–3.4 M spans/s warm on this VM, 3.8
with everything in L2 (\`--window 100 --settle 50\`). So 5 M spans/s, 200 ns or ~450 cycles a span
at this VM's 2.25 GHz, is out of reach for the engine here: the bookkeeping alone takes ~290 ns,
and the linking on top of it (links, decisions, output) another ~170.
Fan-out: one thread making N calls before its entry arrives (\`--fan-out N\`, 2026-12-05): the
calls wait on one list whose head alone is in the thread table, so time grows linearly with N:
N = 100,000 is ingested and linked in 0.1–0.2 s (4.5 s when every call was a table entry under
the group's key, each insert and probe walking the key's chain).
Bad input: N = 20,000 spans that all report one net key (\`--one-key N\`) take 15–45 ms to ingest
and decide (conflicts are filed by key and span id; 2.3 s before).
Memory: 64-byte records and 48-byte app contexts in pool pages of 64/192 KiB carved from the
regions growing tables leave behind; hash tables of 64-byte buckets (12 one-byte tags compared
with SIMD, an overflow count, 12 record indices; after Facebook's F14), grown by half at 80% load;
4-byte expiry timers with one deadline per arrival batch.`,
  },
  ingestBench("1", "sampling rate 1 (every span exported; the stress case)"),
  ingestBench("0.1", "sampling rate 0.1 (the default)"),
  agentBench([], "hello-world Node server (the worst case for overhead)"),
  agentBench(["--server-work", "300"], "a Node server doing ~300 µs of JSON work per request"),
  agentBench(["--server-only"], "hello-world Node server, only the server traced (its clients elsewhere)"),
  agentBench(["--strategy", "fd_lookup"], "hello-world Node server, seq strategy fd_lookup (kernels before 6.3)"),
  {
    name: "Testbed linking accuracy",
    script: "bench-testbed.js",
    args: [],
    quick: [],
    render: (r) => `| measure | figure |
|---|---|
| client requests / spans | ${r.requests} / ${r.spans} |
| call-graph edges found / expected | ${r.edgesFound} / ${r.edgesExpected} (${(r.accuracy * 100).toFixed(1)}%) |
| false edges | ${r.falseEdges} |
| requests in exactly one trace | ${r.requestsWithOneTrace} / ${r.requests} |
| nginx upstream calls left unlinked (event loop, no app context) | ${r.nginxUnlinkedAmbiguous} |

The edges not found are nginx's: under concurrency its event loop serves several requests at
once, and without app context the agent does not guess (testbed/README.md).`,
  },
];

const PATH = join(ROOT, "BENCHMARKS.md");
const today = () => new Date().toISOString().slice(0, 10);
/** The sections of the existing BENCHMARKS.md by heading (for --only). */
const kept = new Map<string, string>();
if (args.only !== undefined && existsSync(PATH)) {
  for (const part of readFileSync(PATH, "utf8").split(/^(?=## )/m).slice(1)) kept.set(part.slice(3, part.indexOf("\n")), part.trimEnd() + "\n");
}

const sections: string[] = [];
for (const b of BENCHES) {
  if (args.only !== undefined && !b.name.includes(args.only)) {
    const old = kept.get(b.name);
    if (old) sections.push(old);
    continue;
  }
  const extra = args.quick ? b.quick : b.args;
  const cmd = `node dist/${b.script} ${extra.join(" ")} --json`.replace(/\s+/g, " ");
  const load = loadavg()[0].toFixed(1);
  console.error(`bench: ${b.name}: ${cmd}`);
  const run = spawnSync(process.execPath, [join(ROOT, "dist", b.script), ...extra, "--json"], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], timeout: 30 * 60_000 });
  let body: string;
  try {
    if (run.status !== 0) throw new Error(`exit ${run.status}`);
    body = b.render(JSON.parse(run.stdout));
  } catch (e) {
    body = `Failed (${(e as Error).message}); see the command's output.`;
  }
  sections.push(`## ${b.name}\n\n\`${cmd}\` (run ${today()}, load average ${load} at the start)\n\n${body}\n`);
}

writeFileSync(PATH, `# espan benchmarks

Written by \`npm run bench\` (bench/all.ts): every benchmark, one after the other, each figure
with the command that made it and the day it ran (\`--only\` reruns some sections and keeps the
others as they were). Tests never assert speed; these machines are shared and noisy, so figures
are medians of the runs in one invocation.

Machine: ${machine()}.

${sections.join("\n")}`);
console.error("bench: BENCHMARKS.md written");
