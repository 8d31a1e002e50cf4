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

import type { TraceSummary } from "./trace-summary.ts";

export type { TraceSummary };

/** Rows per INSERT: 8 parameters each, under the 100-parameter limit of a statement. */
const ROWS_PER_INSERT = 12;
const RETENTION_SWEEP_MS = 60_000;

export class TraceStore extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly retentionMs: number;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.retentionMs = loadConfig(env).retentionMs;
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS spans (
      trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT NOT NULL, service TEXT NOT NULL,
      start_ms INTEGER NOT NULL, stored_at INTEGER NOT NULL, operation TEXT NOT NULL, body TEXT NOT NULL,
      PRIMARY KEY (trace_id, span_id)) WITHOUT ROWID`);
    this.sql.exec("CREATE INDEX IF NOT EXISTS spans_by_span ON spans (span_id)");
    this.sql.exec(`CREATE TABLE IF NOT EXISTS traces (
      trace_id TEXT PRIMARY KEY, start_ms INTEGER NOT NULL, root_service TEXT NOT NULL,
      root_operation TEXT NOT NULL, span_count INTEGER NOT NULL, stored_at INTEGER NOT NULL)`);
    this.sql.exec("CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_ms)");
    this.sql.exec("CREATE TABLE IF NOT EXISTS trace_services (service TEXT NOT NULL, trace_id TEXT NOT NULL, PRIMARY KEY (service, trace_id)) WITHOUT ROWID");
  }

  async putSpans(spans: LinkedSpan[]): Promise<number> {
    const now = Date.now();
    let added = 0;
    this.ctx.storage.transactionSync(() => {
      const fresh: LinkedSpan[] = [];
      for (let i = 0; i < spans.length; i += ROWS_PER_INSERT) {
        const part = spans.slice(i, i + ROWS_PER_INSERT);
        const args: (string | number)[] = [];
        for (const s of part) {
          args.push(s.trace_id, s.span_id, s.parent_id, s.service, startMs(s), now, s.operation ?? "", JSON.stringify(s));
        }
        const placeholders = part.map(() => "(?, ?, ?, ?, ?, ?, ?, ?)").join(", ");
        // RETURNING names the rows really added: a span stored before (a re-export) counts once.
        const rows = this.sql.exec<{ span_id: string; trace_id: string }>(
          `INSERT OR IGNORE INTO spans (trace_id, span_id, parent_id, service, start_ms, stored_at, operation, body) VALUES ${placeholders} RETURNING trace_id, span_id`,
          ...args).toArray();
        const addedIds = new Set(rows.map((r) => `${r.trace_id}/${r.span_id}`));
        for (const s of part) if (addedIds.has(`${s.trace_id}/${s.span_id}`)) fresh.push(s);
        added += rows.length;
      }
      this.summarise(fresh, now);
    });
    const alarm = await this.ctx.storage.getAlarm();
    if (alarm === null) await this.ctx.storage.setAlarm(now + RETENTION_SWEEP_MS);
    return added;
  }

  /**
   * Folds newly stored spans into their traces' summary rows, from the batch alone (no read of
   * the trace): the earliest span so far stands for the trace.
   */
  private summarise(spans: LinkedSpan[], now: number): void {
    const traces = new Map<string, { start: number; service: string; operation: string; count: number; services: Set<string> }>();
    for (const s of spans) {
      const t = traces.get(s.trace_id);
      const start = startMs(s);
      if (!t) traces.set(s.trace_id, { start, service: s.service, operation: s.operation ?? "", count: 1, services: new Set([s.service]) });
      else {
        t.count++;
        t.services.add(s.service);
        if (start < t.start) Object.assign(t, { start, service: s.service, operation: s.operation ?? "" });
      }
    }
    for (const [traceId, t] of traces) {
      this.sql.exec(
        `INSERT INTO traces (trace_id, start_ms, root_service, root_operation, span_count, stored_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(trace_id) DO UPDATE SET span_count = span_count + excluded.span_count, stored_at = excluded.stored_at,
           root_service = CASE WHEN excluded.start_ms < start_ms THEN excluded.root_service ELSE root_service END,
           root_operation = CASE WHEN excluded.start_ms < start_ms THEN excluded.root_operation ELSE root_operation END,
           start_ms = min(start_ms, excluded.start_ms)`,
        traceId, t.start, t.service, t.operation, t.count, now);
      for (const service of t.services) this.sql.exec("INSERT OR IGNORE INTO trace_services (service, trace_id) VALUES (?, ?)", service, traceId);
    }
  }

  async getTrace(traceId: string): Promise<LinkedSpan[]> {
    return this.sql.exec<{ body: string }>("SELECT body FROM spans WHERE trace_id = ? ORDER BY start_ms, span_id", traceId)
      .toArray().map((r) => JSON.parse(r.body) as LinkedSpan);
  }

  async getSpan(spanId: string): Promise<LinkedSpan | null> {
    const row = this.sql.exec<{ body: string }>("SELECT body FROM spans WHERE span_id = ? LIMIT 1", spanId).toArray()[0];
    return row ? (JSON.parse(row.body) as LinkedSpan) : null;
  }

  async listTraces(q: { service?: string; sinceMs?: number; limit: number }): Promise<TraceSummary[]> {
    const since = q.sinceMs ?? 0;
    const rows = q.service
      ? this.sql.exec<Omit<TraceSummary, "services">>(
          `SELECT t.trace_id, t.start_ms, t.root_service, t.root_operation, t.span_count FROM trace_services s
           JOIN traces t ON t.trace_id = s.trace_id WHERE s.service = ? AND t.start_ms >= ? ORDER BY t.start_ms DESC LIMIT ?`,
          q.service, since, q.limit).toArray()
      : this.sql.exec<Omit<TraceSummary, "services">>(
          "SELECT trace_id, start_ms, root_service, root_operation, span_count FROM traces WHERE start_ms >= ? ORDER BY start_ms DESC LIMIT ?",
          since, q.limit).toArray();
    return rows.map((r) => ({
      ...r,
      services: this.sql.exec<{ service: string }>("SELECT service FROM trace_services WHERE trace_id = ? ORDER BY service", r.trace_id).toArray().map((s) => s.service),
    }));
  }

  async counts(): Promise<{ spans: number; traces: number }> {
    return {
      spans: this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM spans").one().n,
      traces: this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM traces").one().n,
    };
  }

  /** Retention: traces stored longer ago than ESPAN_RETENTION go, whole. */
  async alarm(): Promise<void> {
    const before = Date.now() - this.retentionMs;
    const old = this.sql.exec<{ trace_id: string }>("SELECT trace_id FROM traces WHERE stored_at < ?", before).toArray();
    for (const { trace_id } of old) {
      this.sql.exec("DELETE FROM spans WHERE trace_id = ?", trace_id);
      this.sql.exec("DELETE FROM trace_services WHERE trace_id = ?", trace_id);
      this.sql.exec("DELETE FROM traces WHERE trace_id = ?", trace_id);
    }
    if (this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM traces").one().n > 0) {
      await this.ctx.storage.setAlarm(Date.now() + RETENTION_SWEEP_MS);
    }
  }
}

const startMs = (s: LinkedSpan): number => Number(BigInt(s.start_ns) / 1_000_000n);
