/**
 * Decided spans waiting for export, one queue per trace store shard (the shard of their trace
 * id), so that an export step writes one store: a step whose spans spread over every store
 * shard made one write, RPC and SQLite commit (a WAL write and an fsync, ~0.5-1 ms) per store
 * shard, and at sampling 0.1 those commits outnumbered the ingest's own.
 */
export interface Queued {
  /** The trace store shard the span goes to. */
  store: number;
}

export class ExportQueues<T extends Queued> {
  private readonly queues: T[][];
  private total = 0;

  constructor(stores: number) {
    this.queues = Array.from({ length: stores }, () => []);
  }

  push(item: T): void {
    this.queues[item.store].push(item);
    this.total++;
  }

  /** Spans waiting, in all queues. */
  get length(): number {
    return this.total;
  }

  /** Spans waiting in the longest queue (what the next step would take). */
  get longest(): number {
    let n = 0;
    for (const q of this.queues) if (q.length > n) n = q.length;
    return n;
  }

  /** Up to `n` spans from the front of the longest queue (all of one store shard). */
  take(n: number): T[] {
    let best = this.queues[0];
    for (const q of this.queues) if (q.length > best.length) best = q;
    const items = best.splice(0, n);
    this.total -= items.length;
    return items;
  }

  /** Spans of one step back at the front of their queue (the step failed: they go first next time). */
  putBack(items: T[]): void {
    if (items.length === 0) return;
    this.queues[items[0].store].unshift(...items);
    this.total += items.length;
  }
}
