// One pass over a batch's bytes that checks them as JSON.parse + validateESpan would and, for
// each span, writes its packed form, its bounds and its engine input record. No objects are
// built: a shard needs a span's fields only for the engine (records) and its text only when it
// is exported. It measured ~10× cheaper than JSON.parse with the validator on the ingest bench.
//
// The fast path takes the common case and declines the rest (returns a negative reason), and the
// caller then runs the full parser (src/ingest/decode.ts), which gives every error text and every
// normalisation. So accepting must imply that JSON.parse would accept the body, validateESpan
// every span unchanged, and the records equal the engine glue's encoding of those spans. Whatever
// is less common than that is declined: escapes in keys, numbers not in plain integer form where
// the validator wants integers, nulls, upper-case hex, other top-level keys, a BOM, ...
//
// Modes: STRICT checks every field as the validator does (a request body). TRUSTED checks only
// the grammar and the fields the engine reads (spans the full parser validated and normalised
// already, or a shard's own log on replay).
import * as L from "../layout";
import {
  F_APP_PARENT_ID, F_APP_SAMPLED, F_APP_TRACE_ID, F_KIND, F_REQ_SEQ, F_RESP_SEQ, F_SPAN_ID, F_START_NS, F_THREAD_TRACE_ID,
  FIELD_COUNT, fieldKind, fieldOf, keyAt, keyLength, K_ATTRS, K_BOOL, K_CODE, K_HEX16, K_HEX16_NZ, K_HEX32_NZ, K_KIND, K_NONEMPTY, K_PORT,
  K_START, K_STATUS, K_STR, K_U32, K_U53, REQUIRED_MASK,
} from "./fields";
import { boundsBase, ensureSpans, inBase, outBase, recBase } from "./scratch";

/** Batch formats. */
export const FORMAT_DOC: i32 = 1; // {"spans": [...]}
export const FORMAT_ARRAY: i32 = 2; // [...]
export const FORMAT_NDJSON: i32 = 3; // one span per line
export const FORMAT_PACKED: i32 = 4; // packed spans back to back (a shard's log)

export const MODE_STRICT: i32 = 1;
export const MODE_TRUSTED: i32 = 2;

/** Why the fast path declined (negated as parse's result). */
export const NOT_JSON: i32 = 1; // malformed, or a form of JSON left to the full parser
export const INVALID: i32 = 2; // a field fails its check
export const NORMALISED: i32 = 3; // valid, but the validator would change it
export const SHAPE: i32 = 4; // a document shape left to the full parser
export const NOT_UTF8: i32 = 5;

/** Nesting the fast path follows (deeper: declined, for the full parser). */
const MAX_DEPTH: i32 = 64;

const QUOTE: u32 = 0x22, BACKSLASH: u32 = 0x5c, COMMA: u32 = 0x2c, COLON: u32 = 0x3a;
const OPEN_OBJ: u32 = 0x7b, CLOSE_OBJ: u32 = 0x7d, OPEN_ARR: u32 = 0x5b, CLOSE_ARR: u32 = 0x5d;
const NEWLINE: u32 = 0x0a;

/** Literals the parser matches as they are, quotes included where they have them. */
const LITERALS = '"entry","exit",true,false,null,"ok","error"';
const LIT_ENTRY = 0, LIT_EXIT = 1, LIT_TRUE = 2, LIT_FALSE = 3, LIT_NULL = 4, LIT_OK = 5, LIT_ERROR = 6, LIT_COUNT = 7;
const LIT_BYTES = memory.data(64);
const LIT_AT = memory.data(LIT_COUNT);
const LIT_LEN = memory.data(LIT_COUNT);

export function literalsInit(): void {
  const chars = changetype<usize>(LITERALS);
  const n = <u32>LITERALS.length;
  let lit = 0;
  let at: u32 = 0;
  let start: u32 = 0;
  for (let i: u32 = 0; i <= n; i++) {
    const c = i < n ? <u32>load<u16>(chars + (<usize>i << 1)) : COMMA;
    if (c == COMMA) {
      store<u8>(LIT_AT + <usize>lit, <u8>start);
      store<u8>(LIT_LEN + <usize>lit, <u8>(at - start));
      lit++;
      start = at;
    } else {
      store<u8>(LIT_BYTES + <usize>at, <u8>c);
      at++;
    }
  }
}

