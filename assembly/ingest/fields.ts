// The eSpan fields the ingest's fast path knows (ESPAN.md; contract/espan.ts REQUIRED then
// OPTIONAL, in that order), how each is checked, and their tokens in the packed form.
//
// Packed form: a span's JSON with whitespace outside strings dropped and each known top-level
// key (`"span_id":`) replaced by one byte, its token: the field's index + 1. Bytes below 0x20
// never occur in packed JSON otherwise (JSON forbids them raw inside strings, and the whitespace
// is gone), so a token cannot be mistaken for content. The tokens are FROZEN: shards log batches
// in packed form, and a replay reads them back with this table. A new field goes at the end.

/** Checks, one per field (the validator's, as the fast path applies them). */
export const K_HEX16_NZ: u8 = 1; // 16 lower-case hex digits, not all zero
export const K_KIND: u8 = 2; // "entry" | "exit"
export const K_U32: u8 = 3; // integer 0..4294967295
export const K_START: u8 = 4; // decimal string, canonical, fits in 64 bits
export const K_U53: u8 = 5; // integer ≥ 0
export const K_NONEMPTY: u8 = 6; // non-empty string
export const K_STR: u8 = 7; // string
export const K_PORT: u8 = 8; // integer 0..65535
export const K_HEX16: u8 = 9; // 16 lower-case hex digits (upper case is valid but normalised)
export const K_CODE: u8 = 10; // integer 0..999
export const K_STATUS: u8 = 11; // "ok" | "error"
export const K_HEX32_NZ: u8 = 12; // 32 lower-case hex digits, not all zero
export const K_BOOL: u8 = 13; // true | false
export const K_ATTRS: u8 = 14; // object of string, number and boolean values

export const F_SPAN_ID: i32 = 0;
export const F_KIND: i32 = 1;
export const F_REQ_SEQ: i32 = 2;
export const F_RESP_SEQ: i32 = 3;
export const F_START_NS: i32 = 4;
export const F_THREAD_TRACE_ID: i32 = 16;
export const F_APP_TRACE_ID: i32 = 25;
export const F_APP_PARENT_ID: i32 = 26;
export const F_APP_SAMPLED: i32 = 27;
export const FIELD_COUNT: i32 = 29;
/** Fields 0..15 are required. */
export const REQUIRED_MASK: u32 = 0xffff;

/** Names in token order, comma-separated (read once into byte tables by fieldsInit). */
const NAMES =
  "span_id,kind,req_seq,resp_seq,start_ns,duration_ns,host,pid,tid,process_name,service,src_ip,dst_ip,src_port,dst_port,l7_proto," +
  "thread_trace_id,operation,http_method,http_route,http_status_code,http_version,bytes_read,bytes_written,status,app_trace_id," +
  "app_parent_id,app_sampled,attributes";

/** Per field: the check. */
const KINDS = memory.data<u8>([
  K_HEX16_NZ, K_KIND, K_U32, K_U32, K_START, K_U53, K_NONEMPTY, K_U32, K_U32, K_STR, K_NONEMPTY, K_STR, K_STR, K_PORT, K_PORT, K_NONEMPTY,
  K_HEX16, K_STR, K_STR, K_STR, K_CODE, K_STR, K_U53, K_U53, K_STATUS, K_HEX32_NZ, K_HEX16_NZ, K_BOOL, K_ATTRS,
]);

/** Name bytes, and per field its offset and length in them. */
const NAME_BYTES = memory.data(512); // the names take 258
const NAME_AT = memory.data(FIELD_COUNT * 2);
const NAME_LEN = memory.data(FIELD_COUNT);
/** Per field its key as JSON writes it, `"name":`, at KEY_AT + 24·f (8 bytes of zeros after: word compares). */
const KEY_STRIDE: usize = 24;
const KEY_AT = memory.data(FIELD_COUNT * <i32>KEY_STRIDE + 8);
/** Open-addressed hash of names → field + 1 (0: empty). */
const HASH_SLOTS: u32 = 128;
const HASH = memory.data(HASH_SLOTS);

@inline export function fieldKind(f: i32): u8 {
  return load<u8>(KINDS + <usize>f);
}
@inline export function nameAt(f: i32): usize {
  return NAME_BYTES + <usize>load<u16>(NAME_AT + (<usize>f << 1));
}
@inline export function nameLen(f: i32): u32 {
  return load<u8>(NAME_LEN + <usize>f);
}

@inline function hashOf(at: usize, len: u32): u32 {
  return (len * 31 + <u32>load<u8>(at) * 7 + <u32>load<u8>(at + len - 1) * 3 + <u32>load<u8>(at + (len >> 1))) & (HASH_SLOTS - 1);
}

export function fieldsInit(): void {
  const names = changetype<usize>(NAMES);
  const chars = <u32>NAMES.length;
  let f = 0;
  let at: u32 = 0;
  let start: u32 = 0;
  for (let i: u32 = 0; i <= chars; i++) {
    const c = i < chars ? <u32>load<u16>(names + (<usize>i << 1)) : 0x2c;
    if (c == 0x2c) {
      store<u16>(NAME_AT + (<usize>f << 1), <u16>start);
      store<u8>(NAME_LEN + <usize>f, <u8>(at - start));
      f++;
      start = at;
    } else {
      store<u8>(NAME_BYTES + <usize>at, <u8>c);
      at++;
    }
  }
  for (let g = 0; g < FIELD_COUNT; g++) {
    const key = KEY_AT + <usize>g * KEY_STRIDE;
    store<u8>(key, 0x22);
    memory.copy(key + 1, nameAt(g), nameLen(g));
    store<u16>(key + 1 + nameLen(g), 0x3a22); // ":
    let h = hashOf(nameAt(g), nameLen(g));
    while (load<u8>(HASH + <usize>h) != 0) h = (h + 1) & (HASH_SLOTS - 1);
    store<u8>(HASH + <usize>h, <u8>(g + 1));
  }
}

/**
 * Whether the input at `at` begins with field `f`'s key as JSON writes it, `"name":` (then
 * `at + keyLength(f)` is its value). Reads up to 7 bytes past the key: the input has slack.
 */
@inline export function keyAt(at: usize, f: i32): bool {
  const key = KEY_AT + <usize>f * KEY_STRIDE;
  const len = <usize>nameLen(f) + 3;
  let i: usize = 0;
  for (; i + 8 <= len; i += 8) if (load<u64>(at + i) != load<u64>(key + i)) return false;
  const rest = len - i;
  if (rest == 0) return true;
  const mask: u64 = (<u64>1 << (<u64>rest << 3)) - 1;
  return ((load<u64>(at + i) ^ load<u64>(key + i)) & mask) == 0;
}

@inline export function keyLength(f: i32): usize {
  return <usize>nameLen(f) + 3;
}

/** The field whose name is the `len` bytes at `at`, or -1. */
export function fieldOf(at: usize, len: u32): i32 {
  if (len < 3 || len > 16) return -1;
  let h = hashOf(at, len);
  let g = <i32>load<u8>(HASH + <usize>h);
  while (g != 0) {
    const f = g - 1;
    if (nameLen(f) == len && memory.compare(nameAt(f), at, len) == 0) return f;
    h = (h + 1) & (HASH_SLOTS - 1);
    g = <i32>load<u8>(HASH + <usize>h);
  }
  return -1;
}

export function fieldCount(): i32 {
  return FIELD_COUNT;
}
