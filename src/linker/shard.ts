/**
 * LinkerShard: one Durable Object, one shard of the linker (DESIGN.md "Scale-out"). It holds the
 * WASM engine for the groups hashed to it, logs every accepted batch and every message from
 * other shards before acting on it, exchanges messages with its peers, runs the window and
 * settle timers on its alarm, and hands decided spans to the trace store and the OTLP exporter.
 * After a restart it replays its log: nothing accepted is lost, nothing exported twice.
 */
import { DurableObject } from "cloudflare:workers";
import engineModule from "../../build/engine.wasm";
import type { ESpan } from "../../contract/espan.ts";
import { loadConfig, type WorkerConfig } from "../config.ts";
import type { LinkStats } from "./config.ts";
import { shardName, storeName, type Env } from "../env.ts";
import { IngestError, type RejectedSpan } from "../errors.ts";
import type { ExportSpan } from "../export/otlp-encode.ts";
import { OtlpExporter } from "../export/otlp-http.ts";
import { parseBatch, spansOfText } from "../ingest/decode.ts";
import { STORE_COLUMNS, type StoreRows } from "../store/trace-store.ts";
import { LinkerEngine, type RawResult } from "./engine.ts";
import { shardOfTrace } from "./ids.ts";
import { PeerOutbox } from "./peer-outbox.ts";
import { batchFormat, isBatch, LOG_BATCH, LOG_BATCH_DOC, LOG_BATCH_NDJSON, MAX_ROW_BYTES, ShardLog } from "./shard-log.ts";
import { SpanBodies, type HeldBatch } from "./span-bodies.ts";
import { encodeSpans, joinSpans, locateSpans, type BatchText } from "./span-text.ts";

export type IngestAnswer =
  | { accepted: number }
  | { busy: string; retryAfterS: number }
  | { invalid: string; rejected?: RejectedSpan[] };

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
  bodyBytes: number;
}

interface ExportItem {
  batch: HeldBatch;
  index: number;
  result: RawResult;
  /** The span's own JSON (as held), and the span parsed from it, when its export step takes it. */
  json?: string;
  span?: ESpan;
  /** In the trace store already (an export retried after a collector failure skips the store). */
  stored: boolean;
}

/**
 * Spans per export step: one write per store shard (a SQLite commit costs about a millisecond:
 * fewer, larger transactions), then one request to the collector. Bounds how long one step
 * holds the (single) thread, which every ingest request waits behind: about 5 ms of encoding
 * and 5–10 ms of store writes (1000 measured a higher ack p99 under the ingest bench).
 */
const EXPORT_CHUNK = 500;
/** Export steps under way at once: the collector's round trips overlap (as its own exporters' consumers do). */
const EXPORTS_IN_FLIGHT = 4;
/**
 * How long decided spans may wait to fill an export step (as the OTel SDK's batch processor
 * waits): a trace store write and its commit cost far more per span in small steps.
 */
const EXPORT_LINGER_MS = 200;
const MAINTENANCE_MS = 30_000;
const MAINTENANCE_ROWS = 64;
const MAINTENANCE_AGAIN_MS = 500;