// ---- state of the current parse ----
let p: usize = 0; // read position
let end: usize = 0;
let o: usize = 0; // write position (packed output)
let why: i32 = 0;
let strict = true;
let packedIn = false;
/** Whitespace between tokens: 0 none (packed), 1 within a line (NDJSON), 2 JSON's. */
let wsMode: i32 = 2;
let spans: u32 = 0;
let firstRef: u32 = 0;
let arrival: i64 = 0;
// the string last scanned: its content [strAt, strAt + strLen), and whether it has escapes
let strAt: usize = 0;
let strLen: u32 = 0;
let strEscaped = false;
// the span being read
let seen: u32 = 0;
let flags: u32 = 0;
let rec: usize = 0;
/**
 * Keys in the order the last spans had them: for the field read last (+ 1; 0 at a span's
 * start), the field that came next (+ 1; 0 unknown). An agent writes its fields in one order,
 * so a key is first compared with the one predicted, as bytes, before it is scanned and looked up.
 */
const NEXT_FIELD = memory.data(FIELD_COUNT + 1);
let prevField: i32 = 0;
/** The low half of the last 32-digit hex string. */
let hexLo: u64 = 0;

/**
 * Parses the `len` bytes at the input buffer as `format`. Returns the number of spans (their
 * packed bytes from outBase, bounds and records in scratch), or -reason when declined.
 */
export function parse(len: usize, format: i32, mode: i32, refBase: u32, arrivalMs: i64): i32 {
  p = inBase;
  end = inBase + len;
  o = outBase;
  why = 0;
  strict = mode == MODE_STRICT;
  packedIn = format == FORMAT_PACKED;
  wsMode = packedIn ? 0 : format == FORMAT_NDJSON ? 1 : 2;
  spans = 0;
  hexBad = false;
  firstRef = refBase;
  arrival = arrivalMs;
  let ok: bool;
  if (format == FORMAT_NDJSON) ok = lines();
  else if (format == FORMAT_PACKED) ok = packed();
  else if (format == FORMAT_ARRAY) ok = array() && atEnd();
  else ok = doc() && atEnd();
  return ok ? <i32>spans : -(why != 0 ? why : NOT_JSON);
}

/** Where in the input the last parse declined (for diagnostics). */
export function declinedAt(): usize {
  return p - inBase;
}

/** Bytes of packed output of the last parse. */
export function packedLength(): usize {
  return o - outBase;
}

// ---- documents ----

function doc(): bool {
  skipWs();
  if (!at(OPEN_OBJ)) return fail(NOT_JSON);
  p++;
  skipWs();
  // Exactly one key, "spans" as is: any other key (JSON.parse keeps the last "spans") goes to the full parser.
  if (!at(QUOTE)) return fail(at(CLOSE_OBJ) ? SHAPE : NOT_JSON);
  if (!scanString(false)) return false;
  if (strEscaped || strLen != 5 || load<u32>(strAt) != 0x6e617073 || load<u8>(strAt + 4) != 0x73) return fail(SHAPE); // "spans"
  skipWs();
  if (!at(COLON)) return fail(NOT_JSON);
  p++;
  skipWs();
  if (!at(OPEN_ARR)) return fail(SHAPE);
  if (!array()) return false;
  skipWs();
  if (!at(CLOSE_OBJ)) return fail(at(COMMA) ? SHAPE : NOT_JSON);
  p++;
  return true;
}

/** `[span, ...]`, at '['. */
function array(): bool {
  skipWs();
  if (!at(OPEN_ARR)) return fail(NOT_JSON);
  p++;
  skipWs();
  if (at(CLOSE_ARR)) {
    p++;
    return true;
  }
  for (;;) {
    if (!at(OPEN_OBJ)) return fail(p < end && isValueStart(load<u8>(p)) ? INVALID : NOT_JSON);
    if (!span()) return false;
    skipWs();
    if (at(COMMA)) {
      p++;
      skipWs();
      continue;
    }
    if (at(CLOSE_ARR)) {
      p++;
      return true;
    }
    return fail(NOT_JSON);
  }
}

