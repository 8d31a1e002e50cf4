/**
 * LinkerShard: one Durable Object, one shard of the linker (DESIGN.md "Scale-out"). It holds the
 * WASM engine for the groups hashed to it, logs every accepted batch and every message from
 * other shards before acting on it, exchanges messages with its peers, runs the window and
 * settle timers on its alarm, and hands decided spans to the trace store and the OTLP exporter.
 * After a restart it replays its log: nothing accepted is lost, nothing exported twice.
 */
import { DurableObject } from "cloudflare:workers";
import engineModule from "../../build/engine.wasm";
import parserModule from "../../build/ingest.wasm";
import type { ESpan } from "../../contract/espan.ts";
import { loadConfig, type WorkerConfig } from "../config.ts";
import type { LinkStats } from "./config.ts";
import { shardName, storeName, type Env } from "../env.ts";
import { IngestError, type RejectedSpan } from "../errors.ts";
import type { ExportSpan } from "../export/otlp-encode.ts";
import { OtlpExporter } from "../export/otlp-http.ts";
import { parseBatch, readBodyBytes, spansOfText, utf8, type BatchBytes } from "../ingest/decode.ts";
import { checkRecords, encodeForParse, SpanParser, type BatchFormat, type DeclineReason } from "../ingest/span-parser.ts";
import { STORE_COLUMNS, type StoreRows } from "../store/trace-store.ts";
import { EngineBug, LinkerEngine, type RawResult } from "./engine.ts";
import { ExportQueues } from "./export-queues.ts";
import { shardOfTrace } from "./ids.ts";
import { PeerOutbox } from "./peer-outbox.ts";
import { batchFormat, isBatch, LOG_BATCH, LOG_BATCH_NDJSON, LOG_BATCH_PACKED, MAX_ROW_BYTES, ShardLog, type LogRow } from "./shard-log.ts";
import { SpanBodies, type HeldBatch } from "./span-bodies.ts";

export type IngestAnswer =
  | { accepted: number }
  | { busy: string; retryAfterS: number }
  | { invalid: string; status: IngestError["status"]; rejected?: RejectedSpan[] };

/** Where the worker forwards an ingest request for shard `shard` (LinkerShard.fetch). */
export const shardIngestUrl = (shard: number): string => `https://linker-shard/v1/bpftracing?shard=${shard}`;

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
  /** Batches the fast path left to the full parser, by its reason. */
  fullParses: Partial<Record<DeclineReason, number>>;
}

interface ExportItem {
  batch: HeldBatch;
  index: number;
  result: RawResult;
  /** The trace store shard of its trace. */
  store: number;
  /** The span's own JSON (as held), and the span parsed from it, when its export step takes it. */
  json?: string;
  span?: ESpan;
  /** In the trace store already (an export retried after a collector failure skips the store). */
  stored: boolean;
}

/**
 * Spans per export step, all of one trace store shard (ExportQueues): one store write (a SQLite
 * commit costs about a millisecond: fewer, larger transactions), then one request to the collector. Bounds how long one step
 * holds the (single) thread, which every ingest request waits behind: its OTLP encoding is one
 * task of ~15-20 us a span. Under the ingest bench (sampling 0.1, alternating runs) 250 gave an
 * ack p99 of 68/71 ms (json/ndjson) against 89/84 with 500, at the same throughput; 1000 was worse.
 */
