/**
 * A batch's spans held as UTF-8 bytes plus the [start, end) of each span's JSON in them, so a
 * shard can hold a batch without holding eSpan objects or big strings. Held spans wait up to a
 * window (20 s by default: a million of them at 50k spans/s). As objects, about 13 heap objects
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
 * The spans of `bytes` located: `n` of them, in order, or undefined when it does not hold
 * exactly `n` (it always should: its text was parsed into these `n` spans).
 * - "array": a JSON array of span objects (`[{...},{...}]`);
 * - "doc": a JSON object whose (last) "spans" key is such an array (`{"spans":[...]}`);
 * - "ndjson": one span per non-blank line.
 */
export function locateSpans(bytes: Uint8Array, format: BatchFormat, n: number): Uint32Array | undefined {
  const bounds = new Uint32Array(2 * n);
  const found = format === "ndjson" ? scanLines(bytes, bounds) : scanJson(bytes, format === "doc", bounds);
  return found === n ? bounds : undefined;
}

const QUOTE = 0x22, BACKSLASH = 0x5c, COLON = 0x3a, NEWLINE = 0x0a, SPACE = 0x20;
/** "spans" in UTF-8. */
const SPANS_KEY = [0x73, 0x70, 0x61, 0x6e, 0x73];
// Byte classes, so that the scan does one table load per byte (a third faster than comparisons).
const PLAIN = 0, STRING = 1, OPEN = 2, CLOSE = 3;
const STRUCTURE = new Uint8Array(256);
STRUCTURE[QUOTE] = STRING;
STRUCTURE[0x7b] = STRUCTURE[0x5b] = OPEN; // { [
STRUCTURE[0x7d] = STRUCTURE[0x5d] = CLOSE; // } ]
const END_QUOTE = 1, ESCAPE = 2;
const IN_STRING = new Uint8Array(256);
IN_STRING[QUOTE] = END_QUOTE;
IN_STRING[BACKSLASH] = ESCAPE;
const isObjectByte = (c: number): boolean => c === 0x7b || c === 0x7d;

/** Non-blank lines as spans; returns how many there are (bounds filled up to its size). */
function scanLines(bytes: Uint8Array, bounds: Uint32Array): number {
  let found = 0;
  let start = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(NEWLINE, start);
    if (end < 0) end = bytes.length;
    let blank = true;
    for (let i = start; i < end && blank; i++) if (bytes[i] > SPACE) blank = false;
    if (!blank) {
      if (2 * found + 1 < bounds.length) {
        bounds[2 * found] = start;
        bounds[2 * found + 1] = end;
      }
      found++;
    }
    start = end + 1;
  }
  return found;
}

/**
 * The objects that are elements of the spans array: in "array" format the top-level array, in
 * "doc" format the value of the top-level object's "spans" key (the last one, as JSON.parse
 * keeps). Strings are skipped whole (escapes included); depth counts braces and brackets.
 * Returns how many there are, or -1 when the keys are beyond this scan (an escaped key).
 */
function scanJson(bytes: Uint8Array, doc: boolean, bounds: Uint32Array): number {
  const len = bytes.length;
  let found = 0;
  let depth = 0;
  /** The depth inside the spans array (its elements open at this depth), or -1 outside it. */
  let arrayDepth = -1;
  let lastKeyIsSpans = false;
  for (let i = 0; i < len; i++) {
    const c = bytes[i];
    const kind = STRUCTURE[c];
    if (kind === PLAIN) continue;
    if (kind === STRING) {
      const open = i;
      for (i++; i < len; i++) {
        const k = IN_STRING[bytes[i]];
        if (k === PLAIN) continue;
        if (k === END_QUOTE) break;
        i++; // an escape: skip the escaped byte
      }
      // A key of the top-level object: a string followed by a colon, at depth 1.
      if (doc && depth === 1) {
        let j = i + 1;
        while (j < len && bytes[j] <= SPACE) j++;
        if (bytes[j] === COLON) {
          // An escaped key could be "spans" to JSON.parse and not to this scan: not located.
          if (bytes.subarray(open, i).includes(BACKSLASH)) return -1;
          lastKeyIsSpans = isSpansKey(bytes, open + 1, i);
        }
      }
    } else if (kind === OPEN) {
      if (!isObjectByte(c) && arrayDepth < 0 && (doc ? depth === 1 && lastKeyIsSpans : depth === 0)) {
        arrayDepth = depth + 1;
        found = 0; // a later "spans" key wins
      } else if (isObjectByte(c) && depth === arrayDepth && 2 * found < bounds.length) bounds[2 * found] = i;
      depth++;
    } else {
      depth--;
      if (isObjectByte(c) && depth === arrayDepth) {
        if (2 * found + 1 < bounds.length) bounds[2 * found + 1] = i + 1;
        found++;
      } else if (!isObjectByte(c) && depth === arrayDepth - 1) arrayDepth = -1;
    }
  }
  return found;
}

function isSpansKey(bytes: Uint8Array, start: number, end: number): boolean {
  if (end - start !== SPANS_KEY.length) return false;
  for (let k = 0; k < SPANS_KEY.length; k++) if (bytes[start + k] !== SPANS_KEY[k]) return false;
  return true;
}