/** NDJSON: per line, a span or nothing (the full parser's blank lines are `trim() === ""`). */
function lines(): bool {
  while (true) {
    skipWs();
    if (p >= end) return true;
    const c = <u32>load<u8>(p);
    if (c == NEWLINE) {
      p++;
      continue;
    }
    if (c != OPEN_OBJ) return fail(NOT_JSON);
    if (!span()) return false;
    skipWs();
    if (p >= end) return true;
    if (<u32>load<u8>(p) != NEWLINE) return fail(NOT_JSON);
    p++;
  }
  return true;
}

/** Packed spans back to back, as a shard logs them. */
function packed(): bool {
  while (p < end) {
    if (!at(OPEN_OBJ)) return fail(NOT_JSON);
    if (!span()) return false;
  }
  return true;
}

@inline function atEnd(): bool {
  skipWs();
  return p == end || fail(NOT_JSON);
}

// ---- one span ----

/** A span object, at '{': checked, packed to the output, its bounds and record written. */
function span(): bool {
  ensureSpans(spans + 1, L.IN_SIZE);
  const start = o;
  rec = recBase + <usize>spans * L.IN_SIZE;
  for (let i: usize = 0; i < <usize>L.IN_SIZE; i += 8) store<u64>(rec + i, 0);
  seen = 0;
  prevField = 0;
  flags = 0;
  put(OPEN_OBJ);
  p++;
  skipWs();
  if (at(CLOSE_OBJ)) return fail(INVALID);
  if (!members()) return false;
  if ((seen & REQUIRED_MASK) != REQUIRED_MASK) return fail(INVALID);
  if (flags & L.IN_F_ENTRY && !(flags & L.IN_F_HAS_TID)) return fail(INVALID);
  store<i64>(rec + L.IN_ARRIVAL, arrival);
  store<u32>(rec + L.IN_REF, firstRef + spans);
  store<u32>(rec + L.IN_FLAGS, flags);
  const b = boundsBase + (<usize>spans << 3);
  store<u32>(b, <u32>(start - outBase));
  store<u32>(b, <u32>(o - outBase), 4);
  spans++;
  return true;
}

/** The span's members up to its closing brace (a function of its own: AssemblyScript drops code after a `break` out of `for (;;)`). */
function members(): bool {
  for (;;) {
    if (p >= end) return fail(NOT_JSON);
    const c = <u32>load<u8>(p);
    let f: i32 = -1;
    const guess = <i32>load<u8>(NEXT_FIELD + <usize>prevField) - 1;
    if (packedIn && c >= 1 && c <= <u32>FIELD_COUNT) {
      f = <i32>c - 1;
      p++;
    } else if (guess >= 0 && keyAt(p, guess)) {
      f = guess;
      p += keyLength(guess);
      skipWs();
    } else if (c == QUOTE) {
      const keyAt = p;
      if (!scanString(false)) return false;
      const keyEnd = p;
      if (strEscaped) {
        // "span\u005fid" is span_id to JSON.parse: a known field under another spelling.
        if (strict) return fail(SHAPE);
      } else f = fieldOf(strAt, strLen);
      skipWs();
      if (!at(COLON)) return fail(NOT_JSON);
      p++;
      skipWs();
      if (f < 0) {
        copy(keyAt, keyEnd - keyAt);
        put(COLON);
      }
    } else return fail(NOT_JSON);
    if (f >= 0) {
      const bit: u32 = 1 << <u32>f;
      if (seen & bit) return fail(SHAPE); // JSON.parse keeps the last: the full parser
      seen |= bit;
      store<u8>(NEXT_FIELD + <usize>prevField, <u8>(f + 1));
      prevField = f + 1;
      put(<u32>f + 1);
      if (!fieldValue(f)) return false;
    } else {
      // An unknown field: kept (and exported as an attribute). A null one the validator drops.
      if (p < end && <u32>load<u8>(p) == 0x6e && strict) return fail(NORMALISED);
      if (!value(1)) return false;
    }
    skipWs();
    if (p >= end) return fail(NOT_JSON);
    const d = <u32>load<u8>(p);
    if (d == COMMA) {
      put(COMMA);
      p++;
      skipWs();
      continue;
    }
    if (d == CLOSE_OBJ) {
      put(CLOSE_OBJ);
      p++;
      return true;
    }
    return fail(NOT_JSON);
  }
}

