/**
 * The bodies of a shard's spans, from their acceptance until they are done (exported or sampled
 * out): the engine knows a span by a number (its ref), this maps the number back to the eSpan
 * and to the done bit of its batch's log row.
 */
import type { ESpan } from "../../contract/espan.ts";

export interface HeldBatch {
  seq: number;
  firstRef: number;
  count: number;
  /** null once every span is done; before that, a done span's slot is emptied (read only slots not done). */
  spans: ESpan[] | null;
  done: Uint8Array;
  remaining: number;
  dirty: boolean;
}

export class SpanBodies {
  private readonly batches: HeldBatch[] = []; // in ref order
  private readonly bySeq = new Map<number, HeldBatch>();
  private readonly dirty = new Set<HeldBatch>();
  private nextRef = 0;

  /** Registers a logged batch; returns the refs of its spans (consecutive). */
  add(seq: number, spans: ESpan[], done: Uint8Array): number[] {
    const firstRef = this.nextRef;
    this.nextRef += spans.length;
    let remaining = 0;
    for (let i = 0; i < spans.length; i++) if (!bit(done, i)) remaining++;
    const b: HeldBatch = { seq, firstRef, count: spans.length, spans: remaining > 0 ? spans : null, done, remaining, dirty: false };
    this.batches.push(b);
    this.bySeq.set(seq, b);
    return Array.from({ length: spans.length }, (_, i) => firstRef + i);
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
    // Released one by one: a batch with one span waiting out the window holds only that one.
    if (--batch.remaining === 0) batch.spans = null;
    else (batch.spans as (ESpan | undefined)[])[index] = undefined;
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
