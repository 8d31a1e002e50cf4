// Where each span's JSON lies in a batch's UTF-8 text (src/linker/span-text.ts says why a shard
// holds batches as bytes). Here, not in JS, because it reads every byte of every batch: a byte
// loop in WebAssembly is several times faster than the same loop over a Uint8Array in JS.
import { FORMAT_DOC, FORMAT_NDJSON } from "./layout";

const QUOTE: u32 = 0x22;
const BACKSLASH: u32 = 0x5c;
const COLON: u32 = 0x3a;
const NEWLINE: u32 = 0x0a;
const SPACE: u32 = 0x20;
const OPEN_OBJ: u32 = 0x7b;
const CLOSE_OBJ: u32 = 0x7d;
const OPEN_ARR: u32 = 0x5b;
const CLOSE_ARR: u32 = 0x5d;

/**
 * Writes [start, end) of each span of text[0, len) as u32 pairs at `out` (room for `n` pairs);
 * returns how many spans there are (only the first `n` written), or -1 when the text is beyond
 * this scan (an escaped top-level key, which JSON.parse could read as "spans").
 */
export function locate(text: usize, len: u32, format: u32, n: u32, out: usize): i32 {
  return format == FORMAT_NDJSON ? scanLines(text, len, n, out) : scanJson(text, len, format == FORMAT_DOC, n, out);
}

@inline function put(out: usize, n: u32, found: u32, start: u32, end: u32): void {
  if (found < n) {
    store<u32>(out + (<usize>found << 3), start);
    store<u32>(out + (<usize>found << 3) + 4, end);
  }
}

function scanLines(text: usize, len: u32, n: u32, out: usize): i32 {
  let found: u32 = 0;
  let start: u32 = 0;
  while (start < len) {
    let end = start;
    let blank = true;
    while (end < len) {
      const c = <u32>load<u8>(text + end);
      if (c == NEWLINE) break;
      if (c > SPACE) blank = false;
      end++;
    }
    if (!blank) {
      put(out, n, found, start, end);
      found++;
    }
    start = end + 1;
  }
  return <i32>found;
}

// Byte classes: one table load per byte instead of five comparisons. Set at each scan (cheap),
// since init zeroes the engine's memory.
const STRUCTURE = memory.data(256); // 1 a quote, 2 an opening, 3 a closing bracket or brace
const IN_STRING = memory.data(256); // 1 the closing quote, 2 a backslash

function setClasses(): void {
  store<u8>(STRUCTURE + QUOTE, 1);
  store<u8>(STRUCTURE + OPEN_OBJ, 2);
  store<u8>(STRUCTURE + OPEN_ARR, 2);
  store<u8>(STRUCTURE + CLOSE_OBJ, 3);
  store<u8>(STRUCTURE + CLOSE_ARR, 3);
  store<u8>(IN_STRING + QUOTE, 1);
  store<u8>(IN_STRING + BACKSLASH, 2);
}

function scanJson(text: usize, len: u32, doc: bool, n: u32, out: usize): i32 {
  setClasses();
  const end = text + len;
  let found: u32 = 0;
  let depth: i32 = 0;
  let arrayDepth: i32 = -1; // the depth of the spans array's elements, -1 outside it
  let lastKeyIsSpans = false;
  for (let p = text; p < end; p++) {
    const c = <u32>load<u8>(p);
    const kind = load<u8>(STRUCTURE + c);
    if (kind == 0) continue;
    if (kind == 1) {
      const open = p;
      let escaped = false;
      for (p++; p < end; p++) {
        const k = load<u8>(IN_STRING + <usize>load<u8>(p));
        if (k == 0) continue;
        if (k == 1) break;
        escaped = true;
        p++; // the escaped byte
      }
      // A key of the top-level object: a string followed by a colon, at depth 1.
      if (doc && depth == 1) {
        let q = p + 1;
        while (q < end && <u32>load<u8>(q) <= SPACE) q++;
        if (q < end && <u32>load<u8>(q) == COLON) {
          if (escaped) return -1;
          lastKeyIsSpans = p - open - 1 == 5 && isSpans(open + 1);
        }
      }
    } else if (kind == 2) {
      if (c == OPEN_ARR && arrayDepth < 0 && (doc ? depth == 1 && lastKeyIsSpans : depth == 0)) {
        arrayDepth = depth + 1;
        found = 0; // a later "spans" key wins, as in JSON.parse
      } else if (c == OPEN_OBJ && depth == arrayDepth) put(out, n, found, <u32>(p - text), 0);
      depth++;
    } else {
      depth--;
      if (c == CLOSE_OBJ && depth == arrayDepth) {
        if (found < n) store<u32>(out + (<usize>found << 3) + 4, <u32>(p - text) + 1);
        found++;
      } else if (c == CLOSE_ARR && depth == arrayDepth - 1) arrayDepth = -1;
    }
  }
  return <i32>found;
}

/** The five bytes at p are "spans". */
@inline function isSpans(p: usize): bool {
  return load<u32>(p) == 0x6e617073 && load<u8>(p + 4) == 0x73; // "span" little-endian, "s"
}