/** The value of known field `f`, at its first byte. */
function fieldValue(f: i32): bool {
  if (p >= end) return fail(NOT_JSON);
  // null: "is required", or an optional field the validator drops. Either way not as it came.
  if (<u32>load<u8>(p) == 0x6e) return fail(strict ? NORMALISED : INVALID);
  const kind = fieldKind(f);
  switch (kind) {
    case K_HEX16_NZ:
    case K_HEX16: {
      const v = hexString(16);
      if (why != 0) return false;
      if (kind == K_HEX16_NZ && v == 0) return fail(INVALID);
      if (f == F_SPAN_ID) store<u64>(rec + L.IN_SPAN_ID, v);
      else if (f == F_THREAD_TRACE_ID) {
        store<u64>(rec + L.IN_TID, v);
        flags |= L.IN_F_HAS_TID;
      } else if (f == F_APP_PARENT_ID) {
        store<u64>(rec + L.IN_APP_PARENT, v);
        flags |= L.IN_F_APP_PARENT;
      }
      return true;
    }
    case K_HEX32_NZ: {
      const hi = hexString(32);
      if (why != 0) return false;
      const lo = hexLo;
      if (hi == 0 && lo == 0) return fail(INVALID);
      store<u64>(rec + L.IN_APP_HI, hi);
      store<u64>(rec + L.IN_APP_LO, lo);
      flags |= L.IN_F_APP_TRACE;
      return true;
    }
    case K_KIND: {
      // "entry" or "exit", as they are (an escaped spelling goes to the full parser).
      if (matches(LIT_ENTRY)) flags |= L.IN_F_ENTRY;
      else if (!matches(LIT_EXIT)) return fail(INVALID);
      return true;
    }
    case K_START: {
      if (!at(QUOTE)) return fail(strict ? (isNumberStart(load<u8>(p)) ? NORMALISED : INVALID) : INVALID);
      if (!scanString(true)) return false;
      const v = decimal(strAt, strLen);
      if (why != 0) return false;
      store<u64>(rec + L.IN_START, v);
      return true;
    }
    case K_U32: {
      if (!strict && f != F_REQ_SEQ && f != F_RESP_SEQ) return value(1);
      const v = integer(10, 0xffffffff);
      if (v < 0) return false;
      if (f == F_REQ_SEQ) store<u32>(rec + L.IN_KEY, <u32>v);
      else if (f == F_RESP_SEQ) store<u32>(rec + L.IN_KEY + 4, <u32>v);
      return true;
    }
    case K_BOOL: {
      if (matches(LIT_TRUE)) flags |= L.IN_F_HAS_SAMPLED | L.IN_F_SAMPLED;
      else if (matches(LIT_FALSE)) flags |= L.IN_F_HAS_SAMPLED;
      else return fail(INVALID);
      return true;
    }
  }
  // Fields the engine does not read: checked in STRICT mode only.
  if (!strict) return value(1);
  switch (kind) {
    case K_U53:
      return integer(15, 999_999_999_999_999) >= 0;
    case K_PORT:
      return integer(5, 65535) >= 0;
    case K_CODE:
      return integer(3, 999) >= 0;
    case K_STR:
    case K_NONEMPTY: {
      if (!at(QUOTE)) return fail(INVALID);
      if (!scanString(true)) return false;
      return kind == K_STR || strLen > 0 || fail(INVALID);
    }
    case K_STATUS: {
      return matches(LIT_OK) || matches(LIT_ERROR) || fail(INVALID);
    }
    case K_ATTRS:
      return attributes();
  }
  return fail(INVALID);
}

/** STRICT attributes: an object whose values are strings, numbers or booleans. */
function attributes(): bool {
  if (!at(OPEN_OBJ)) return fail(INVALID);
  put(OPEN_OBJ);
  p++;
  skipWs();
  if (at(CLOSE_OBJ)) {
    put(CLOSE_OBJ);
    p++;
    return true;
  }
  for (;;) {
    if (!at(QUOTE)) return fail(NOT_JSON);
    if (!scanString(true)) return false;
    skipWs();
    if (!at(COLON)) return fail(NOT_JSON);
    put(COLON);
    p++;
    skipWs();
    if (p >= end) return fail(NOT_JSON);
    const c = <u32>load<u8>(p);
    if (c == OPEN_OBJ || c == OPEN_ARR || c == 0x6e) return fail(INVALID);
    if (!value(2)) return false;
    skipWs();
    if (at(COMMA)) {
      put(COMMA);
      p++;
      skipWs();
      continue;
    }
    if (at(CLOSE_OBJ)) {
      put(CLOSE_OBJ);
      p++;
      return true;
    }
    return fail(NOT_JSON);
  }
}

