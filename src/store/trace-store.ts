/**
 * TraceStore: sampled-in spans, kept for ESPAN_RETENTION and served by /api. One Durable Object
 * per store shard (a trace id's shard: src/linker/ids.ts shardOfTrace), each a SQLite table of
 * spans plus a summary row per trace for listing. Writes are idempotent: a span re-exported
 * after a restart changes nothing.
 */
import { DurableObject } from "cloudflare:workers";
import type { LinkedSpan } from "../../contract/espan.ts";
import { loadConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { SpanIndex } from "./span-index.ts";

import type { TraceSummary } from "./trace-summary.ts";

export type { TraceSummary };

const RETENTION_SWEEP_MS = 60_000;

/**
 * What a shard sends to store spans: per span, these columns in this order, flat in one array
 * (primitives cross RPC far cheaper than span objects). `body` is the linked span's JSON.
 */
export const STORE_COLUMNS = ["trace_id", "span_id", "parent_id", "service", "start_ms", "operation", "body"] as const;
export type StoreRows = (string | number)[];

/** Rows per INSERT: 8 parameters each, under the 100-parameter limit of a statement. */
const ROWS_PER_INSERT = 12;
const INSERT_SQL = (rows: number) =>
  `INSERT OR IGNORE INTO stored_spans (trace_id, span_id, parent_id, service, start_ms, operation, body, stored_at) VALUES ${
    Array.from({ length: rows }, () => "(?, ?, ?, ?, ?, ?, ?, ?)").join(", ")}`;
const INSERT_FULL = INSERT_SQL(ROWS_PER_INSERT);

/** A span newly stored: what its trace's summary takes from it. */
type FreshRow = { trace_id: string; service: string; operation: string; start_ms: number };

export class TraceStore extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly spanIndex: SpanIndex;
  private readonly retentionMs: number;
  /** The retention alarm is known to be set (it re-arms itself while traces remain). */
  private sweepScheduled = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.retentionMs = loadConfig(env).retentionMs;
    this.sql = ctx.storage.sql;
    // A rowid table: rows arrive in time order and are appended; the body (most of a row) stays out
    // of the index B-trees. (The first layout, WITHOUT ROWID keyed by trace, cost twice as much per
    // stored span: its ~700-byte rows were the B-tree's cells.)
    this.sql.exec(`CREATE TABLE IF NOT EXISTS stored_spans (
      trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT NOT NULL, service TEXT NOT NULL,
      start_ms INTEGER NOT NULL, operation TEXT NOT NULL, body TEXT NOT NULL, stored_at INTEGER NOT NULL)`);
    this.sql.exec("CREATE UNIQUE INDEX IF NOT EXISTS stored_spans_by_trace ON stored_spans (trace_id, span_id)");
    this.sql.exec(`CREATE TABLE IF NOT EXISTS traces (
      trace_id TEXT PRIMARY KEY, start_ms INTEGER NOT NULL, root_service TEXT NOT NULL,
      root_operation TEXT NOT NULL, span_count INTEGER NOT NULL, stored_at INTEGER NOT NULL)`);
    this.sql.exec("CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_ms)");
    // The services of each trace, keyed by the trace's summary row (its rowid: given when the trace
    // is first stored, in time order, and kept by the upserts; nothing here VACUUMs, which could
    // renumber it). Keyed (service, trace_id) instead, a step's ~60 traces x services were as many
    // random B-tree inserts: measured on SQLite with this schema, ~45% of a store write's CPU.
    // Keyed by row they append at the end of each service's range; the second index (by trace)
    // serves a trace's services and retention.
    this.sql.exec("CREATE TABLE IF NOT EXISTS trace_service_rows (service TEXT NOT NULL, trace_row INTEGER NOT NULL, PRIMARY KEY (service, trace_row)) WITHOUT ROWID");
    this.sql.exec("CREATE INDEX IF NOT EXISTS trace_service_rows_by_trace ON trace_service_rows (trace_row)");
    this.migrate();
    this.spanIndex = new SpanIndex(this.sql);
  }

  /**
   * Earlier layouts, moved once: spans of the first one (table `spans`) to `stored_spans`; the
   * services of traces by trace id (table `trace_services`) to `trace_service_rows`.
   */
  private migrate(): void {
    const has = (table: string) => this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", table).toArray().length > 0;
    if (has("spans")) {
      this.ctx.storage.transactionSync(() => {
        this.sql.exec(`INSERT OR IGNORE INTO stored_spans (trace_id, span_id, parent_id, service, start_ms, operation, body, stored_at)
          SELECT trace_id, span_id, parent_id, service, start_ms, operation, body, stored_at FROM spans`);
        this.sql.exec("DROP TABLE spans");
      });
    }
    if (has("trace_services")) {
      this.ctx.storage.transactionSync(() => {
        this.sql.exec(`INSERT OR IGNORE INTO trace_service_rows (service, trace_row)
          SELECT s.service, t.rowid FROM trace_services s JOIN traces t ON t.trace_id = s.trace_id`);
        this.sql.exec("DROP TABLE trace_services");
      });
    }
  }

  /**
   * Stores spans (STORE_COLUMNS per span, flat). Idempotent: a span stored before (re-exported
   * after a restart) changes nothing. Returns how many were new.
   */
  async putSpans(rows: StoreRows): Promise<number> {
    const width = STORE_COLUMNS.length;
    if (rows.length % width !== 0) throw new Error(`putSpans: ${rows.length} values are not whole rows of ${width}`);
    const n = rows.length / width;
    const now = Date.now();
    // No transactionSync: its savepoint made SQLite copy every page it touched to a statement
    // journal first (a temp file: pwrite per page, an inode per transaction; measured ~4% of
    // workerd's CPU under the ingest bench). The writes below have no await between them, so
    // they commit together with the event (Durable Objects' write coalescing). But a throw does
    // not undo them (checked in workerd: rows written before a throw in the same event stay),
    // and the caller's retry would then skip those rows as stored before, leaving them out of
    // their traces' summaries: so a failed write has its traces summarised again from what it
    // did store, before the error goes on.
    try {
      return await this.write(rows, n, now);
    } catch (err) {
      try {
        this.resummarise(rows, n);
      } catch {
        // Storage refuses writes altogether: the summaries stay short by what was stored, and
        // the first error is the one to report.
      }
      throw err;
    }
  }

  private async write(rows: StoreRows, n: number, now: number): Promise<number> {
    const width = STORE_COLUMNS.length;
    const fresh: FreshRow[] = [];
    for (let i = 0; i < n; i += ROWS_PER_INSERT) {
      const k = Math.min(ROWS_PER_INSERT, n - i);
      const args: (string | number)[] = new Array(k * (width + 1));
      for (let r = 0, a = 0; r < k; r++) {
        const o = (i + r) * width;
        for (let c = 0; c < width; c++) args[a++] = rows[o + c];
        args[a++] = now;
      }
      this.sql.exec(k === ROWS_PER_INSERT ? INSERT_FULL : INSERT_SQL(k), ...args);
      // A span stored before (a re-export after a restart) is ignored and counts once. When the
      // statement added fewer rows than it had, those it added are its consecutive rowids up to
      // last_insert_rowid(). (RETURNING said which, at ~8 us a row for the row objects: most
      // writes add every row.)
      const { added, last } = this.sql.exec<{ added: number; last: number }>("SELECT changes() AS added, last_insert_rowid() AS last").one();
      if (added === 0) continue;
      for (let r = 0, row = last - added; r < k; r++) {
        const o = (i + r) * width;
        // All added: they took the next rowids in order. Else those added are found by id; they
        // rise in the statement's order, so a rowid not past the last one taken was stored before
        // or is a repeat of a span earlier in this statement.
        if (added === k) row++;
        else {
          const at = this.rowidOf(rows[o] as string, rows[o + 1] as string);
          if (at <= row) continue;
          row = at;
        }
        fresh.push({ trace_id: rows[o] as string, service: rows[o + 3] as string, operation: rows[o + 5] as string, start_ms: rows[o + 4] as number });
        this.spanIndex.noteRow(rows[o + 1] as string, row);
      }
    }
    this.summarise(fresh, now);
    this.spanIndex.catchUp();
    if (!this.sweepScheduled) {
      if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now + RETENTION_SWEEP_MS);
      this.sweepScheduled = true;
    }
    return fresh.length;
  }

  private rowidOf(traceId: string, spanId: string): number {
    return this.sql.exec<{ r: number }>("SELECT rowid AS r FROM stored_spans WHERE trace_id = ? AND span_id = ?", traceId, spanId).toArray()[0]?.r ?? 0;
  }

  /**
   * The summary rows and services of the traces of `rows` (n spans), recomputed from the spans
   * stored: exact whatever part of a failed write got stored. Ties of the earliest span go to
   * the one stored first, as in `summarise`.
   */
  private resummarise(rows: StoreRows, n: number): void {
    const width = STORE_COLUMNS.length;
    const ids = new Set<string>();
    for (let i = 0; i < n; i++) ids.add(rows[i * width] as string);
    const traces = JSON.stringify([...ids]);
    this.sql.exec(
      `INSERT INTO traces (trace_id, start_ms, root_service, root_operation, span_count, stored_at)
       SELECT s.trace_id, s.start_ms, s.service, s.operation, (SELECT count(*) FROM stored_spans c WHERE c.trace_id = s.trace_id), ?2
       FROM json_each(?1) j JOIN stored_spans s
         ON s.rowid = (SELECT e.rowid FROM stored_spans e WHERE e.trace_id = j.value ORDER BY e.start_ms, e.rowid LIMIT 1)
       WHERE true
       ON CONFLICT(trace_id) DO UPDATE SET start_ms = excluded.start_ms, root_service = excluded.root_service,
         root_operation = excluded.root_operation, span_count = excluded.span_count, stored_at = excluded.stored_at`,
      traces, Date.now());
    this.sql.exec(`INSERT OR IGNORE INTO trace_service_rows (service, trace_row)
      SELECT DISTINCT s.service, t.rowid FROM json_each(?1) j JOIN traces t ON t.trace_id = j.value JOIN stored_spans s ON s.trace_id = j.value`,
      traces);
  }

  /**
   * Folds newly stored spans into their traces' summary rows, from the batch alone (no read of
   * the trace): the earliest span so far stands for the trace. Two statements whatever the
   * number of traces (their rows go in as one JSON parameter).
   */
  private summarise(spans: FreshRow[], now: number): void {
    if (spans.length === 0) return;
    const traces = new Map<string, { start: number; service: string; operation: string; count: number; services: Set<string> }>();
    for (const s of spans) {
      const t = traces.get(s.trace_id);
      if (!t) traces.set(s.trace_id, { start: s.start_ms, service: s.service, operation: s.operation, count: 1, services: new Set([s.service]) });
      else {
        t.count++;
        t.services.add(s.service);
        if (s.start_ms < t.start) Object.assign(t, { start: s.start_ms, service: s.service, operation: s.operation });
      }
    }
    const rows: [string, number, string, string, number][] = [];
    const services: [string, string][] = [];
    for (const [traceId, t] of traces) {
      rows.push([traceId, t.start, t.service, t.operation, t.count]);
      for (const service of t.services) services.push([service, traceId]);
    }
    this.sql.exec(
      `INSERT INTO traces (trace_id, start_ms, root_service, root_operation, span_count, stored_at)
       SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, ?2 FROM json_each(?1) WHERE true
       ON CONFLICT(trace_id) DO UPDATE SET span_count = span_count + excluded.span_count, stored_at = excluded.stored_at,
         root_service = CASE WHEN excluded.start_ms < start_ms THEN excluded.root_service ELSE root_service END,
         root_operation = CASE WHEN excluded.start_ms < start_ms THEN excluded.root_operation ELSE root_operation END,
         start_ms = min(start_ms, excluded.start_ms)`,
      JSON.stringify(rows), now);
    // Every trace has its summary row now (the statement above): its rowid keys its services.
    this.sql.exec(`INSERT OR IGNORE INTO trace_service_rows (service, trace_row)
      SELECT value ->> 0, (SELECT rowid FROM traces WHERE trace_id = value ->> 1) FROM json_each(?1) WHERE true`,
      JSON.stringify(services));
  }

  async getTrace(traceId: string): Promise<LinkedSpan[]> {
    return this.sql.exec<{ body: string }>("SELECT body FROM stored_spans WHERE trace_id = ? ORDER BY start_ms, span_id", traceId)
      .toArray().map((r) => JSON.parse(r.body) as LinkedSpan);
  }

  async getSpan(spanId: string): Promise<LinkedSpan | null> {
    const body = this.spanIndex.find(spanId);
    return body === null ? null : (JSON.parse(body) as LinkedSpan);
  }

  async listTraces(q: { service?: string; sinceMs?: number; limit: number }): Promise<TraceSummary[]> {
    const since = q.sinceMs ?? 0;
    type Row = Omit<TraceSummary, "services"> & { row: number };
    const rows = q.service
      ? this.sql.exec<Row>(
          `SELECT t.trace_id, t.start_ms, t.root_service, t.root_operation, t.span_count, t.rowid AS row FROM trace_service_rows s
           JOIN traces t ON t.rowid = s.trace_row WHERE s.service = ? AND t.start_ms >= ? ORDER BY t.start_ms DESC LIMIT ?`,
          q.service, since, q.limit).toArray()
      : this.sql.exec<Row>(
          "SELECT trace_id, start_ms, root_service, root_operation, span_count, rowid AS row FROM traces WHERE start_ms >= ? ORDER BY start_ms DESC LIMIT ?",
          since, q.limit).toArray();
    return rows.map(({ row, ...r }) => ({
      ...r,
      services: this.sql.exec<{ service: string }>("SELECT service FROM trace_service_rows WHERE trace_row = ? ORDER BY service", row).toArray().map((s) => s.service),
    }));
  }

  async counts(): Promise<{ spans: number; traces: number }> {
    return {
      spans: this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM stored_spans").one().n,
      traces: this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM traces").one().n,
    };
  }

  /** Retention: traces stored longer ago than ESPAN_RETENTION go, whole. */
  async alarm(): Promise<void> {
    const before = Date.now() - this.retentionMs;
    const old = this.sql.exec<{ trace_id: string; row: number }>("SELECT trace_id, rowid AS row FROM traces WHERE stored_at < ?", before).toArray();
    for (const { trace_id, row } of old) {
      this.sql.exec("DELETE FROM stored_spans WHERE trace_id = ?", trace_id);
      this.sql.exec("DELETE FROM trace_service_rows WHERE trace_row = ?", row);
      this.sql.exec("DELETE FROM traces WHERE rowid = ?", row);
    }
    if (old.length > 0) this.spanIndex.prune();
    if (this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM traces").one().n > 0) {
      await this.ctx.storage.setAlarm(Date.now() + RETENTION_SWEEP_MS);
    } else this.sweepScheduled = false;
  }
}

