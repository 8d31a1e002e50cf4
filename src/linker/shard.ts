/**
 * LinkerShard: one Durable Object, one shard of the linker (DESIGN.md "Scale-out"). It holds the
 * WASM engine for the groups hashed to it, logs every accepted batch and every message from
 * other shards before acting on it, exchanges messages with its peers, runs the window and
 * settle timers on its alarm, and hands decided spans to the trace store and the OTLP exporter.
 * After a restart it replays its log: nothing accepted is lost, nothing exported twice.
 */
import { DurableObject } from "cloudflare:workers";
import engineModule from "../../build/engine.wasm";
import type { ESpan, LinkedSpan } from "../../contract/espan.ts";
import { loadConfig, type WorkerConfig } from "../config.ts";
import type { LinkStats } from "./config.ts";
import { shardName, storeName, type Env } from "../env.ts";
import { OtlpExporter } from "../export/otlp-http.ts";
import { LinkerEngine, type RawResult } from "./engine.ts";
import { shardOfTrace } from "./ids.ts";
import { PeerOutbox } from "./peer-outbox.ts";
import { LOG_BATCH, MAX_ROW_BYTES, ShardLog } from "./shard-log.ts";
import { SpanBodies, type HeldBatch } from "./span-bodies.ts";

export type IngestAnswer = { accepted: number } | { busy: string; retryAfterS: number };

/** A shard's counters: the engine's (LinkStats) and the shard's own. */
export interface ShardStats extends LinkStats {
  shard: number;
  linked: number;
  exported: number;
  exportFailures: number;
  exportRejected: number;
  exportBacklog: number;
  pending: number;
  held: number;
  messagesSent: number;
  messagesReceived: number;
  peerSendFailures: number;
  logBytes: number;
  engineBytes: number;
}

interface ExportItem {
  batch: HeldBatch;
  index: number;
  result: RawResult;
}

/** Spans per export request: small enough not to hold the (single) thread for long. */
const EXPORT_CHUNK = 500;
const MAINTENANCE_MS = 30_000;