// ---- any JSON value (copied to the output without whitespace) ----

function value(depth: i32): bool {
  if (p >= end) return fail(NOT_JSON);
  const c = <u32>load<u8>(p);
  if (c == QUOTE) return scanString(true);
  if (c == OPEN_OBJ || c == OPEN_ARR) {
    if (depth >= MAX_DEPTH) return fail(SHAPE);
    const close = c + 2; // '}' or ']'
    put(c);
    p++;
    skipWs();
    if (at(close)) {
      put(close);
      p++;
      return true;
    }
    for (;;) {
      if (c == OPEN_OBJ) {
        if (!at(QUOTE)) return fail(NOT_JSON);
        if (!scanString(true)) return false;
        skipWs();
        if (!at(COLON)) return fail(NOT_JSON);
        put(COLON);
        p++;
        skipWs();
      }
      if (!value(depth + 1)) return false;
      skipWs();
      if (at(COMMA)) {
        put(COMMA);
        p++;
        skipWs();
        continue;
      }
      if (at(close)) {
        put(close);
        p++;
        return true;
      }
      return fail(NOT_JSON);
    }
  }
  if (c == 0x74) return literal(LIT_TRUE);
  if (c == 0x66) return literal(LIT_FALSE);
  if (c == 0x6e) return literal(LIT_NULL);
  if (isNumberStart(c)) return number();
  return fail(NOT_JSON);
}

@inline function literal(lit: i32): bool {
  return matches(lit) || fail(NOT_JSON);
}

/** Whether literal `lit` comes next, as it is; if so, copied and passed. */
function matches(lit: i32): bool {
  const len = <usize>load<u8>(LIT_LEN + <usize>lit);
  if (p + len > end || memory.compare(p, LIT_BYTES + <usize>load<u8>(LIT_AT + <usize>lit), len) != 0) return false;
  copy(p, len);
  p += len;
  return true;
}

/** A JSON number (any form), copied. */
function number(): bool {
  const start = p;
  if (at(0x2d)) p++;
  if (p >= end) return fail(NOT_JSON);
  let c = <u32>load<u8>(p);
  if (c == 0x30) p++;
  else if (c - 0x31 < 9) {
    while (p < end && <u32>load<u8>(p) - 0x30 < 10) p++;
  } else return fail(NOT_JSON);
  if (at(0x2e)) {
    p++;
    if (p >= end || <u32>load<u8>(p) - 0x30 >= 10) return fail(NOT_JSON);
    while (p < end && <u32>load<u8>(p) - 0x30 < 10) p++;
  }
  if (p < end && (<u32>load<u8>(p) | 0x20) == 0x65) {
    p++;
    if (at(0x2b) || at(0x2d)) p++;
    if (p >= end || <u32>load<u8>(p) - 0x30 >= 10) return fail(NOT_JSON);
    while (p < end && <u32>load<u8>(p) - 0x30 < 10) p++;
  }
  copy(start, p - start);
  return true;
}

/**
 * An integer field in plain form (digits, no sign, fraction or exponent, at most `maxDigits`),
 * at most `max`: its value, copied; else -1 with `why` set (another form of a number is
 * declined as NORMALISED: it may be valid, 1.0 or 1e3, the full parser decides).
 */
function integer(maxDigits: u32, max: i64): i64 {
  const start = p;
  const e = end;
  let q = start;
  let v: i64 = 0;
  while (q < e) {
    const d = <u32>load<u8>(q) - 0x30;
    if (d >= 10) break;
    v = v * 10 + <i64>d;
    q++;
  }
  p = q;
  const digits = <u32>(q - start);
  if (digits > maxDigits) {
    fail(INVALID);
    return -1;
  }
  if (digits == 0 || (digits > 1 && load<u8>(start) == 0x30)) {
    fail(q < e && isNumberStart(load<u8>(q)) ? NORMALISED : INVALID);
    return -1;
  }
  if (q < e) {
    const c = <u32>load<u8>(q) | 0x20;
    if (c == 0x2e || c == 0x65) {
      fail(NORMALISED);
      return -1;
    }
  }
  if (v > max) {
    fail(INVALID);
    return -1;
  }
  copy(start, digits);
  return v;
}