export class LinkerShard extends DurableObject<Env> {
  private readonly cfg: WorkerConfig;
  private readonly log: ShardLog;
  private readonly bodies = new SpanBodies();
  private readonly outbox: PeerOutbox;
  private readonly exporter?: OtlpExporter;
  private engine?: LinkerEngine;
  private shard = -1;
  private exportQueue: ExportItem[] = [];
  /** Export steps under way, and their spans. */
  private exportSteps = 0;
  private exportingSpans = 0;
  private exportRetryAt = 0;
  private exportTimer?: ReturnType<typeof setTimeout>;
  private exportTimerFull = false;
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
    const busy = this.busy();
    if (busy) return busy;
    const spans = JSON.parse(json) as ESpan[];
    this.accept_(spans, json.length <= MAX_ROW_BYTES ? json : undefined, LOG_BATCH, arrivalMs);
    return { accepted: spans.length };
  }

  /**
   * A whole request body for this shard (the only shard: nothing to split), as it came: decoded
   * and validated here, once, and logged as it is when validation changed nothing. Saves the
   * worker's parse and the JSON round trip between them. Answers once the spans are durable.
   */
  async ingestBody(shard: number, text: string, ndjson: boolean, arrivalMs: number): Promise<IngestAnswer> {
    this.ensureStarted(shard);
    const busy = this.busy();
    if (busy) return busy;
    let batch;
    try {
      batch = parseBatch(text, ndjson);
    } catch (e) {
      if (e instanceof IngestError) return { invalid: e.message, rejected: e.extra.rejected };
      throw e;
    }
    if (batch.spans.length === 0) return { accepted: 0 };
    const asIs = batch.exact && text.length <= MAX_ROW_BYTES;
    this.accept_(batch.spans, asIs ? text : undefined, ndjson ? LOG_BATCH_NDJSON : LOG_BATCH_DOC, arrivalMs);
    return { accepted: batch.spans.length };
  }

  private busy(): IngestAnswer | undefined {
    const engine = this.engine!;
    const pending = engine.heldRecords - engine.decidedHeld;
    if (pending > this.cfg.maxPending) return { busy: `shard ${this.shard} holds ${pending} undecided spans (ESPAN_MAX_PENDING ${this.cfg.maxPending})`, retryAfterS: 2 };
    if (this.exportBacklog > this.cfg.maxExportBacklog) {
      return { busy: `shard ${this.shard} has ${this.exportBacklog} spans waiting for the collector (ESPAN_MAX_EXPORT_BACKLOG)`, retryAfterS: 5 };
    }
    return undefined;
  }

  /** Logs spans (as `text` of `kind` when given, else as JSON arrays of at most MAX_ROW_BYTES), then applies them. */
  private accept_(spans: ESpan[], text: string | undefined, kind: number, arrivalMs: number): void {
    const parts = text !== undefined ? [{ spans, body: bodyOf(text, kind, spans) }] : rows(spans);
    for (const part of parts) {
      const seq = this.log.appendBatch(arrivalMs, part.body.text, part.spans.length, text !== undefined ? kind : LOG_BATCH);
      this.apply({ seq, at: arrivalMs, spans: part.spans, body: () => part.body, done: new Uint8Array(Math.ceil(part.spans.length / 8)) });
    }
    this.afterWork();
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
      exportBacklog: this.exportBacklog,
      pending: this.engine.heldRecords - this.engine.decidedHeld,
      held: this.engine.heldRecords,
      peerSendFailures: this.outbox.failures,
      logBytes: this.log.bytes,
      engineBytes: this.engine.memoryUsed,
      bodyBytes: this.bodies.chars,
    };
  }

  /** Tests: run the timers and the export now, as the alarm would, and wait for the peers. */
  async flush(): Promise<void> {
    if (!this.engine) return;
    await this.alarm();
    await this.outbox.idle();
    // Everything decided goes out now (no linger), until the collector fails or all is done.
    for (;;) {
      this.exportNow(true);
      if (this.exportSteps === 0) break;
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  async alarm(): Promise<void> {
    this.alarmAt = Infinity;
    if (!this.engine) return;
    this.engine.tick(Date.now());
    this.handleOutput();
    this.outbox.retryAll();
    if (Date.now() >= this.nextMaintenance) this.maintain();
    this.exportNow();
    this.persistDone();
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
      if (isBatch(row.kind)) {
        const text = row.body as string;
        const spans = row.kind === LOG_BATCH ? (JSON.parse(text) as ESpan[]) : spansOfText(text, row.kind === LOG_BATCH_NDJSON);
        const done = new Uint8Array(row.done ?? new ArrayBuffer(Math.ceil(row.n / 8)));
        this.apply({ seq: row.seq, at: row.at, spans, body: () => bodyOf(text, row.kind, spans), done });
      } else {
        this.applyMessages(row.at, new Uint8Array(row.body as ArrayBuffer));
      }
    }
    this.nextMaintenance = Date.now() + MAINTENANCE_MS;
    this.afterWork();
  }

  /** A logged batch into the engine; its spans are held as `body` (their objects are not kept). */
  private apply(b: { seq: number; at: number; spans: ESpan[]; body: () => BatchText; done: Uint8Array }): void {
    const refs = this.bodies.add(b.seq, b.spans.length, b.body, b.done);
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
    for (const r of this.engine!.drain(true)) {
      const found = this.bodies.find(r.ref);
      if (!found || this.bodies.isDone(found.batch, found.index)) continue; // done before a restart
      this.counters.linked++;
      if (r.sampled) this.exportQueue.push({ batch: found.batch, index: found.index, result: r, stored: false });
      else this.bodies.markDone(found.batch, found.index);
    }
    for (const [dest, messages] of this.engine!.drainMessages()) this.outbox.push(dest, messages);
  }

  private afterWork(): void {
    this.persistDone();
    this.exportSoon();
    this.schedule();
  }

  /**
   * Export what was decided after this event (not inside it: its answer goes first): at once
   * when there is a full step of it, else after EXPORT_LINGER_MS.
   */
  private exportSoon(): void {
    if (this.exportQueue.length === 0 || this.exportSteps >= EXPORTS_IN_FLIGHT) return;
    const full = this.exportQueue.length >= EXPORT_CHUNK;
    if (this.exportTimer !== undefined) {
      if (!full || this.exportTimerFull) return;
      clearTimeout(this.exportTimer);
    }
    this.exportTimerFull = full;
    this.exportTimer = setTimeout(() => {
      this.exportTimer = undefined;
      this.exportNow(true);
    }, full ? 0 : EXPORT_LINGER_MS);
  }

  private persistDone(): void {
    for (const b of this.bodies.takeDirty()) this.log.setDone(b.seq, b.done);
  }

  /** One alarm for everything: the next timer, an export (or its retry), upkeep. */
  private schedule(): void {
    if (!this.engine) return;
    const now = Date.now();
    let at = Math.min(this.engine.nextDeadline(), this.nextMaintenance);
    // The export runs on its own (exportSoon, and each step starts the next): the alarm is for a retry.
    if (this.exportQueue.length > 0 && this.exportRetryAt > now) at = Math.min(at, this.exportRetryAt);
    if (this.outbox.retryAt > 0) at = Math.min(at, this.outbox.retryAt);
    if (!Number.isFinite(at)) return;
    at = Math.max(at, now);
    // Setting an alarm is a storage write: only when it moves earlier (or has fired).
    if (at < this.alarmAt || this.alarmAt <= now) {
      this.alarmAt = at;
      void this.ctx.storage.setAlarm(at);
    }
  }

  private get exportBacklog(): number {
    return this.exportQueue.length + this.exportingSpans;
  }

  /**
   * Starts export steps while there is room for them (and no collector failure to wait out):
   * full ones, and with `all` also the last, partial one (else it waits: exportSoon).
   */
  private exportNow(all = false): void {
    while (this.exportSteps < EXPORTS_IN_FLIGHT && this.exportQueue.length > 0 && Date.now() >= this.exportRetryAt) {
      if (!all && this.exportQueue.length < EXPORT_CHUNK) {
        this.exportSoon();
        return;
      }
      const items = this.exportQueue.splice(0, EXPORT_CHUNK);
      this.exportSteps++;
      this.exportingSpans += items.length;
      void this.exportStep(items).finally(() => {
        this.exportSteps--;
        this.exportingSpans -= items.length;
        this.exportNow();
        this.schedule();
      });
    }
  }

  /** One step: the spans into the trace store, then to the collector; done once it took them. */
  private async exportStep(taken: ExportItem[]): Promise<void> {
    // A span decided twice (it should not be) is exported once: its body is gone once done.
    const items = taken.filter((it) => !this.bodies.isDone(it.batch, it.index));
    for (const it of items) {
      it.json ??= this.bodies.text(it.batch, it.index);
      it.span ??= JSON.parse(it.json) as ESpan;
    }
    try {
      await this.storeSpans(items.filter((it) => !it.stored));
      for (const it of items) it.stored = true;
      if (this.exporter) {
        const outcome = await this.exporter.send(items.map(exportSpan));
        if (outcome.kind === "retry") {
          this.counters.exportFailures++;
          this.exportRetryAt = Date.now() + outcome.afterMs;
          console.warn(`shard ${this.shard}: export of ${items.length} spans failed, retrying in ${Math.round(outcome.afterMs)} ms: ${outcome.reason}`);
          this.exportQueue.unshift(...items);
          return;
        }
        if (outcome.kind === "permanent") {
          // The collector will never take these: they stay in the trace store, counted.
          this.counters.exportFailures++;
          this.counters.exportRejected += items.length;
          console.error(`shard ${this.shard}: collector refused ${items.length} spans: ${outcome.reason}`);
        } else this.counters.exportRejected += outcome.rejectedSpans;
      }
      this.exportRetryAt = 0;
      for (const it of items) this.bodies.markDone(it.batch, it.index);
      this.persistDone();
      this.counters.exported += items.length;
    } catch (e) {
      this.counters.exportFailures++;
      this.exportRetryAt = Date.now() + 1000;
      console.error(`shard ${this.shard}: export failed: ${(e as Error).message}`);
      this.exportQueue.unshift(...items);
    }
  }

  /** Spans to their trace store shards: one write per store shard, the spans as flat rows (STORE_COLUMNS). */
  private async storeSpans(items: ExportItem[]): Promise<void> {
    if (items.length === 0) return;
    const parts = new Map<number, StoreRows>();
    let lastTrace = "";
    let rows: StoreRows = [];
    for (const it of items) {
      const span = it.span!;
      const { traceId, parentId } = it.result;
      // Spans of a trace come together: its store shard (a BigInt hash) is worked out once per run.
      if (traceId !== lastTrace) {
        lastTrace = traceId;
        const i = shardOfTrace(traceId, this.cfg.storeShards);
        let p = parts.get(i);
        if (!p) parts.set(i, (p = []));
        rows = p;
      }
      rows.push(traceId, it.result.spanId, parentId, span.service, startMs(span.start_ns), span.operation ?? "", linkedJson(span, it.result, it.json));
    }
    void STORE_COLUMNS; // the order pushed above
    await Promise.all([...parts].map(([i, p]) => this.env.TRACE_STORE.get(this.env.TRACE_STORE.idFromName(storeName(i))).putSpans(p)));
  }

  /**
   * Log rows older than the longest a span can matter (2 windows + settle) and done, dropped:
   * MAINTENANCE_ROWS at a time (a row holds a batch: freeing its pages is real work), again
   * soon while there are more.
   */
  private maintain(): void {
    const horizon = 2 * this.cfg.link.windowMs + this.cfg.link.settleMs + 10_000;
    const before = Date.now() - horizon;
    const dropped: number[] = [];
    this.log.truncate(before, (seq) => this.bodies.fullyDone(seq), MAINTENANCE_ROWS, dropped);
    if (dropped.length > 0) {
      const gone = new Set(dropped);
      this.bodies.forget((seq) => !gone.has(seq));
    }
    this.nextMaintenance = Date.now() + (dropped.length >= MAINTENANCE_ROWS ? MAINTENANCE_AGAIN_MS : MAINTENANCE_MS);
  }

  private peer(dest: number) {
    return this.env.LINKER_SHARD.get(this.env.LINKER_SHARD.idFromName(shardName(dest)));
  }
}

