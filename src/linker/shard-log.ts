/**
 * A shard's durable log in its Durable Object's SQLite: every batch of spans it accepted and
 * every batch of messages other shards sent it, in order, with the time it happened. Replaying
 * the log through a fresh engine rebuilds the shard's state exactly (DESIGN.md "Platform facts":
 * persist per batch, never per span). A batch row also keeps a bitmap of its spans that are
 * done (exported or sampled out), so a replay never exports a span twice.
 */
export const LOG_BATCH = 1;
export const LOG_MESSAGES = 2;

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
    sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  }

  getMeta(key: string): string | undefined {
    const row = this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0];
    return row?.value;
  }

  setMeta(key: string, value: string): void {
    this.sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value);
  }

  appendBatch(at: number, json: string, n: number): number {
    return this.sql.exec<{ seq: number }>(
      "INSERT INTO log (kind, at, body, n, done) VALUES (?, ?, ?, ?, ?) RETURNING seq",
      LOG_BATCH, at, json, n, new ArrayBuffer(Math.ceil(n / 8)),
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
      const page = this.sql.exec<LogRow>("SELECT seq, kind, at, body, n, done FROM log WHERE seq > ? ORDER BY seq LIMIT 256", after).toArray();
      if (page.length === 0) return;
      yield* page;
      after = page[page.length - 1].seq;
    }
  }

  setDone(seq: number, done: Uint8Array): void {
    this.sql.exec("UPDATE log SET done = ? WHERE seq = ?", done, seq);
  }

  /** Drops rows older than `before` whose spans are all done (message rows: by age alone). */
  truncate(before: number, fullyDone: (seq: number) => boolean): number {
    const old = this.sql.exec<{ seq: number; kind: number }>("SELECT seq, kind FROM log WHERE at < ? ORDER BY seq", before).toArray();
    let dropped = 0;
    for (const r of old) {
      if (r.kind === LOG_BATCH && !fullyDone(r.seq)) continue;
      this.sql.exec("DELETE FROM log WHERE seq = ?", r.seq);
      dropped++;
    }
    return dropped;
  }

  get bytes(): number {
    return this.sql.databaseSize;
  }
}