const EXPORT_CHUNK = 250;
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
  private readonly parser = new SpanParser(parserModule);
  private readonly bodies = new SpanBodies(this.parser);
  private readonly outbox: PeerOutbox;
  private readonly exporter?: OtlpExporter;
  private engine?: LinkerEngine;
  private shard = -1;
  private readonly exportQueue: ExportQueues<ExportItem>;
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
  private readonly fullParses: Partial<Record<DeclineReason, number>> = {};

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.cfg = loadConfig(env);
    this.log = new ShardLog(ctx.storage.sql);
    this.exportQueue = new ExportQueues(this.cfg.storeShards);
    this.outbox = new PeerOutbox((dest, messages) => this.peer(dest).accept(dest, this.shard, messages));
    if (this.cfg.otlpEndpoint) this.exporter = new OtlpExporter(this.cfg.otlpEndpoint, this.cfg.otlpProtocol, this.cfg.otlpHeaders);
    const known = this.log.getMeta("shard");
    if (known !== undefined) ctx.blockConcurrencyWhile(async () => this.start(Number(known)));
  }

  // ---- RPC ----

  /**
   * An ingest request as it came (the only shard, or every span's home: nothing to split),
   * forwarded by the worker: its body streamed here and read once, as bytes (never a string or
   * a value over RPC: each costs copies of ~264 KB per batch, in memory faulted in afresh).
   * Answers an IngestAnswer, once the spans are durable.
   */
  async fetch(request: Request): Promise<Response> {
    this.ensureStarted(Number(new URL(request.url).searchParams.get("shard")));
    const busy = this.busy();
    if (busy) return Response.json(busy);
    let body: BatchBytes;
    try {
      body = await readBodyBytes(request, this.cfg.maxBody);
    } catch (e) {
      if (e instanceof IngestError) return Response.json({ invalid: e.message, status: e.status } satisfies IngestAnswer);
      throw e;
    }
    return Response.json(this.acceptBody(body.bytes, body.ndjson ? "ndjson" : "doc", Date.now()));
  }

  /**
   * Spans whose home is this shard, checked by the worker's fast path: `count` packed spans back
   * to back, arrived at `arrivalMs`. Answers once they are durable.
   */
  async ingestPacked(shard: number, packed: Uint8Array, count: number, arrivalMs: number): Promise<IngestAnswer> {
    this.ensureStarted(shard);
    const busy = this.busy();
    if (busy) return busy;
    this.acceptTrusted(packed, "packed", count, arrivalMs);
    return { accepted: count };
  }

  /**
   * Spans whose home is this shard, checked by the worker's full parser (validated eSpans, as one
   * JSON array), arrived at `arrivalMs`. Answers once they are durable.
   */
  async ingest(shard: number, json: string, arrivalMs: number): Promise<IngestAnswer> {
    this.ensureStarted(shard);
    const busy = this.busy();
    if (busy) return busy;
    const bytes = new TextEncoder().encode(json);
    const n = this.acceptTrusted(bytes, "array", -1, arrivalMs);
    return { accepted: n };
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

  /**
   * A request body: the fast path takes it, or declines it to the full parser (JSON.parse and
   * the validator), which names every bad field, or normalises the spans (they are then encoded
   * again for the fast path).
   */
  private acceptBody(bytes: Uint8Array, format: BatchFormat, arrivalMs: number): IngestAnswer {
    const n = this.parser.parse(bytes, format, "strict", this.bodies.nextRef, arrivalMs);
    if (typeof n === "number") {
      this.acceptParsed(n, arrivalMs);
      return { accepted: n };
    }
    this.fullParses[n] = (this.fullParses[n] ?? 0) + 1;
    let spans: ESpan[];
    try {
      spans = parseBatch(utf8(bytes), format === "ndjson").spans;
    } catch (e) {
      if (e instanceof IngestError) return { invalid: e.message, status: e.status, rejected: e.extra.rejected };
      throw e;
    }
    if (spans.length > 0) this.acceptTrusted(encodeForParse(spans), "array", spans.length, arrivalMs);
    return { accepted: spans.length };
  }

  /** Spans checked before (TRUSTED), `count` of them (-1: any number); returns how many. */
  private acceptTrusted(bytes: Uint8Array, format: BatchFormat, count: number, arrivalMs: number): number {
    const n = this.parser.parse(bytes, format, "trusted", this.bodies.nextRef, arrivalMs);
    if (typeof n !== "number" || (count >= 0 && n !== count)) {
      throw new Error(`shard ${this.shard}: the fast path read ${n} of ${count < 0 ? "the" : count} spans checked before (a bug)`);
    }
    this.acceptParsed(n, arrivalMs);
    return n;
  }

  /** The `n` spans of the parser's last parse: logged (in rows of at most MAX_ROW_BYTES), held, applied. */
  private acceptParsed(n: number, arrivalMs: number): void {
    for (let first = 0; first < n; ) {
      const count = this.parser.spansWithin(first, MAX_ROW_BYTES);
      const block = this.parser.hold(first, count);
      let seq;
      try {
        seq = this.log.appendBatch(arrivalMs, this.parser.blockBytes(block), count, LOG_BATCH_PACKED);
      } catch (e) {
        this.parser.release(block);
        throw e;
      }
      this.apply(seq, arrivalMs, first, count, () => block, new Uint8Array(Math.ceil(count / 8)));
      first += count;
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
      bodyBytes: this.bodies.bytes,
      fullParses: { ...this.fullParses },
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
    const now = Date.now();
    this.withEngine((e) => e.tick(now));
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
    checkRecords(this.parser, (spans, at, refs) => this.engine!.encode(spans, at, refs));
    for (const row of this.log.rows()) {
      if (isBatch(row.kind)) this.replayBatch(row);
      else this.applyMessages(row.at, new Uint8Array(row.body as ArrayBuffer));
    }
    this.nextMaintenance = Date.now() + MAINTENANCE_MS;
    this.afterWork();
  }

  /** A logged batch again: parsed (TRUSTED: it was checked when it came), held unless done, applied. */
  private replayBatch(row: LogRow): void {
    const bytes = typeof row.body === "string" ? new TextEncoder().encode(row.body) : new Uint8Array(row.body);
    let n = this.parser.parse(bytes, batchFormat(row.kind), "trusted", this.bodies.nextRef, row.at);
    if (n !== row.n) {
      // A body an earlier version logged as it came, in a shape the fast path leaves to the full
      // parser (other top-level keys, say): its spans as that parser reads them, encoded again.
      const text = typeof row.body === "string" ? row.body : utf8(bytes);
      const spans = row.kind === LOG_BATCH ? (JSON.parse(text) as ESpan[]) : spansOfText(text, row.kind === LOG_BATCH_NDJSON);
      n = this.parser.parse(encodeForParse(spans), "array", "trusted", this.bodies.nextRef, row.at);
      if (n !== row.n) throw new Error(`shard ${this.shard}: log row ${row.seq} holds ${row.n} spans, read ${n}`);
    }
    const done = new Uint8Array(row.done ?? new ArrayBuffer(Math.ceil(row.n / 8)));
    this.apply(row.seq, row.at, 0, n, () => this.parser.hold(0, n), done);
  }

  /**
   * Spans [first, first + count) of the parser's last parse, logged as row `seq`, into the engine;
   * held in the block `block` makes (unless all are done: a replayed row). Their records carry the
   * refs the parse was given from bodies.nextRef: rows are added in order, nothing in between.
   */
  private apply(seq: number, at: number, first: number, count: number, block: () => number, done: Uint8Array): void {
    this.bodies.add(seq, count, block, done);
    this.withEngine((e) => {
      e.tick(at);
      e.ingestRecords(this.parser.records(first, count));
    });
    this.handleOutput();
  }

  private applyMessages(at: number, messages: Uint8Array): void {
    this.withEngine((e) => {
      e.tick(at);
      e.accept(messages);
    });
    this.handleOutput();
  }

  /**
   * Runs engine work. A bug in the engine (EngineBug) may leave its memory half updated, so the
   * object restarts (ctx.abort: its memory dropped, its storage kept) and its next request
   * replays the log, which holds everything accepted. The request at hand fails (5xx) and its
   * sender retries it; a span logged twice is linked once. A bug that the replay meets again
   * fails every request (503) until it is fixed: still nothing accepted is lost.
   */
  private withEngine(work: (e: LinkerEngine) => void): void {
    try {
      work(this.engine!);
    } catch (e) {
      if (!(e instanceof EngineBug)) throw e;
      const reason = `shard ${this.shard}: ${e.message}; restarting from the log`;
      console.error(reason);
      this.ctx.abort(reason);
      throw e; // abort throws already; this keeps the compiler and any other runtime honest
    }
  }

  /** Decided spans to the export queue (or done, when sampled out); messages to the peers. */
  private handleOutput(): void {
    // Spans of a trace come together: its store shard (a BigInt hash) is worked out once per run.
    let lastTrace = "";
    let store = 0;
    for (const r of this.engine!.drain(true)) {
      const found = this.bodies.find(r.ref);
      if (!found || this.bodies.isDone(found.batch, found.index)) continue; // done before a restart
      this.counters.linked++;
      if (!r.sampled) {
        this.bodies.markDone(found.batch, found.index);
        continue;
      }
      if (r.traceId !== lastTrace) {
        lastTrace = r.traceId;
        store = shardOfTrace(r.traceId, this.cfg.storeShards);
      }
      this.exportQueue.push({ batch: found.batch, index: found.index, result: r, store, stored: false });
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
    const full = this.exportQueue.longest >= EXPORT_CHUNK;
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
    this.bodies.persistDirty((b) => this.log.setDone(b.seq, b.done));
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
      if (!all && this.exportQueue.longest < EXPORT_CHUNK) {
        this.exportSoon();
        return;
      }
      const items = this.exportQueue.take(EXPORT_CHUNK);
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
          this.exportQueue.putBack(items);
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
      this.exportQueue.putBack(items);
    }
  }

  /** A step's spans (all of one trace store shard: ExportQueues) to their store, as flat rows (STORE_COLUMNS). */
  private async storeSpans(items: ExportItem[]): Promise<void> {
    if (items.length === 0) return;
    const rows: StoreRows = [];
    for (const it of items) {
      const span = it.span!;
      rows.push(it.result.traceId, it.result.spanId, it.result.parentId, span.service, startMs(span.start_ns), span.operation ?? "", linkedJson(span, it.result, it.json));
    }
    void STORE_COLUMNS; // the order pushed above
    await this.env.TRACE_STORE.get(this.env.TRACE_STORE.idFromName(storeName(items[0].store))).putSpans(rows);
  }

  /**
   * Log rows older than the longest a span can matter (2 windows + 2 settles: its horizon) and done, dropped:
   * MAINTENANCE_ROWS at a time (a row holds a batch: freeing its pages is real work), again
   * soon while there are more.
   */
  private maintain(): void {
    const horizon = 2 * this.cfg.link.windowMs + 2 * this.cfg.link.settleMs + 10_000;
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
