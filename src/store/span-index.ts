/**
 * Stored spans by span id, for GET /api/spans/:span_id, without a B-tree over random keys.
 *
 * An index on span_id (random 64-bit ids) put every new span on its own index page: each
 * commit of a store write wrote about one 4 KB page per span to SQLite's WAL, and again at the
 * checkpoint, and the index outgrew the page cache (measured under the ingest bench: the store's
 * writes were 22% of workerd's thread after 20 s, and growing with the store). Here the rows are
 * indexed in sorted steps of STEP_ROWS into segments of SEGMENT_ROWS (an entry keyed by
 * (segment, span_id)): a step touches each page of one segment's keys at most once. A lookup
 * probes each segment (a day at 1,000 spans/s is ~1,300 of them) and scans the rows not indexed
 * yet (fewer than STEP_ROWS, plus a write's worth).
 */

export interface SpanIndexOptions {
  /** Rows indexed in one step (one sorted insert). */
  stepRows?: number;
  /** Rows a segment covers before the next one starts. */
  segmentRows?: number;
}

const STEP_ROWS = 8192;
const SEGMENT_ROWS = 65536;

export class SpanIndex {
  private readonly stepRows: number;
  private readonly segmentRows: number;
  /** The last stored_spans rowid indexed (0: none), and the segment rows go to (its first row). */
  private indexedTo: number;
  private segment: number;
  /**
   * Span ids of the rows stored since, by row (recentIds[i] is row recentFrom + i), as the writer
   * noted them: a step takes its keys from here rather than reading its rows back (each row
   * carries its span's body: a step read ~2,000 pages; measured ~6% of workerd's thread under
   * the ingest bench at sampling rate 1, in steps of ~30 ms). After a restart, or a gap, the
   * rows are read as before.
   */
  private recentFrom = 0;
  private recentIds: string[] = [];

  constructor(private readonly sql: SqlStorage, opts: SpanIndexOptions = {}) {
    this.stepRows = opts.stepRows ?? STEP_ROWS;
    this.segmentRows = opts.segmentRows ?? SEGMENT_ROWS;
    sql.exec("CREATE TABLE IF NOT EXISTS span_keys (segment INTEGER NOT NULL, span_id TEXT NOT NULL, row INTEGER NOT NULL, PRIMARY KEY (segment, span_id, row)) WITHOUT ROWID");
    sql.exec("CREATE TABLE IF NOT EXISTS span_segments (segment INTEGER PRIMARY KEY, last_row INTEGER NOT NULL)");
    // The random-key index this replaces (its rows get indexed here as writes come).
    sql.exec("DROP INDEX IF EXISTS stored_spans_by_span");
    const last = sql.exec<{ segment: number; last_row: number }>("SELECT segment, last_row FROM span_segments ORDER BY segment DESC LIMIT 1").toArray()[0];
    this.indexedTo = last?.last_row ?? 0;
    this.segment = last?.segment ?? 0;
  }

  /** The writer stored span `spanId` as row `row` (rows in the order they were added). */
  noteRow(spanId: string, row: number): void {
    if (row !== this.recentFrom + this.recentIds.length) {
      this.recentIds = [];
      this.recentFrom = row;
    }
    this.recentIds.push(spanId);
  }

  /** Indexes what a step's worth of rows, or more, is waiting (in the writer's event, whose writes commit together). */
  catchUp(): void {
    const lastRow = this.sql.exec<{ r: number | null }>("SELECT max(rowid) AS r FROM stored_spans").one().r ?? 0;
    if (lastRow < this.indexedTo) this.reset(); // emptied (retention) and rowids taken again from 1
    while (lastRow - this.indexedTo >= this.stepRows) {
      const to = this.indexedTo + this.stepRows;
      if (this.segment === 0 || to - this.segment >= this.segmentRows) this.segment = this.indexedTo + 1;
      const first = this.indexedTo + 1 - this.recentFrom;
      if (first >= 0 && to - this.recentFrom < this.recentIds.length) {
        const keys: [string, number][] = [];
        for (let row = this.indexedTo + 1; row <= to; row++) keys.push([this.recentIds[row - this.recentFrom], row]);
        this.sql.exec("INSERT OR IGNORE INTO span_keys (segment, span_id, row) SELECT ?1, value ->> 0, value ->> 1 FROM json_each(?2) ORDER BY 2",
          this.segment, JSON.stringify(keys));
        this.recentIds = this.recentIds.slice(to + 1 - this.recentFrom);
        this.recentFrom = to + 1;
      } else {
        this.sql.exec("INSERT OR IGNORE INTO span_keys (segment, span_id, row) SELECT ?, span_id, rowid FROM stored_spans WHERE rowid > ? AND rowid <= ? ORDER BY span_id",
          this.segment, this.indexedTo, to);
      }
      this.sql.exec("INSERT INTO span_segments (segment, last_row) VALUES (?, ?) ON CONFLICT(segment) DO UPDATE SET last_row = excluded.last_row", this.segment, to);
      this.indexedTo = to;
    }
  }

  /** The body of stored span `spanId`, or null. */
  find(spanId: string): string | null {
    const indexed = this.sql.exec<{ body: string }>(
      `SELECT s.body AS body FROM span_segments g CROSS JOIN span_keys k ON k.segment = g.segment AND k.span_id = ?1
       CROSS JOIN stored_spans s ON s.rowid = k.row AND s.span_id = ?1 LIMIT 1`, spanId).toArray()[0];
    if (indexed) return indexed.body;
    const recent = this.sql.exec<{ body: string }>("SELECT body FROM stored_spans WHERE rowid > ? AND span_id = ? LIMIT 1", this.indexedTo, spanId).toArray()[0];
    return recent?.body ?? null;
  }

  /** Forgets the segments whose rows are all gone (after retention deleted them). */
  prune(): void {
    const first = this.sql.exec<{ r: number | null }>("SELECT min(rowid) AS r FROM stored_spans").one().r;
    if (first === null) return this.reset();
    const gone = "SELECT segment FROM span_segments WHERE last_row < ?";
    this.sql.exec(`DELETE FROM span_keys WHERE segment IN (${gone})`, first);
    this.sql.exec("DELETE FROM span_segments WHERE last_row < ? AND segment <> ?", first, this.segment);
  }

  private reset(): void {
    this.recentIds = [];
    this.recentFrom = 0;
    this.sql.exec("DELETE FROM span_keys");
    this.sql.exec("DELETE FROM span_segments");
    this.indexedTo = 0;
    this.segment = 0;
  }
}
