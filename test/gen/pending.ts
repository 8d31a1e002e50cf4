/**
 * Finished spans waiting to be handed out in the order agents emit them (end time, then
 * creation order). The model runs trace after trace, but traces overlap in time, so a span may
 * only leave once no later trace can still produce a span that ends before it.
 */
import type { ESpan } from "../../contract/espan.ts";
import type { NsClock } from "./clock.ts";
import type { Traffic, Truth } from "./traffic.ts";

/** Direct-mapped cache for emit-time BigInts: the spans of one batch share one emit time. */
const EMIT_CACHE = 64;

export class PendingSpans {
  private spans: ESpan[] = [];
  private end: number[] = [];
  private emit: number[] = [];
  private truth: Truth[] = [];
  private readonly cacheKey = new Array<number>(EMIT_CACHE).fill(-1);
  private readonly cacheVal = new Array<bigint>(EMIT_CACHE).fill(0n);

  constructor(private readonly clock: NsClock) {}

  push(s: ESpan, end: number, emit: number, truth: Truth): void {
    this.spans.push(s);
    this.end.push(end);
    this.emit.push(emit);
    this.truth.push(truth);
  }

  /** Appends to `out`, in (end, creation) order, every span that ends before `before`; keeps the rest in order. */
  release(before: number, out: Traffic): void {
    const { spans, end, emit, truth } = this;
    const ready: number[] = [];
    for (let i = 0; i < spans.length; i++) if (end[i] < before) ready.push(i);
    ready.sort((a, b) => end[a] - end[b] || a - b);

    const { cacheKey, cacheVal } = this;
    for (let k = 0; k < ready.length; k++) {
      const i = ready[k];
      const s = spans[i];
      out.spans.push(s);
      const e = emit[i];
      const slot = e % EMIT_CACHE;
      if (cacheKey[slot] !== e) {
        cacheKey[slot] = e;
        cacheVal[slot] = this.clock.bigint(e);
      }
      out.emitNs.push(cacheVal[slot]);
      out.truth.set(s.span_id, truth[i]);
    }

    // Keep the rest, compacted in place in creation order (later tie-breaks depend on it).
    let kept = 0;
    for (let i = 0; i < spans.length; i++) {
      if (end[i] < before) continue;
      spans[kept] = spans[i];
      end[kept] = end[i];
      emit[kept] = emit[i];
      truth[kept] = truth[i];
      kept++;
    }
    spans.length = end.length = emit.length = truth.length = kept;
  }
}