export class LinkerShard extends DurableObject<Env> {
  private readonly cfg: WorkerConfig;
  private readonly log: ShardLog;
  private readonly bodies = new SpanBodies();
  private readonly outbox: PeerOutbox;
  private readonly exporter?: OtlpExporter;
  private engine?: LinkerEngine;
  private shard = -1;
  private exportQueue: ExportItem[] = [];
  private exporting = false;
  private exportRetryAt = 0;
  private nextMaintenance = 0;
  /** When the alarm is set for (Infinity: none known). */
  private alarmAt = Infinity;
  private readonly counters = { exported: 0, exportFailures: 0, exportRejected: 0, linked: 0 };

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.cfg = loadConfig(env);
    this.log = new ShardLog(ctx.storage.sql);
    this.outbox = new PeerOutbox((dest, messages) => this.peer(dest).accept(dest, this.shard, messages));
    if (this.cfg.otlpEndpoint) this.exporter = new OtlpExporter(this.cfg.otlpEndpoint, this.cfg.otlpProtocol, this.cfg.otlpHeaders);
    const known = this.log.getMeta("shard");
    if (known !== undefined) ctx.blockConcurrencyWhile(async () => this.start(Number(known)));
  }

  // ---- RPC ----

  /**
   * Spans whose home is this shard (validated eSpans, as one JSON array), arrived at
   * `arrivalMs`. Answers once they are durable.
   */
  async ingest(shard: number, json: string, arrivalMs: number): Promise<IngestAnswer> {
    this.ensureStarted(shard);
    const engine = this.engine!;
    const pending = engine.heldRecords - engine.decidedHeld;
    if (pending > this.cfg.maxPending) return { busy: `shard ${shard} holds ${pending} undecided spans (ESPAN_MAX_PENDING ${this.cfg.maxPending})`, retryAfterS: 2 };
    if (this.exportQueue.length > this.cfg.maxExportBacklog) {
      return { busy: `shard ${shard} has ${this.exportQueue.length} spans waiting for the collector (ESPAN_MAX_EXPORT_BACKLOG)`, retryAfterS: 5 };
    }
    const spans = JSON.parse(json) as ESpan[];
    for (const part of json.length <= MAX_ROW_BYTES ? [{ spans, json }] : rows(spans)) {
      const seq = this.log.appendBatch(arrivalMs, part.json, part.spans.length);
      this.apply({ seq, at: arrivalMs, spans: part.spans, done: new Uint8Array(Math.ceil(part.spans.length / 8)) });
    }
    this.afterWork();
    return { accepted: spans.length };
  }

  /** Messages for shard `shard` from shard `from` (engine records); logged, then applied. */
  async accept(shard: number, from: number, messages: Uint8Array): Promise<void> {
    this.ensureStarted(shard);
    const at = Date.now();
    this.log.appendMessages(at, messages, messages.byteLength / this.engine!.messageSize);
    this.applyMessages(at, messages);
    this.afterWork();
  }

  async stats(): Promise<ShardStats | null> {
    if (!this.engine) return null;
    const { stubs: _, ...s } = this.engine.stats();
    return {
      ...s,
      shard: this.shard,
      linked: s.sampledIn + s.sampledOut,
      exported: this.counters.exported,
      exportFailures: this.counters.exportFailures,
      exportRejected: this.counters.exportRejected,
      exportBacklog: this.exportQueue.length,
      pending: this.engine.heldRecords - this.engine.decidedHeld,
      held: this.engine.heldRecords,
      peerSendFailures: this.outbox.failures,
      logBytes: this.log.bytes,
      engineBytes: this.engine.memoryUsed,
    };
  }

  /** Tests: run the timers and the export now, as the alarm would, and wait for the peers. */
  async flush(): Promise<void> {
    if (!this.engine) return;
    await this.alarm();
    await this.outbox.idle();
    while (this.exporting) await new Promise((r) => setTimeout(r, 1));
  }

  async alarm(): Promise<void> {
    this.alarmAt = Infinity;
    if (!this.engine) return;
    this.engine.tick(Date.now());
    this.handleOutput();
    this.outbox.retryAll();
    if (Date.now() >= this.nextMaintenance) this.maintain();
    await this.exportNow();
    this.schedule();
  }

  // ---- state ----

  private ensureStarted(shard: number): void {
    if (this.engine) {
      if (shard !== this.shard) throw new Error(`shard ${this.shard} was called as shard ${shard}`);
      return;
    }
    this.log.setMeta("shard", String(shard));
    this.start(shard);
  }

  /** A fresh engine, then the log replayed through it. */
  private start(shard: number): void {
    this.shard = shard;
    this.engine = new LinkerEngine(engineModule, this.cfg.link, { shard, shards: this.cfg.shards });
    for (const row of this.log.rows()) {
      if (row.kind === LOG_BATCH) {
        const spans = JSON.parse(row.body as string) as ESpan[];
        this.apply({ seq: row.seq, at: row.at, spans, done: new Uint8Array(row.done ?? new ArrayBuffer(Math.ceil(row.n / 8))) });
      } else {
        this.applyMessages(row.at, new Uint8Array(row.body as ArrayBuffer));
      }
    }
    this.nextMaintenance = Date.now() + MAINTENANCE_MS;
    this.afterWork();
  }

  private apply(b: { seq: number; at: number; spans: ESpan[]; done: Uint8Array }): void {
    const refs = this.bodies.add(b.seq, b.spans, b.done);
    this.engine!.tick(b.at);
    this.engine!.ingest(b.spans, b.at, refs);
    this.handleOutput();
  }

  private applyMessages(at: number, messages: Uint8Array): void {
    this.engine!.tick(at);
    this.engine!.accept(messages);
    this.handleOutput();
  }

  /** Decided spans to the export queue (or done, when sampled out); messages to the peers. */
  private handleOutput(): void {
    for (const r of this.engine!.drain()) {
      const found = this.bodies.find(r.ref);
      if (!found || this.bodies.isDone(found.batch, found.index)) continue; // done before a restart
      this.counters.linked++;
      if (r.sampled) this.exportQueue.push({ batch: found.batch, index: found.index, result: r });
      else this.bodies.markDone(found.batch, found.index);
    }
    for (const [dest, messages] of this.engine!.drainMessages()) this.outbox.push(dest, messages);
  }

  private afterWork(): void {
    this.persistDone();
    this.schedule();
  }

  private persistDone(): void {
    for (const b of this.bodies.takeDirty()) this.log.setDone(b.seq, b.done);
  }

  /** One alarm for everything: the next timer, an export (or its retry), upkeep. */
  private schedule(): void {
    if (!this.engine) return;
    const now = Date.now();
    let at = Math.min(this.engine.nextDeadline(), this.nextMaintenance);
    if (this.exportQueue.length > 0) at = Math.min(at, Math.max(now, this.exportRetryAt));
    if (this.outbox.retryAt > 0) at = Math.min(at, this.outbox.retryAt);
    if (!Number.isFinite(at)) return;
    at = Math.max(at, now);
    // Setting an alarm is a storage write: only when it moves earlier (or has fired).
    if (at < this.alarmAt || this.alarmAt <= now) {
      this.alarmAt = at;
      void this.ctx.storage.setAlarm(at);
    }
  }

  private async exportNow(): Promise<void> {
    if (this.exporting || Date.now() < this.exportRetryAt) return;
    this.exporting = true;
    try {
      while (this.exportQueue.length > 0) {
        const items = this.exportQueue.slice(0, EXPORT_CHUNK);
        const spans = items.map(linked);
        await this.storeSpans(spans);
        if (this.exporter) {
          const outcome = await this.exporter.send(spans);
          if (outcome.kind === "retry") {
            this.counters.exportFailures++;
            this.exportRetryAt = Date.now() + outcome.afterMs;
            console.warn(`shard ${this.shard}: export of ${spans.length} spans failed, retrying in ${Math.round(outcome.afterMs)} ms: ${outcome.reason}`);
            return;
          }
          if (outcome.kind === "permanent") {
            // The collector will never take these: they stay in the trace store, counted.
            this.counters.exportFailures++;
            this.counters.exportRejected += spans.length;
            console.error(`shard ${this.shard}: collector refused ${spans.length} spans: ${outcome.reason}`);
          } else this.counters.exportRejected += outcome.rejectedSpans;
        }
        this.exportRetryAt = 0;
        for (const it of items) this.bodies.markDone(it.batch, it.index);
        this.persistDone();
        this.exportQueue.splice(0, items.length);
        this.counters.exported += items.length;
      }
    } catch (e) {
      this.counters.exportFailures++;
      this.exportRetryAt = Date.now() + 1000;
      console.error(`shard ${this.shard}: export failed: ${(e as Error).message}`);
    } finally {
      this.exporting = false;
    }
  }

  private async storeSpans(spans: LinkedSpan[]): Promise<void> {
    const parts = new Map<number, LinkedSpan[]>();
    for (const s of spans) {
      const i = shardOfTrace(s.trace_id, this.cfg.storeShards);
      let p = parts.get(i);
      if (!p) parts.set(i, (p = []));
      p.push(s);
    }
    await Promise.all([...parts].map(([i, p]) => this.env.TRACE_STORE.get(this.env.TRACE_STORE.idFromName(storeName(i))).putSpans(p)));
  }

  /** Log rows older than the longest a span can matter (2 windows + settle) and done, dropped. */
  private maintain(): void {
    const horizon = 2 * this.cfg.link.windowMs + this.cfg.link.settleMs + 10_000;
    const before = Date.now() - horizon;
    if (this.log.truncate(before, (seq) => this.bodies.fullyDone(seq)) > 0) {
      const kept = new Set<number>();
      for (const row of this.log.rows()) kept.add(row.seq);
      this.bodies.forget((seq) => kept.has(seq));
    }
    this.nextMaintenance = Date.now() + MAINTENANCE_MS;
  }

  private peer(dest: number) {
    return this.env.LINKER_SHARD.get(this.env.LINKER_SHARD.idFromName(shardName(dest)));
  }
}

function linked(it: ExportItem): LinkedSpan {
  const span = it.batch.spans![it.index];
  return { trace_id: it.result.traceId, ...span, span_id: it.result.spanId, parent_id: it.result.parentId };
}

/** Spans cut into log rows of at most MAX_ROW_BYTES of JSON each (each span encoded once). */
function* rows(spans: ESpan[]): Generator<{ spans: ESpan[]; json: string }> {
  let part: ESpan[] = [];
  let texts: string[] = [];
  let bytes = 0;
  for (const s of spans) {
    const text = JSON.stringify(s);
    if (part.length > 0 && bytes + text.length > MAX_ROW_BYTES) {
      yield { spans: part, json: `[${texts.join(",")}]` };
      part = [];
      texts = [];
      bytes = 0;
    }
    part.push(s);
    texts.push(text);
    bytes += text.length + 1;
  }
  if (part.length > 0) yield { spans: part, json: `[${texts.join(",")}]` };
}
