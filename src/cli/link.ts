/**
 * `espan link`: links eSpans offline. The whole input is available, so every span waits for all
 * the others (the window never cuts a trace); the result is what the ingest would export.
 */
import { createReadStream, createWriteStream } from "node:fs";
import type { Writable } from "node:stream";
import type { ESpan, LinkedSpan } from "../../contract/espan.ts";
import { DEFAULT_LINK_CONFIG, type LinkConfig } from "../linker/config.ts";
import { LocalCluster } from "../linker/local-cluster.ts";
import { loadEngineModule } from "../linker/load-node.ts";
import { encodeOtlp } from "../export/otlp-encode.ts";
import { InputError, readSpans, type Rejected } from "./read-spans.ts";

export interface LinkOptions {
  samplingRate: number;
  useAppTraceId: boolean;
  format: "ndjson" | "otlp-json";
  in?: string;
  out?: string;
  skipInvalid: boolean;
  shards: number;
}

export interface LinkSummary {
  read: number;
  invalid: number;
  exported: number;
  sampledOut: number;
  traces: number;
}

/** Runs the command; returns the process exit code. Messages go to `err`. */
export async function runLink(opts: LinkOptions, err: Writable = process.stderr): Promise<number> {
  const progress = process.stderr.isTTY ? new Progress(err) : undefined;
  const input = opts.in ? createReadStream(opts.in) : process.stdin;
  let read;
  try {
    read = await readSpans(input, (n) => progress?.show(`read ${n} spans`));
  } catch (e) {
    err.write(`espan link: ${e instanceof InputError ? e.message : `cannot read input: ${(e as Error).message}`}\n`);
    return 1;
  }
  if (read.rejected.length > 0) {
    reportRejected(read.rejected, err, opts.skipInvalid ? 20 : 50);
    if (!opts.skipInvalid) {
      err.write(`espan link: ${read.rejected.length} invalid span(s); nothing written (--skip-invalid links the rest)\n`);
      return 1;
    }
    err.write(`espan link: skipped ${read.rejected.length} invalid span(s)\n`);
  }

  const config: LinkConfig = { ...DEFAULT_LINK_CONFIG, samplingRate: opts.samplingRate, useAppTraceId: opts.useAppTraceId };
  const linked = linkOffline(read.spans, config, opts.shards, progress);
  const out = opts.out ? createWriteStream(opts.out) : process.stdout;
  try {
    if (opts.format === "otlp-json") await write(out, encodeOtlp(linked, "http/json"));
    else for (const s of linked) await write(out, JSON.stringify(s) + "\n");
  } catch (e) {
    err.write(`espan link: cannot write output: ${(e as Error).message}\n`);
    return 1;
  } finally {
    if (opts.out) await new Promise<void>((r) => out.end(() => r()));
  }
  progress?.done();
  const traces = new Set(linked.map((s) => s.trace_id)).size;
  if (process.stderr.isTTY) {
    err.write(`espan link: ${read.spans.length} spans read, ${linked.length} exported in ${traces} traces, ${read.spans.length - linked.length} sampled out or duplicate\n`);
  }
  return 0;
}

/** Links everything, then returns the exported spans in input order (duplicates once). */
export function linkOffline(spans: readonly ESpan[], config: LinkConfig, shards = 1, progress?: Progress): LinkedSpan[] {
  const cluster = new LocalCluster(loadEngineModule(), config, shards);
  const BATCH = 10_000;
  for (let i = 0; i < spans.length; i += BATCH) {
    const part = spans.slice(i, i + BATCH);
    cluster.ingest(part, 0, Array.from(part, (_, j) => i + j));
    progress?.show(`linking: ${Math.min(i + BATCH, spans.length)}/${spans.length}`);
  }
  cluster.flush();
  const decided = cluster.engines.flatMap((e) => e.drain());
  decided.sort((a, b) => a.ref - b.ref);
  const out: LinkedSpan[] = [];
  for (const r of decided) {
    if (!r.sampled) continue;
    out.push({ trace_id: r.traceId, ...spans[r.ref], span_id: r.spanId, parent_id: r.parentId });
  }
  return out;
}

function reportRejected(rejected: Rejected[], err: Writable, limit: number): void {
  for (const r of rejected.slice(0, limit)) {
    for (const e of r.errors) err.write(`espan link: ${r.where}: ${e.field} ${e.reason}\n`);
  }
  if (rejected.length > limit) err.write(`espan link: ... and ${rejected.length - limit} more invalid span(s)\n`);
}

function write(out: Writable, chunk: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    if (out.write(chunk)) resolve();
    else {
      out.once("drain", resolve);
      out.once("error", reject);
    }
  });
}

/** One line rewritten in place on a terminal: read, linked, rate. */
export class Progress {
  private readonly t0 = performance.now();
  private last = 0;
  constructor(private readonly err: Writable) {}
  show(what: string): void {
    const now = performance.now();
    if (now - this.last < 200) return;
    this.last = now;
    this.err.write(`\r\x1b[K${what} (${((now - this.t0) / 1000).toFixed(1)} s)`);
  }
  done(): void {
    this.err.write("\r\x1b[K");
  }
}