/** start_ns's digits (canonical: no leading zero, at most 20 digits, within 64 bits). */
function decimal(at: usize, len: u32): u64 {
  if (len == 0 || len > 20) {
    fail(INVALID);
    return 0;
  }
  let v: u64 = 0;
  for (let i: u32 = 0; i < len; i++) {
    const d = <u32>load<u8>(at + i) - 0x30;
    if (d >= 10) {
      fail(INVALID);
      return 0;
    }
    if (i == 19) {
      // the 20th digit: v*10 + d must stay within 2^64 - 1 (v ≤ 1844674407370955161, d ≤ 5 at the edge)
      if (v > 1844674407370955161 || (v == 1844674407370955161 && d > 5)) {
        fail(INVALID);
        return 0;
      }
    }
    v = v * 10 + <u64>d;
  }
  if (len > 1 && load<u8>(at) == 0x30) fail(NORMALISED);
  return v;
}

/** A string of `n` lower-case hex digits (16 or 32): its value (32: the high half; hexLo the low). */
function hexString(n: u32): u64 {
  if (!at(QUOTE) || p + n + 2 > end || <u32>load<u8>(p + n + 1) != QUOTE) {
    fail(INVALID);
    return 0;
  }
  const hi = hex16At(p + 1);
  const lo = n == 32 ? hex16At(p + 17) : 0;
  if (hexBad) {
    // Upper-case hex is valid for ids but span_id (the validator lower-cases them): the full parser.
    let upper = false;
    for (let i: u32 = 0; i < n; i++) if (<u32>load<u8>(p + 1 + i) - 0x41 < 6) upper = true;
    fail(upper ? NORMALISED : INVALID);
    return 0;
  }
  copy(p, n + 2);
  p += n + 2;
  hexLo = lo;
  return hi;
}

/** Set by hex16At when a byte was not a lower-case hex digit. */
let hexBad = false;

/**
 * Sixteen lower-case hex digits at `at` as a number: checked all at once (SIMD), digits made
 * from bytes ('0'-'9': low nibble; 'a'-'f': low nibble + 9), then packed pairwise (SWAR).
 */
@inline function hex16At(at: usize): u64 {
  const v = v128.load(at);
  const digit = v128.and(i8x16.ge_u(v, ZEROS_ASCII), i8x16.le_u(v, NINES_ASCII));
  const letter = v128.and(i8x16.ge_u(v, A_ASCII), i8x16.le_u(v, F_ASCII));
  hexBad = hexBad || !i8x16.all_true(v128.or(digit, letter));
  const d = i8x16.add(v128.and(v, LOW_NIBBLES), v128.and(letter, NINES));
  return (pack8(i64x2.extract_lane(d, 0)) << 32) | pack8(i64x2.extract_lane(d, 1));
}

/** Eight bytes of nibbles (the first byte the most significant digit) as a 32-bit number. */
@inline function pack8(w: i64): u64 {
  let t = <u64>w;
  t = ((t << 4) | (t >> 8)) & 0x00ff00ff00ff00ff;
  t = ((t << 8) | (t >> 16)) & 0x0000ffff0000ffff;
  return ((t << 16) | (t >> 32)) & 0xffffffff;
}

const ZEROS_ASCII = i8x16.splat(0x30);
const NINES_ASCII = i8x16.splat(0x39);
const A_ASCII = i8x16.splat(0x61);
const F_ASCII = i8x16.splat(0x66);
const LOW_NIBBLES = i8x16.splat(0x0f);
const NINES = i8x16.splat(9);

// ---- strings ----

/**
 * A string at '"': checked as JSON.parse would (escapes, no raw control characters, UTF-8),
 * its content noted in strAt/strLen/strEscaped, copied when `keep`.
 */