function exportSpan(it: ExportItem): ExportSpan {
  return { span: it.span!, traceId: it.result.traceId, parentId: it.result.parentId };
}

/**
 * The linked span's JSON (what the store keeps and /api serves): `{trace_id, ...span, parent_id}`.
 * Built around the span's own JSON (`own`: its text, an object, which parses to `span`); the
 * linker's ids win over any fields of those names.
 */
export function linkedJson(span: ESpan, r: { traceId: string; spanId: string; parentId: string }, own = JSON.stringify(span)): string {
  if (span.trace_id !== undefined || span.parent_id !== undefined || span.span_id !== r.spanId) {
    return JSON.stringify({ ...span, trace_id: r.traceId, span_id: r.spanId, parent_id: r.parentId });
  }
  return `{"trace_id":"${r.traceId}",${own.trim().slice(1, -1)},"parent_id":"${r.parentId}"}`;
}

/** Unix ms of a decimal unix-ns string (validated: digits only). */
export function startMs(startNs: string): number {
  return startNs.length > 6 ? Number(startNs.slice(0, -6)) : 0;
}

/** A logged batch's spans located in its text (which they were parsed from), or encoded again should that fail. */
function bodyOf(text: string, kind: number, spans: ESpan[]): BatchText {
  return locateSpans(text, batchFormat(kind), spans.length) ?? encodeSpans(spans);
}

/** Spans cut into log rows of at most MAX_ROW_BYTES of JSON each (each span encoded once). */
function* rows(spans: ESpan[]): Generator<{ spans: ESpan[]; body: BatchText }> {
  let part: ESpan[] = [];
  let texts: string[] = [];
  let bytes = 0;
  for (const s of spans) {
    const text = JSON.stringify(s);
    if (part.length > 0 && bytes + text.length > MAX_ROW_BYTES) {
      yield { spans: part, body: joinSpans(texts) };
      part = [];
      texts = [];
      bytes = 0;
    }
    part.push(s);
    texts.push(text);
    bytes += text.length + 1;
  }
  if (part.length > 0) yield { spans: part, body: joinSpans(texts) };
}
