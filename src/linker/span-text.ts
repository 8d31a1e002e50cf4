/**
 * A batch's spans held as UTF-8 bytes plus the [start, end) of each span's JSON in them (found
 * by the engine's scan, assembly/span-text.ts), so that a shard holds a batch without holding
 * eSpan objects or big strings. Held spans wait up to a window (20 s by default: a million of them at 50k spans/s). As objects, about 13 heap objects
 * each, the garbage collector traced them all (9.4% of workerd's time under load, pauses of
 * 100 ms and more: the ingest's ack p99). As one string per batch, V8 kept them in its large
 * object space, which made every later large allocation (each request body's decoding) five
 * times slower. As bytes in a few big buffers (an arena), they cost the collector nothing; the
 * few spans that are exported are decoded and parsed again.
 */
import type { ESpan } from "../../contract/espan.ts";

/** How a batch's text holds its spans. */
export type BatchFormat = "array" | "doc" | "ndjson";

/** A batch's spans: UTF-8 JSON, and the [start, end) of span i at bounds[2i], bounds[2i + 1]. */
export interface BatchBytes {
  bytes: Uint8Array;
  bounds: Uint32Array;
}

/** Arena chunks: a few megabytes each, so that buffers are rarely allocated and freed. */
const CHUNK_BYTES = 4 << 20;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Bump allocation of byte ranges in shared chunks. A range is a view of its chunk; a chunk is
 * freed by the collector once no range of it is held, so nothing here counts references.
 */
export class ByteArena {
  private chunk = new Uint8Array(0);
  private used = 0;

  /** `text` as UTF-8 in the arena. */
  encode(text: string): Uint8Array {
    // One byte per character when ASCII (the usual case); at most three per UTF-16 unit.
    for (const perChar of [1, 3]) {
      const room = this.take(text.length * perChar);
      const { read, written } = encoder.encodeInto(text, room);
      if (read === text.length) return this.giveBack(room, written);
      this.giveBack(room, 0);
    }
    throw new Error("unreachable: three bytes per UTF-16 unit always suffice");
  }

  /** A copy of the ranges [bounds[2i], bounds[2i + 1]) of `from` that `keep` selects, packed. */
  compact(from: BatchBytes, keep: (index: number) => boolean): BatchBytes {
    let size = 0;
    for (let i = 0; 2 * i < from.bounds.length; i++) if (keep(i)) size += from.bounds[2 * i + 1] - from.bounds[2 * i];
    const bytes = this.take(size);
    const bounds = new Uint32Array(from.bounds.length); // the others: [0, 0)
    let at = 0;
    for (let i = 0; 2 * i < bounds.length; i++) {
      if (!keep(i)) continue;
      const start = from.bounds[2 * i];
      const end = from.bounds[2 * i + 1];
      bytes.set(from.bytes.subarray(start, end), at);
      bounds[2 * i] = at;
      bounds[2 * i + 1] = at += end - start;
    }
    return { bytes, bounds };
  }

  private take(size: number): Uint8Array {
    if (this.used + size > this.chunk.length) {
      this.chunk = new Uint8Array(Math.max(CHUNK_BYTES, size));
      this.used = 0;
    }
    const range = this.chunk.subarray(this.used, this.used + size);
    this.used += size;
    return range;
  }

  /** The last range taken, cut to its first `size` bytes (the rest goes back to the chunk). */
  private giveBack(range: Uint8Array, size: number): Uint8Array {
    this.used -= range.length - size;
    return range.subarray(0, size);
  }
}

/** Span i's JSON text. */
export function spanText(b: BatchBytes, i: number): string {
  return decoder.decode(b.bytes.subarray(b.bounds[2 * i], b.bounds[2 * i + 1]));
}

/** Spans' JSON joined into the "array" format (the text a shard logs when a body is not kept as it came). */
export function spansText(spans: readonly ESpan[]): string {
  return `[${spans.map((s) => JSON.stringify(s)).join(",")}]`;
}

/**
 * Finds the [start, end) of each of `n` spans in a batch's bytes (as pairs), or answers
 * undefined when they do not hold exactly `n`: the engine's scan (assembly/span-text.ts).
 */
export type SpanLocator = (bytes: Uint8Array, format: BatchFormat, n: number) => Uint32Array | undefined;
