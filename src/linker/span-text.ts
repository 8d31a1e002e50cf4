/**
 * Where each span's JSON lies in a batch's text, so a shard can hold a batch as its one string
 * plus offsets instead of as eSpan objects. Held spans wait up to a window (20 s by default, a
 * million of them at 50k spans/s): as objects, about 13 heap objects each, every one of which the
 * garbage collector marks and moves until it dies (measured under the ingest bench: GC 9% of
 * workerd's thread, pauses up to 158 ms, the ack p99); as text, a batch is one string. Only the
 * few spans that are exported are parsed again. (Held as UTF-8 bytes instead, sent to the shard
 * as bytes and scanned in WebAssembly, the shard measured a quarter slower: ArrayBuffers of
 * every body cost more to move over RPC, to log and to hold than one string.)
 */
import type { ESpan } from "../../contract/espan.ts";

/** How a batch's text holds its spans. */
export type BatchFormat = "array" | "doc" | "ndjson";

/** A batch's text and the [start, end) of each of its spans' JSON in it. */
export interface BatchText {
  text: string;
  bounds: Uint32Array;
}

/**
 * The spans of `text` located: `n` of them, in order, or undefined when the text does not hold
 * exactly `n` (it always should: `text` was parsed into these `n` spans).
 * - "array": a JSON array of span objects (`[{...},{...}]`);
 * - "doc": a JSON object whose (last) "spans" key is such an array (`{"spans":[...]}`);
 * - "ndjson": one span per non-blank line.
 */
export function locateSpans(text: string, format: BatchFormat, n: number): BatchText | undefined {
  const bounds = new Uint32Array(2 * n);
  const found = format === "ndjson" ? scanLines(text, bounds) : scanJson(text, format === "doc", bounds);
  return found === n ? { text, bounds } : undefined;
}

/** Spans encoded into a text of their own ("array" format). */
export function encodeSpans(spans: readonly ESpan[]): BatchText {
  return joinSpans(spans.map((s) => JSON.stringify(s)));
}

/** Spans' JSON texts joined into one "array" text. */
export function joinSpans(texts: readonly string[]): BatchText {
  const bounds = new Uint32Array(2 * texts.length);
  let at = 1; // after "["
  texts.forEach((t, i) => {
    bounds[2 * i] = at;
    bounds[2 * i + 1] = at + t.length;
    at += t.length + 1; // and a comma
  });
  return { text: `[${texts.join(",")}]`, bounds };
}

/**
 * The spans `keep` selects, in a text of their own (the rest's bounds become [0, 0)): what a
 * batch holds once half its spans are done, so that the spans waiting out a window do not keep
 * their whole batch's text alive.
 */
export function compactSpans(body: BatchText, keep: (index: number) => boolean): BatchText {
  const kept: number[] = [];
  for (let i = 0; 2 * i < body.bounds.length; i++) if (keep(i)) kept.push(i);
  const joined = joinSpans(kept.map((i) => body.text.slice(body.bounds[2 * i], body.bounds[2 * i + 1])));
  const bounds = new Uint32Array(body.bounds.length);
  kept.forEach((i, k) => bounds.set(joined.bounds.subarray(2 * k, 2 * k + 2), 2 * i));
  return { text: joined.text, bounds };
}

const QUOTE = 0x22, BACKSLASH = 0x5c, COLON = 0x3a;
const OPEN_OBJ = 0x7b, CLOSE_OBJ = 0x7d, OPEN_ARR = 0x5b, CLOSE_ARR = 0x5d;

/** Non-blank lines as spans; returns how many there are (bounds filled up to its size). */
function scanLines(text: string, bounds: Uint32Array): number {
  let found = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    if (text.slice(start, end).trim() !== "") {
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
 * Returns how many there are, or -1 when a top-level key is escaped (beyond this scan).
 */
function scanJson(text: string, doc: boolean, bounds: Uint32Array): number {
  let found = 0;
  let depth = 0;
  /** The depth inside the spans array (its elements open at this depth), or -1 outside it. */
  let arrayDepth = -1;
  let lastKey = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      // A key of the top-level object: the string before a colon at depth 1.
      if (doc && depth === 1) {
        let j = end + 1;
        while (j < text.length && text.charCodeAt(j) <= 0x20) j++;
        if (text.charCodeAt(j) === COLON) {
          lastKey = text.slice(i + 1, end);
          // An escaped key could be "spans" to JSON.parse and not to this scan: not located.
          if (lastKey.includes("\\")) return -1;
        }
      }
      i = end;
    } else if (c === OPEN_OBJ || c === OPEN_ARR) {
      if (c === OPEN_ARR && arrayDepth < 0 && (doc ? depth === 1 && lastKey === "spans" : depth === 0)) {
        arrayDepth = depth + 1;
        found = 0; // a later "spans" key wins
      } else if (c === OPEN_OBJ && depth === arrayDepth) {
        if (2 * found < bounds.length) bounds[2 * found] = i;
      }
      depth++;
    } else if (c === CLOSE_OBJ || c === CLOSE_ARR) {
      depth--;
      if (c === CLOSE_OBJ && depth === arrayDepth) {
        if (2 * found + 1 < bounds.length) bounds[2 * found + 1] = i + 1;
        found++;
      } else if (c === CLOSE_ARR && depth === arrayDepth - 1) arrayDepth = -1;
    }
  }
  return found;
}

/** The index of the quote closing the string that opens at `open`. */
function stringEnd(text: string, open: number): number {
  let at = open;
  for (;;) {
    at = text.indexOf('"', at + 1);
    if (at < 0) return text.length;
    let slashes = 0;
    while (text.charCodeAt(at - 1 - slashes) === BACKSLASH) slashes++;
    if ((slashes & 1) === 0) return at;
  }
}
