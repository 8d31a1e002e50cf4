// The shipping stage: spans → batches (by size, or after flush_interval) → the spool queue →
// one POST at a time, acting on what sender.ts made of the answer. The last stage: it is
// handed nothing after it.
import type { ESpan } from "../../../contract/espan.ts";
import type { SpanSink } from "../link/thread.ts";
import { JsonBatchBuilder } from "./json-batch.ts";
import { backoffMs, DEFAULT_BACKOFF, type BackoffPolicy } from "./retry.ts";
import type { SendResult, Sender } from "./sender.ts";
import type { Spool } from "./spool.ts";

export interface ShipperOptions {
  batchSize: number;
  flushIntervalMs: number;
  backoff?: BackoffPolicy;
  log?: (line: string) => void;
  random?: () => number;
}

export interface ShipperStats {
  /** Spans the ingest accepted. */
  sent: number;
  /** Spans the ingest refused for good (a 400's rejected list, 415, ...). */
  rejected: number;
  /** POSTs that failed and will be retried. */
  retries: number;
  batches: number;
  /** Spans waiting in the current partial batch. */
  pending: number;
}

const LOG_EVERY_MS = 60_000;

export class Shipper implements SpanSink {
  readonly stats: ShipperStats = { sent: 0, rejected: 0, retries: 0, batches: 0, pending: 0 };
  /** The partial batch, as JSON written span by span (json-batch.ts says why). */
  private readonly batch = new JsonBatchBuilder();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private attempt = 0;
  private abort = new AbortController();
  private readonly sleepers = new Set<() => void>();
  private readonly lastLog = new Map<string, number>();
  private readonly backoff: BackoffPolicy;

  constructor(
    private readonly sender: Sender,
    private readonly spool: Spool,
    private readonly opts: ShipperOptions,
  ) {
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
  }

  write(span: ESpan): void {
    this.batch.add(span);
    if (this.batch.length >= this.opts.batchSize) this.flushBatch();
    else if (!this.timer) this.timer = setTimeout(() => this.flushBatch(), this.opts.flushIntervalMs);
    this.stats.pending = this.batch.length;
  }

  /** Moves the partial batch to the queue now. */
  flushBatch(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.batch.length === 0) return;
    this.stats.pending = 0;
    this.stats.batches++;
    this.spool.push(this.batch.take());
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    this.loop = this.run();
  }

  /**
   * Sends what it can until `deadlineMs` from now, then stops; what is left goes to the spool
   * directory (or is counted as dropped when there is none).
   */
  async stop(deadlineMs = 3000): Promise<void> {
    this.flushBatch();
    const deadline = Date.now() + deadlineMs;
    // Only while the ingest is answering: a failing one would just use up the deadline.
    while (this.spool.length > 0 && Date.now() < deadline && this.attempt === 0) {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.running = false;
    this.abort.abort();
    for (const wake of [...this.sleepers]) wake();
    await this.loop;
    const lost = this.spool.spillAll();
    if (lost > 0) this.opts.log?.(`ship: ${lost} spans could not be kept (no spool directory, or it is full)`);
  }

  private async run(): Promise<void> {
    while (this.running) {
      // Wait for a batch; the sleep lets stop() end the wait (it wakes sleepers).
      if (this.spool.length === 0) await Promise.race([this.spool.whenNotEmpty(), this.sleep(1000)]);
      if (!this.running) return;
      const batch = this.spool.peek();
      if (!batch) continue;
      let r: SendResult;
      try {
        r = await this.sender.send(batch, this.abort.signal);
      } catch (e) {
        // Not an answer (encoding failed, a bug): keep the batch and back off like a failure.
        r = { kind: "retry", detail: `send: ${(e as Error).message}` };
      }
      if (!this.running && r.kind === "retry") return; // aborted at stop: the batch stays queued
      switch (r.kind) {
        case "ok":
          this.spool.ack();
          this.stats.sent += batch.length;
          this.attempt = 0;
          break;
        case "rejected": {
          const bad = new Set(r.indexes);
          this.stats.rejected += bad.size;
          this.logEvery("rejected", `ship: the ingest rejected ${bad.size} of ${batch.length} spans, resending the rest: ${r.detail}`);
          const kept: number[] = [];
          for (let i = 0; i < batch.length; i++) if (!bad.has(i)) kept.push(i);
          this.spool.replaceHead([batch.pick(kept)]);
          break;
        }
        case "too_large":
          if (batch.length > 1) {
            const half = Math.ceil(batch.length / 2);
            this.spool.replaceHead([batch.slice(0, half), batch.slice(half)]);
          } else {
            this.stats.rejected += 1;
            this.logEvery("too_large", "ship: the ingest refused a single span as too large (413); dropped");
            this.spool.ack();
          }
          break;
        case "permanent":
          this.stats.rejected += batch.length;
          this.logEvery("permanent", `ship: the ingest refused a batch of ${batch.length} for good; dropped: ${r.detail}`);
          this.spool.ack();
          break;
        case "refused":
          this.stats.retries++;
          this.attempt++;
          this.logEvery("refused", `ship: the ingest refuses the agent (check token and trace_server); spans kept, retrying slowly: ${r.detail}`);
          await this.sleep(this.backoff.maxMs);
          break;
        case "retry": {
          this.stats.retries++;
          const wait = r.retryAfterMs !== undefined
            ? Math.min(r.retryAfterMs, this.backoff.maxRetryAfterMs)
            : backoffMs(this.attempt, this.backoff, this.opts.random);
          this.attempt++;
          this.logEvery("retry", `ship: ${r.detail}; retrying in ${wait} ms`);
          await this.sleep(wait);
          break;
        }
      }
    }
  }

  /** A wait that stop() cuts short. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  /** The same kind of trouble is logged at most once a minute. */
  private logEvery(kind: string, line: string): void {
    const now = Date.now();
    if (now - (this.lastLog.get(kind) ?? -Infinity) < LOG_EVERY_MS) return;
    this.lastLog.set(kind, now);
    this.opts.log?.(line);
  }
}
