// `npm run demo` (scripts/demo.mjs bundles and runs this): the ingest, the three-host testbed
// with its agents and services, one round of traffic, and a summary of the linked traces read
// back from the ingest's query API. The testbed stays up for browsing until Ctrl-C (or
// --keep elapses; --once: stop right after the summary); everything is removed on the way out.
//
//   npm run demo -- [--once] [--keep 10m] [--scale 1] [--trees 5]
import type { TraceSummary } from "../src/store/trace-summary.ts";
import { parseArgs } from "node:util";
import { fromLinked, groupBy, renderTree, requestOf, type TSpan } from "./analyze.ts";
import { runWorkload, startTestbed, waitLinked, type Testbed } from "./testbed.ts";
import { HOSTS, HOST_NAMES, NET, SERVICES, LOADGEN, CRON } from "./topology.ts";
import { defaultPlan } from "./workload.ts";

const { values: args } = parseArgs({
  options: {
    once: { type: "boolean", default: false },
    keep: { type: "string", default: "10m" },
    scale: { type: "string", default: "1" },
    trees: { type: "string", default: "5" },
  },
});
const keepMs = (() => {
  const m = /^(\d+)(ms|s|m)?$/.exec(args.keep!);
  if (!m) fail(`--keep: "${args.keep}" is not a duration (e.g. 30s, 10m)`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] ?? "s"]!;
})();
const scale = Number(args.scale);
if (!(scale > 0 && scale <= 10)) fail(`--scale: "${args.scale}" must be a number in (0, 10]`);
const treeCount = Number(args.trees);

const say = (line = "") => process.stdout.write(`${line}\n`);
function fail(message: string): never {
  process.stderr.write(`demo: ${message}\n`);
  process.exit(1);
}

if (process.getuid?.() !== 0) fail("must run as root (network namespaces, BPF)");

let tb: Testbed | undefined;
let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say("\ndemo: stopping: services, agents (flushing), ingest, namespaces ...");
    await tb?.stop();
    say("demo: cleaned up");
  }
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(130));
process.on("SIGTERM", () => void shutdown(143));


async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`GET ${url}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

async function main() {
  const started = Date.now();
  tb = await startTestbed({ log: (l) => say(`demo: ${l}`), ingest: { samplingRate: 1, window: "5s", settle: "3s" } });
  say(`demo: hosts ${HOST_NAMES.map((h) => `${h} ${HOSTS[h].addr}`).join(", ")}; ingest ${tb.ingestUrl}`);

  const plan = defaultPlan(scale);
  say(`demo: traffic: ${plan.map((p) => `${p.phase} ${p.ids.length}×${p.flow}${p.concurrency > 1 ? ` (${p.concurrency} at a time)` : ""}${p.traceparent ? " +traceparent" : ""}`).join(", ")}, and the cron job on h3`);
  const t0 = Date.now();
  const requests = await runWorkload(tb, plan);
  const ok = requests.filter((r) => r.status === 200).length;
  say(`demo: ${requests.length} client requests in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${ok} answered 200`);

  await tb.waitShipped();
  const produced = HOST_NAMES.reduce((n, h) => n + tb!.agentSpans(h).length, 0);
  const m = await waitLinked(tb.ingestUrl, produced, 60_000);

  // Read back through the query API.
  const { traces } = await getJson<{ traces: TraceSummary[] }>(`${tb.ingestUrl}/api/traces?limit=1000&since=${started}`);
  const spansPerTrace = groupBy(traces, (t) => t.span_count);
  const byService = new Map<string, number>();
  for (const t of traces) for (const s of t.services) byService.set(s, (byService.get(s) ?? 0) + 1);
  const hostOf = (svc: string) => SERVICES.find((s) => s.name === svc)?.host ?? (svc === LOADGEN.name ? LOADGEN.host : svc === CRON.name ? CRON.host : "?");

  say("");
  say("== linked traces ==");
  say(`spans: ${produced} captured by the agents (${HOST_NAMES.map((h) => `${h} ${tb!.agentSpans(h).length}`).join(", ")}), ` +
    `${m.espan_spans_received_total} received, ${m.espan_spans_exported_total} exported, ${m.espan_roots_total} roots`);
  say(`traces: ${traces.length} for ${requests.length} client requests`);
  say(`spans per trace: ${[...spansPerTrace].sort((a, b) => a[0] - b[0]).map(([n, ts]) => `${n} spans × ${ts.length}`).join(", ")}`);
  say(`services (traces they appear in): ${[...byService].sort().map(([s, n]) => `${s}@${hostOf(s)} ${n}`).join(", ")}`);
  const h1 = tb.agentStatus("h1");
  const ngExits = tb.agentSpans("h1").filter((s) => s.service === "edge" && s.kind === "exit");
  const ngLinked = ngExits.filter((s) => s.thread_trace_id).length;
  say(`nginx (edge@h1, one event loop): ${ngLinked}/${ngExits.length} upstream calls linked to their request in the agent, ` +
    `${h1.unlinked_ambiguous} left unlinked as ambiguous (several requests open at once, no app context)`);

  // A few trees: one per flow, the first of each.
  const wanted = ["chain", "fan", "otel", "ng", "cron"];
  let shown = 0;
  for (const flow of wanted) {
    if (shown >= treeCount) break;
    const t = [...traces]
      .sort((a, b) => a.start_ms - b.start_ms)
      .find((x) => {
        const r = requestOf(x.root_operation.split(" ")[1] ?? "");
        return flow === "cron" ? x.root_service === "cron" : r?.flow === flow && x.root_service !== "cron";
      });
    if (!t) continue;
    const { spans } = await getJson<{ spans: Parameters<typeof fromLinked>[0][] }>(`${tb.ingestUrl}/api/traces/${t.trace_id}`);
    const tspans: TSpan[] = spans.map(fromLinked);
    say("");
    say(`trace ${t.trace_id} (${flow}, ${t.span_count} spans, services ${t.services.join(", ")})`);
    for (const line of renderTree(tspans)) say(`  ${line}`);
    shown++;
  }
  say("");
  const nat = tb.agentSpans("h1").find((s) => s.service === "web" && s.kind === "exit" && s.dst_ip === NET.vip);
  if (nat) say(`NAT: web@h1 calls ${NET.vip}:${NET.vipPort}; api@h2 sees itself at 10.77.0.12:8080; linked by (req_seq, resp_seq) = (${nat.req_seq}, ${nat.resp_seq})`);
  say(`query API: ${tb.ingestUrl}/api/traces (from this machine's root namespace)`);

  if (args.once) await shutdown(0);
  say(`demo: the testbed stays up for ${args.keep}; Ctrl-C to stop and clean up`);
  setTimeout(() => void shutdown(0), keepMs);
}

main().catch(async (e) => {
  process.stderr.write(`demo: ${(e as Error).stack ?? e}\n`);
  await shutdown(1);
});