function scanString(keep: bool): bool {
  const start = p;
  const e = end;
  let q = p + 1;
  strAt = q;
  strEscaped = false;
  for (;;) {
    // Sixteen bytes at a time up to the first '"', '\\', control or non-ASCII byte (a signed
    // byte below 0x20 is either). Reads up to 15 bytes past the end: the buffer has SLACK.
    while (q < e) {
      const v = v128.load(q);
      const special = v128.or(v128.or(i8x16.eq(v, QUOTES), i8x16.eq(v, BACKSLASHES)), i8x16.lt_s(v, SPACES));
      const mask = i8x16.bitmask(special);
      if (mask != 0) {
        q += <usize>ctz(mask);
        break;
      }
      q += 16;
    }
    if (q >= e) {
      p = q;
      return fail(NOT_JSON);
    }
    const c = <u32>load<u8>(q);
    if (c == QUOTE) break;
    if (c == BACKSLASH) {
      strEscaped = true;
      if (q + 1 >= e) return fail(NOT_JSON);
      const x = <u32>load<u8>(q + 1);
      if (x == 0x75) {
        if (q + 6 > e) return fail(NOT_JSON);
        for (let i = 2; i < 6; i++) if (!isHex(load<u8>(q + i))) return fail(NOT_JSON);
        q += 6;
      } else if (x == QUOTE || x == BACKSLASH || x == 0x2f || x == 0x62 || x == 0x66 || x == 0x6e || x == 0x72 || x == 0x74) q += 2;
      else return fail(NOT_JSON);
      continue;
    }
    if (c < 0x20) {
      p = q;
      return fail(NOT_JSON);
    }
    p = q;
    if (!utf8Sequence()) return false;
    q = p;
  }
  strLen = <u32>(q - strAt);
  p = q + 1;
  if (keep) copy(start, p - start);
  return true;
}

const QUOTES = i8x16.splat(0x22);
const BACKSLASHES = i8x16.splat(0x5c);
const SPACES = i8x16.splat(0x20);

/** One multi-byte UTF-8 sequence at p (as the fatal TextDecoder takes them: RFC 3629). */
function utf8Sequence(): bool {
  const c = <u32>load<u8>(p);
  let n: u32;
  let lo: u32 = 0x80;
  let hi: u32 = 0xbf;
  if (c - 0xc2 < 0x1e) n = 1;
  else if (c - 0xe0 < 0x10) {
    n = 2;
    if (c == 0xe0) lo = 0xa0;
    else if (c == 0xed) hi = 0x9f; // no surrogates
  } else if (c - 0xf0 < 5) {
    n = 3;
    if (c == 0xf0) lo = 0x90;
    else if (c == 0xf4) hi = 0x8f;
  } else return fail(NOT_UTF8);
  if (p + n >= end) return fail(NOT_UTF8);
  const c1 = <u32>load<u8>(p + 1);
  if (c1 < lo || c1 > hi) return fail(NOT_UTF8);
  for (let i: u32 = 2; i <= n; i++) if ((<u32>load<u8>(p + i) & 0xc0) != 0x80) return fail(NOT_UTF8);
  p += n + 1;
  return true;
}

// ---- small helpers ----

@inline function at(c: u32): bool {
  return p < end && <u32>load<u8>(p) == c;
}

@inline function isHex(c: u32): bool {
  return c - 0x30 < 10 || (c | 0x20) - 0x61 < 6;
}

@inline function isNumberStart(c: u32): bool {
  return c == 0x2d || c - 0x30 < 10;
}

@inline function isValueStart(c: u32): bool {
  return c == QUOTE || c == OPEN_ARR || isNumberStart(c) || c == 0x74 || c == 0x66 || c == 0x6e;
}

@inline function skipWs(): void {
  if (wsMode == 0) return;
  while (p < end) {
    const c = <u32>load<u8>(p);
    if (c == 0x20 || c == 0x09 || c == 0x0d || (c == NEWLINE && wsMode == 2)) p++;
    else break;
  }
}

@inline function put(c: u32): void {
  store<u8>(o, <u8>c);
  o++;
}

/**
 * Copies `n` bytes to the output. Runs are short (a value, a key): eight bytes at a time, the
 * last word running past the end (the buffers have SLACK bytes of room for it); memory.copy is a
 * call into the runtime each time, and cost more than the rest of the parse.
 */
@inline function copy(from: usize, n: usize): void {
  let d = o;
  let s = from;
  const stop = o + n;
  while (d < stop) {
    store<u64>(d, load<u64>(s));
    d += 8;
    s += 8;
  }
  o = stop;
}

/** Records why the fast path declines (the first reason found), and returns false. */
function fail(reason: i32): bool {
  if (why == 0) why = reason;
  return false;
}
