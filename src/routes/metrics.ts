/** GET /metrics: Prometheus text, the shards' counters summed, pending per shard. */
import { Hono } from "hono";
import { shardName } from "../env.ts";
import type { ShardStats } from "../linker/shard.ts";
import type { AppEnv } from "./app-env.ts";
import { workerCounters } from "./counters.ts";

export const metrics = new Hono<AppEnv>();

const TOTALS: [keyof ShardStats, string, string][] = [
  ["received", "espan_spans_received_total", "Spans accepted by the linker shards."],
  ["linked", "espan_spans_linked_total", "Spans whose trace was decided (exported or sampled out)."],
  ["roots", "espan_roots_total", "Spans that became the root of a trace."],
  ["orphans", "espan_orphans_total", "Roots because their parent did not arrive within the window."],
  ["late", "espan_late_total", "Spans linked after their parent's trace was decided."],
  ["sampledOut", "espan_spans_sampled_out_total", "Spans of traces sampled out."],
  ["exported", "espan_spans_exported_total", "Spans handed to the trace store and the OTLP collector."],
  ["exportFailures", "espan_export_failures_total", "Failed export attempts (retried)."],
  ["exportRejected", "espan_export_rejected_spans_total", "Spans the collector refused for good."],
  ["duplicates", "espan_spans_duplicate_total", "Spans received twice, linked once."],
  ["conflicts", "espan_group_conflicts_total", "Spans not linked: a second exit or entry in a group."],
  ["forced", "espan_forced_roots_total", "Spans cut into a trace of their own at the horizon (bad input)."],
  ["messagesSent", "espan_cross_shard_messages_total", "Messages sent between linker shards."],
  ["peerSendFailures", "espan_cross_shard_send_failures_total", "Failed sends between shards (retried)."],
];
const GAUGES: [keyof ShardStats, string, string][] = [
  ["pending", "espan_pending_spans", "Spans held undecided, per shard."],
  ["held", "espan_held_spans", "Spans held (undecided, or within their window), per shard."],
  ["exportBacklog", "espan_export_backlog_spans", "Spans waiting for the collector, per shard."],
  ["engineBytes", "espan_engine_memory_bytes", "WASM engine memory, per shard."],
  ["bodyBytes", "espan_held_body_bytes", "Bytes of the held spans (packed: their JSON with one byte per known key), per shard."],
  ["logBytes", "espan_shard_storage_bytes", "SQLite storage of the shard."],
];

metrics.get("/metrics", async (c) => {
  const cfg = c.get("config");
  const ns = c.env.LINKER_SHARD;
  const all = await Promise.all(Array.from({ length: cfg.shards }, (_, i) => ns.get(ns.idFromName(shardName(i))).stats()));
  const shards = all.filter((s): s is ShardStats => s !== null);
  const lines: string[] = [];
  const metric = (name: string, help: string, type: string) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  metric("espan_requests_total", "Ingest requests.", "counter");
  lines.push(`espan_requests_total ${workerCounters.requests}`);
  metric("espan_spans_rejected_total", "Spans (or bodies) rejected as invalid.", "counter");
  lines.push(`espan_spans_rejected_total ${workerCounters.rejected}`);
  metric("espan_requests_throttled_total", "Ingest requests answered 429.", "counter");
  lines.push(`espan_requests_throttled_total ${workerCounters.throttled}`);
  for (const [key, name, help] of TOTALS) {
    metric(name, help, "counter");
    lines.push(`${name} ${shards.reduce((a, s) => a + (s[key] as number), 0)}`);
  }
  // Shards only: with several, the worker checks bodies (its declines go to the full parser uncounted here).
  metric("espan_full_parses_total", "Batches the fast path left to the full parser (JSON.parse and the validator), by reason.", "counter");
  const reasons = new Map<string, number>();
  for (const s of shards) for (const [reason, n] of Object.entries(s.fullParses)) reasons.set(reason, (reasons.get(reason) ?? 0) + (n ?? 0));
  for (const [reason, n] of reasons) lines.push(`espan_full_parses_total{reason="${reason}"} ${n}`);
  for (const [key, name, help] of GAUGES) {
    metric(name, help, "gauge");
    for (const s of shards) lines.push(`${name}{shard="${s.shard}"} ${s[key]}`);
  }
  return c.text(lines.join("\n") + "\n", 200, { "content-type": "text/plain; version=0.0.4" });
});
