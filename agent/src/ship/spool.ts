// The batches waiting to be shipped: a FIFO held in memory up to `maxMemorySpans`, spilling to
// a spool directory up to `maxDiskBytes`; a batch is dropped (and counted) only when both are
// full. The directory survives the agent: what it holds is replayed at the next start, and a
// clean stop writes what is still in memory there. A batch is removed only once the ingest
// acknowledged it, so a crash may send a batch twice, never lose a spilled one; the linker
// links a duplicate span_id once (DESIGN.md).
//
// On disk a batch is one file, `<ms>-<seq>-<spans>.json.gz` (gzip of {"spans":[...]}), written
// to a temporary name and renamed, so a crash mid-write leaves no half batch. Names sort in
// queue order across restarts.
import { gunzipSync } from "node:zlib";
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { JsonBatch } from "./json-batch.ts";

export interface SpoolOptions {
  maxMemorySpans: number;
  /** "" or undefined: no disk. */
  dir?: string;
  maxDiskBytes: number;
  log?: (line: string) => void;
}

export interface SpoolStats {
  memory_spans: number;
  disk_spans: number;
  disk_bytes: number;
  /** Spans dropped because memory and disk were both full. */
  dropped: number;
  /** Spans read back from disk at start. */
  replayed: number;
}

interface Entry {
  batch?: JsonBatch;
  file?: string;
  count: number;
  bytes: number;
}

const FILE = /^(\d+)-(\d+)-(\d+)\.json\.gz$/;

export class Spool {
  private readonly queue: Entry[] = [];
  private memorySpans = 0;
  private diskSpans = 0;
  private diskBytes = 0;
  private seq = 0;
  private readonly stat = { dropped: 0, replayed: 0 };
  private dirReady = false;
  private waiting: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(private readonly opts: SpoolOptions) {}

  get stats(): SpoolStats {
    return {
      memory_spans: this.memorySpans,
      disk_spans: this.diskSpans,
      disk_bytes: this.diskBytes,
      dropped: this.stat.dropped,
      replayed: this.stat.replayed,
    };
  }

  get length(): number {
    return this.queue.length;
  }

  /** Queues what an earlier run left in the directory (oldest first). */
  replay(): void {
    const dir = this.opts.dir;
    if (!dir) return;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return; // no directory yet: nothing to replay
    }
    const files = names.filter((n) => FILE.test(n)).sort(byQueueOrder);
    for (const name of files) {
      const count = Number(FILE.exec(name)![3]);
      const bytes = statSync(join(dir, name)).size;
      this.queue.push({ file: name, count, bytes });
      this.diskSpans += count;
      this.diskBytes += bytes;
      this.stat.replayed += count;
    }
    this.dirReady = true;
    this.wake();
  }

  /** Appends a batch: memory if it fits, else disk if it fits, else dropped (counted). */
  push(batch: JsonBatch): void {
    if (batch.length === 0) return;
    if (this.memorySpans + batch.length <= this.opts.maxMemorySpans) {
      this.queue.push({ batch, count: batch.length, bytes: 0 });
      this.memorySpans += batch.length;
    } else if (!this.spill(batch, "push")) {
      this.stat.dropped += batch.length;
    }
    this.wake();
  }

  /** The oldest batch (read from disk when it was spilled), without removing it. */
  peek(): JsonBatch | undefined {
    for (;;) {
      const head = this.queue[0];
      if (!head) return undefined;
      if (head.batch) return head.batch;
      try {
        const gz = readFileSync(join(this.opts.dir!, head.file!));
        const batch = JsonBatch.fromBody(gunzipSync(gz), gz);
        // Now in memory; the file stays until the batch is acknowledged.
        head.batch = batch;
        return batch;
      } catch (e) {
        this.opts.log?.(`spool: unreadable ${head.file} dropped: ${(e as Error).message}`);
        this.stat.dropped += head.count;
        this.removeHead();
      }
    }
  }

  /** The head batch was delivered (or dropped for good): forget it. */
  ack(): void {
    this.removeHead();
  }

  /** Replaces the head batch by these (a 400's survivors, a 413's halves). */
  replaceHead(batches: JsonBatch[]): void {
    this.removeHead();
    const entries = batches.filter((b) => b.length > 0).map((batch) => ({ batch, count: batch.length, bytes: 0 }));
    this.queue.unshift(...entries);
    for (const e of entries) this.memorySpans += e.count;
  }

  /** Resolves when a batch is queued (or at once if one is). */
  whenNotEmpty(): Promise<void> {
    if (this.queue.length > 0) return Promise.resolve();
    if (!this.waiting) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.waiting = { promise, resolve };
    }
    return this.waiting.promise;
  }

  /** Writes every in-memory batch to disk (clean stop). Returns the spans that could not be
   * kept (no directory, or full); they are counted as dropped. */
  spillAll(): number {
    let lost = 0;
    for (const e of this.queue) {
      if (!e.batch || e.file) continue;
      if (this.spill(e.batch, "stop")) {
        this.memorySpans -= e.count;
      } else {
        lost += e.count;
        this.memorySpans -= e.count;
      }
    }
    this.queue.length = 0;
    this.stat.dropped += lost;
    return lost;
  }

  private removeHead(): void {
    const head = this.queue.shift();
    if (!head) return;
    if (head.file) {
      this.diskSpans -= head.count;
      this.diskBytes -= head.bytes;
      try {
        unlinkSync(join(this.opts.dir!, head.file));
      } catch {
        // already gone
      }
    } else {
      this.memorySpans -= head.count;
    }
  }

  /** Writes a batch file; appends an entry to the queue unless `why` is "stop". */
  private spill(batch: JsonBatch, why: "push" | "stop"): boolean {
    const dir = this.opts.dir;
    if (!dir) return false;
    const body = batch.gzipped();
    if (this.diskBytes + body.length > this.opts.maxDiskBytes) return false;
    try {
      if (!this.dirReady) {
        mkdirSync(dir, { recursive: true });
        this.dirReady = true;
      }
      const name = `${Date.now()}-${String(this.seq++).padStart(6, "0")}-${batch.length}.json.gz`;
      const tmp = join(dir, `.${name}.tmp`);
      writeFileSync(tmp, body);
      renameSync(tmp, join(dir, name));
      this.diskSpans += batch.length;
      this.diskBytes += body.length;
      if (why === "push") this.queue.push({ file: name, count: batch.length, bytes: body.length });
      return true;
    } catch (e) {
      this.opts.log?.(`spool: cannot write to ${dir}: ${(e as Error).message}`);
      return false;
    }
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.resolve();
  }
}

/** Oldest first: by the time, then the sequence number, in the name. */
function byQueueOrder(a: string, b: string): number {
  const [, ta, sa] = FILE.exec(a)!;
  const [, tb, sb] = FILE.exec(b)!;
  return Number(ta) - Number(tb) || Number(sa) - Number(sb);
}
