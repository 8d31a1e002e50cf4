/**
 * A shard's durable log in its Durable Object's SQLite: every batch of spans it accepted and
 * every batch of messages other shards sent it, in order, with the time it happened. Replaying
 * the log through a fresh engine rebuilds the shard's state exactly (DESIGN.md "Platform facts":
 * persist per batch, never per span). Each batch also has a bitmap of its spans that are done
 * (exported or sampled out), in a table beside the log, so a replay never exports a span twice.
 */
import type { BatchFormat } from "../ingest/span-parser.ts";

/** A batch as a JSON array of spans (text). */
export const LOG_BATCH = 1;
export const LOG_MESSAGES = 2;
/** A batch kept as its request body came (text): a JSON document `{"spans": [...]}`, or NDJSON. Logged before packed rows; replayed still. */
export const LOG_BATCH_DOC = 3;
export const LOG_BATCH_NDJSON = 4;
/**
 * A batch as packed spans back to back (a BLOB: span-parser.ts, assembly/ingest/fields.ts). Half
 * the bytes of its JSON (keys are one byte), and every byte a shard logs is written to SQLite's
 * WAL, then again by the checkpoint, on the one thread (measured: ~25% of workerd's CPU).
 */
export const LOG_BATCH_PACKED = 5;
export const isBatch = (kind: number): boolean => kind === LOG_BATCH || kind === LOG_BATCH_DOC || kind === LOG_BATCH_NDJSON || kind === LOG_BATCH_PACKED;
/** How a batch row of `kind` holds its spans. */
export const batchFormat = (kind: number): BatchFormat =>
  kind === LOG_BATCH ? "array" : kind === LOG_BATCH_DOC ? "doc" : kind === LOG_BATCH_NDJSON ? "ndjson" : "packed";

/** Rows stay small: a row holds at most this much span JSON (Cloudflare caps a row at 2 MB). */
export const MAX_ROW_BYTES = 1 << 20;

export type LogRow = {
  seq: number;
  kind: number;
  at: number;
  body: string | ArrayBuffer;
  n: number;
  done: ArrayBuffer | null;
};

export class ShardLog {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(`CREATE TABLE IF NOT EXISTS log (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      kind INTEGER NOT NULL,
      at INTEGER NOT NULL,
      body BLOB NOT NULL,
      n INTEGER NOT NULL,
      done BLOB
    )`);
    // Done bitmaps live in a table of their own: an UPDATE rewrites its whole row, and a log row
    // carries its batch (hundreds of KB over overflow pages) where a bitmap row is a few bytes.
    // (Rows logged before this table existed may still have their bitmap in log.done.)
    sql.exec("CREATE TABLE IF NOT EXISTS log_done (seq INTEGER PRIMARY KEY, done BLOB NOT NULL)");
    sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  }

  getMeta(key: string): string | undefined {
    const row = this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0];
    return row?.value;
  }

  setMeta(key: string, value: string): void {
    this.sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value);
  }

  /** A batch of `n` spans, as `kind` holds them (LOG_BATCH_PACKED: bytes; the others text). */
  appendBatch(at: number, body: string | Uint8Array, n: number, kind = LOG_BATCH_PACKED): number {
    return this.sql.exec<{ seq: number }>(
      "INSERT INTO log (kind, at, body, n) VALUES (?, ?, ?, ?) RETURNING seq",
      kind, at, body, n,
    ).one().seq;
  }

  appendMessages(at: number, messages: Uint8Array, n: number): number {
    return this.sql.exec<{ seq: number }>(
      "INSERT INTO log (kind, at, body, n) VALUES (?, ?, ?, ?) RETURNING seq",
      LOG_MESSAGES, at, messages, n,
    ).one().seq;
  }

  *rows(): Generator<LogRow> {
    // Read in pages: a cursor over a long log would hold it all in memory at once.
    let after = 0;
    for (;;) {
      const page = this.sql.exec<LogRow>(
        `SELECT l.seq AS seq, l.kind AS kind, l.at AS at, l.body AS body, l.n AS n, coalesce(d.done, l.done) AS done
         FROM log l LEFT JOIN log_done d ON d.seq = l.seq WHERE l.seq > ? ORDER BY l.seq LIMIT 256`, after).toArray();
      if (page.length === 0) return;
      yield* page;
      after = page[page.length - 1].seq;
    }
  }

  /** Sequence numbers of the rows kept. */
  seqs(): Set<number> {
    const out = new Set<number>();
    for (const r of this.sql.exec<{ seq: number }>("SELECT seq FROM log")) out.add(r.seq);
    return out;
  }

  setDone(seq: number, done: Uint8Array): void {
    this.sql.exec("INSERT INTO log_done (seq, done) VALUES (?, ?) ON CONFLICT(seq) DO UPDATE SET done = excluded.done", seq, done);
  }

  /**
   * Drops rows older than `before` whose spans are all done (message rows: by age alone), at most
   * `limit` of them (each frees a batch's pages: a bounded step); their seqs go to `dropped`.
   */
  truncate(before: number, fullyDone: (seq: number) => boolean, limit = Infinity, dropped: number[] = []): number {
    const old = this.sql.exec<{ seq: number; kind: number }>("SELECT seq, kind FROM log WHERE at < ? ORDER BY seq", before).toArray();
    const start = dropped.length;
    for (const r of old) {
      if (dropped.length - start >= limit) break;
      if (isBatch(r.kind) && !fullyDone(r.seq)) continue;
      this.sql.exec("DELETE FROM log WHERE seq = ?", r.seq);
      this.sql.exec("DELETE FROM log_done WHERE seq = ?", r.seq);
      dropped.push(r.seq);
    }
    return dropped.length - start;
  }

  get bytes(): number {
    return this.sql.databaseSize;
  }
}
