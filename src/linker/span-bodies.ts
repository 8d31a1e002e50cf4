/**
 * The bodies of a shard's spans, from their acceptance until they are done (exported or sampled
 * out): the engine knows a span by a number (its ref), this maps the number back to the eSpan
 * and to the done bit of its batch's log row. A batch is held as its text (span-text.ts: one
 * string, not thousands of objects for the garbage collector to trace); a span's text is parsed
 * again when it is exported.
 */
import { compactSpans, type BatchText } from "./span-text.ts";

export interface HeldBatch {
  seq: number;
  firstRef: number;
  count: number;
  /** The batch's spans as text; null once every span is done (read only spans not done). */
  body: BatchText | null;
  done: Uint8Array;
  remaining: number;
  /** The body is compacted once `remaining` falls to half of this (then this becomes `remaining`). */
  compactFrom: number;
  dirty: boolean;
}

export class SpanBodies {
  private readonly batches: HeldBatch[] = []; // in ref order
  private readonly bySeq = new Map<number, HeldBatch>();
  private readonly dirty = new Set<HeldBatch>();
  private nextRef = 0;
  /** Characters of the bodies held (what the spans not done take in memory: a byte each when ASCII). */
  chars = 0;

  /**
   * Registers a logged batch of `count` spans, whose text `body` gives (asked only when some
   * span is not done: a replayed batch may be done already); returns their refs (consecutive).
   */
  add(seq: number, count: number, body: () => BatchText, done: Uint8Array): number[] {
    const firstRef = this.nextRef;
    this.nextRef += count;
    let remaining = 0;
    for (let i = 0; i < count; i++) if (!bit(done, i)) remaining++;
    const b: HeldBatch = { seq, firstRef, count, body: null, done, remaining, compactFrom: count, dirty: false };
    if (remaining > 0) {
      b.body = body();
      this.chars += b.body.text.length;
      this.compactIfHalfDone(b);
    }
    this.batches.push(b);
    this.bySeq.set(seq, b);
    return Array.from({ length: count }, (_, i) => firstRef + i);
  }

  /** A span's JSON (as it came, or as encoded when it had to be); the span must not be done. */
  text(batch: HeldBatch, index: number): string {
    const { text, bounds } = batch.body!;
    return text.slice(bounds[2 * index], bounds[2 * index + 1]);
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
    batch.dirty = true;
    this.dirty.add(batch);
    if (--batch.remaining > 0) this.compactIfHalfDone(batch);
    else {
      this.chars -= batch.body!.text.length;
      batch.body = null;
    }
  }

  /**
   * Half the batch is done (client-rooted traces settle in seconds, the rest waits out the
   * window): the text of what remains, without the rest. Each compaction copies at most half of
   * what the last one kept, so all of a batch's copies come to less than its size.
   */
  private compactIfHalfDone(batch: HeldBatch): void {
    if (batch.remaining > batch.compactFrom >> 1) return;
    this.chars -= batch.body!.text.length;
    batch.body = compactSpans(batch.body!, (i) => !bit(batch.done, i));
    this.chars += batch.body.text.length;
    batch.compactFrom = batch.remaining;
  }

  /** Batches whose done bits changed since the last call (kept in a set: this runs after every
   *  batch and message, and scanning every held batch each time would not scale). */
  takeDirty(): HeldBatch[] {
    const out = [...this.dirty];
    this.dirty.clear();
    for (const b of out) b.dirty = false;
    return out;
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
        if (b.body) this.chars -= b.body.text.length;
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
