/**
 * The bodies of a shard's spans, from their acceptance until they are done (exported or sampled
 * out): the engine knows a span by a number (its ref), this maps the number back to the span's
 * text and to the done bit of its batch's log row. A batch is held as one block of packed spans
 * in the fast path's memory (span-parser.ts), not as objects or a string on the JS heap: held
 * spans wait up to a window (a million of them at 50k spans/s and 20 s), and as objects the
 * garbage collector traced every one (GC pauses up to 158 ms, the ack p99), as a string per
 * batch each was a large object mapped and faulted in afresh (~1 ms per batch on this VM). A
 * span's text is expanded and parsed again only when it is exported.
 */

/** Where held spans live (SpanParser). */
export interface HeldBlocks {
  spanJson(block: number, index: number): string;
  compact(block: number, done: Uint8Array): number;
  release(block: number): void;
  blockSize(block: number): number;
}

export interface HeldBatch {
  seq: number;
  firstRef: number;
  count: number;
  /** The block holding the batch's spans; 0 once every span is done (read only spans not done). */
  block: number;
  done: Uint8Array;
  remaining: number;
  /** The block is compacted once `remaining` falls to half of this (then this becomes `remaining`). */
  compactFrom: number;
}

export class SpanBodies {
  private readonly batches: HeldBatch[] = []; // in ref order
  private readonly bySeq = new Map<number, HeldBatch>();
  private readonly dirty = new Set<HeldBatch>();
  private ref = 0;
  /** Bytes of the blocks held (what the spans not done take in memory). */
  bytes = 0;

  constructor(private readonly blocks: HeldBlocks) {}

  /** The ref the next batch's first span gets (refs are consecutive, in the order batches are added). */
  get nextRef(): number {
    return this.ref;
  }

  /**
   * Registers a logged batch of `count` spans, whose block `block` makes (asked only when some
   * span is not done: a replayed batch may be done already); returns its first ref.
   */
  add(seq: number, count: number, block: () => number, done: Uint8Array): number {
    const firstRef = this.ref;
    this.ref += count;
    let remaining = 0;
    for (let i = 0; i < count; i++) if (!bit(done, i)) remaining++;
    const b: HeldBatch = { seq, firstRef, count, block: 0, done, remaining, compactFrom: count };
    if (remaining > 0) {
      b.block = block();
      this.bytes += this.blocks.blockSize(b.block);
      this.compactIfHalfDone(b);
    }
    this.batches.push(b);
    this.bySeq.set(seq, b);
    return firstRef;
  }

  /** A span's JSON (as it came, or as the full parser encoded it); the span must not be done. */
  text(batch: HeldBatch, index: number): string {
    return this.blocks.spanJson(batch.block, index);
  }

  /** The batch and index of a ref, or undefined when that batch was dropped. */
  find(ref: number): { batch: HeldBatch; index: number } | undefined {
    const bs = this.batches;
    let lo = 0;
    let hi = bs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const b = bs[mid];
      if (ref < b.firstRef) hi = mid - 1;
      else if (ref >= b.firstRef + b.count) lo = mid + 1;
      else return { batch: b, index: ref - b.firstRef };
    }
    return undefined;
  }

  isDone(batch: HeldBatch, index: number): boolean {
    return bit(batch.done, index);
  }

  markDone(batch: HeldBatch, index: number): void {
    if (bit(batch.done, index)) return;
    batch.done[index >> 3] |= 1 << (index & 7);
    this.dirty.add(batch);
    if (--batch.remaining > 0) this.compactIfHalfDone(batch);
    else this.drop(batch);
  }

  /**
   * Half the batch is done (client-rooted traces settle in seconds, the rest waits out the
   * window): a block of what remains, without the rest. Each compaction copies at most half of
   * what the last one kept, so all of a batch's copies come to less than its size.
   */
  private compactIfHalfDone(batch: HeldBatch): void {
    if (batch.remaining > batch.compactFrom >> 1) return;
    this.bytes -= this.blocks.blockSize(batch.block);
    batch.block = this.blocks.compact(batch.block, batch.done);
    this.bytes += this.blocks.blockSize(batch.block);
    batch.compactFrom = batch.remaining;
  }

  private drop(batch: HeldBatch): void {
    if (batch.block === 0) return;
    this.bytes -= this.blocks.blockSize(batch.block);
    this.blocks.release(batch.block);
    batch.block = 0;
  }

  /**
   * Writes the done bits of every batch whose bits changed since the last call (kept in a set:
   * this runs after every batch and message, and scanning every held batch each time would not
   * scale). A write that throws leaves its batch and the ones not yet written dirty, for the next
   * call (a storage write that failed must not be forgotten: a restart would export those spans
   * again), and the error goes on to the caller.
   */
  persistDirty(write: (b: HeldBatch) => void): void {
    for (const b of this.dirty) {
      write(b);
      this.dirty.delete(b);
    }
  }

  fullyDone(seq: number): boolean {
    const b = this.bySeq.get(seq);
    return b === undefined || b.remaining === 0;
  }

  /** Forgets batches the log dropped. */
  forget(keep: (seq: number) => boolean): void {
    for (let i = this.batches.length - 1; i >= 0; i--) {
      const b = this.batches[i];
      if (!keep(b.seq)) {
        this.drop(b);
        this.batches.splice(i, 1);
        this.bySeq.delete(b.seq);
        this.dirty.delete(b);
      }
    }
  }

  get held(): number {
    let n = 0;
    for (const b of this.batches) n += b.remaining;
    return n;
  }
}

const bit = (bits: Uint8Array, i: number): boolean => (bits[i >> 3] & (1 << (i & 7))) !== 0;
