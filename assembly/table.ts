// Multi-map from a u64 key to span records, in buckets of one cache line, after Facebook's F14
// tables (Bronson and Shi, "Open-sourcing F14", 2019): a probe reads one 64-byte bucket, compares
// its 12 one-byte tags at once (SIMD), and reads a record only on a tag match. A bucket that had
// to pass entries on to the next one counts them (its overflow count), so a probe stops at the
// first bucket whose count is zero, deletion just clears a tag (no tombstones, no shifting), and
// an insert never moves another entry.
//
// Why not Robin Hood linear probing (the previous table): at a million held spans its inserts
// shifted whole clusters and its deletions shifted runs back, a fifth of the engine's time
// (BENCHMARKS.md); here an insert or a deletion touches one bucket, almost always its home.
// A bucket costs 64 bytes for 12 entries: 6.7 bytes an entry at the 80% bound, 10 just after
// growing by half (8-byte Robin Hood slots: 10 and 15).
//
// Roles: an entry is role A or B by its record's flags (a table's shape says which), and a role B
// entry's tag has bit 0x40 flipped, so a probe for one role never reads the records of the other
// under the same key (ROLE_EITHER probes both at once). The net table's role B is a conflict (a
// third span of a net group, which never links): it is filed under its key mixed with its span
// id, so that spans flooding one key (bad input) do not chain (each insert and scan would walk
// them all: time quadratic in their number) and are found, as duplicates or by messages, by key
// and span id. The thread table's roles are owners (A) and members (B): the head of a group's
// list of waiting members under the thread id itself, next to its owner; stubs (members whose
// home is another shard) otherwise filed apart by thread id and span id, for the same reason.
// A probe for a role also matches entries of other keys, or filed apart, whose tag happens to
// equal its own, as any tag match can; the record's key and flags tell them apart.
//
// Bucket layout: bytes 0..11 the tags (0 = empty slot; else 0x80 | 7 bits of the key's hash,
// bit 0x40 flipped for role B),
// byte 12 the overflow count (saturates at 255 and then stays: probes just go on further),
// 13..15 unused, 16..63 the 12 record indices (u32).
// A table is three header words from `h`: base, bucket count, entry count. The home bucket of a
// hash is `hash_hi * buckets >> 32` (Lemire's fastrange), so the bucket count need not be a power
// of two and a table grows by half again.
import { allocExact, freeExact } from "./alloc";
import { hget, hset } from "./header";
import { mix64, SALT_ALT, SALT_TABLE } from "./ids";
import { rp, R_FLAGS } from "./record";

const T_BASE = 0;
const T_BUCKETS = 1;
const T_COUNT = 2;
const BUCKET_SHIFT: u32 = 6;
const SLOTS: u32 = 12;
const SLOT_MASK: i32 = (1 << SLOTS) - 1;
const OVERFLOW_AT: usize = 12;
const IDX_AT: usize = 16;
const SATURATED: u32 = 255;
/** The tag flip of role B (role A: 0). */
export const ROLE_B: u8 = 0x40;
/** A probe for both roles at once (never a role of an entry). */
export const ROLE_EITHER: u8 = 0x01;

/**
 * A table's shape, one constant (a constant expression at its definition, so it folds):
 * `keyAt | altAt << 8 | roleMask << 16 | roleWant << 32 | keyFlags << 48`. Its entries' key is the
 * record's word at `keyAt`; an entry is role B when its record's flags & `roleMask` == `roleWant`;
 * a role B entry is filed under its key mixed with the record's word at `altAt` (`altKey`), or
 * under its key itself when its flags have any of `keyFlags`.
 */
@inline function keyAtOf(shape: u64): u32 {
  return <u32>shape & 0xff;
}
@inline function altAtOf(shape: u64): u32 {
  return <u32>(shape >> 8) & 0xff;
}
@inline function roleOf(shape: u64, p: usize): u8 {
  return ((<u32>load<u16>(p + R_FLAGS) & (<u32>(shape >> 16) & 0xffff)) == (<u32>(shape >> 32) & 0xffff)) ? ROLE_B : 0;
}
/** The key a role B entry with the word `alt` at altAt is filed under. */
@inline export function altKey(key: u64, alt: u64): u64 {
  return key ^ mix64(alt ^ SALT_ALT);
}
/** The key record `p` is filed under, in its role. */
@inline function fileKey(shape: u64, p: usize, role: u8): u64 {
  const key = load<u64>(p + keyAtOf(shape));
  const apart = role != 0 && (<u32>load<u16>(p + R_FLAGS) & <u32>(shape >> 48)) == 0;
  return apart ? altKey(key, load<u64>(p + altAtOf(shape))) : key;
}
/** The hash of the key record `p` is filed under, in its role. */
@inline function filedHash(shape: u64, p: usize): u64 {
  return hashOf(fileKey(shape, p, roleOf(shape, p)));
}
/** Grow at 80% of the slots, by half again. */
const MAX_LOAD_NUM: u64 = 4;
const MAX_LOAD_DEN: u64 = 5;

export function tableInit(h: i32, entries: u32): void {
  const buckets = max<u32>(1, (entries + SLOTS - 1) / SLOTS);
  hset(h + T_BASE, <u64>allocExact(<usize>buckets << BUCKET_SHIFT));
  hset(h + T_BUCKETS, buckets);
  hset(h + T_COUNT, 0);
}

/** Bytes the table's buckets take. */
export function tableBytes(h: i32): u64 {
  return hget(h + T_BUCKETS) << BUCKET_SHIFT;
}

/** Entries the table has room for. */
export function tableSlots(h: i32): u32 {
  return <u32>hget(h + T_BUCKETS) * SLOTS;
}

/** Entries the table holds. */
export function tableCount(h: i32): u64 {
  return hget(h + T_COUNT);
}

@inline function hashOf(key: u64): u64 {
  return mix64(key ^ SALT_TABLE);
}
@inline function tagOf(hash: u64): u8 {
  return <u8>(0x80 | (<u32>hash & 0x7f));
}
@inline function homeOf(hash: u64, buckets: u32): u32 {
  return <u32>(((hash >> 32) * <u64>buckets) >> 32);
}
@inline function bucketAt(base: usize, b: u32): usize {
  return base + (<usize>b << BUCKET_SHIFT);
}
@inline function nextBucket(b: u32, buckets: u32): u32 {
  return b + 1 == buckets ? 0 : b + 1;
}
/** Bit i set: slot i holds tag `tag` (tag 0: slot i is empty). */
@inline function slotsWith(bp: usize, tag: u8): i32 {
  return i8x16.bitmask(i8x16.eq(v128.load(bp), i8x16.splat(<i8>tag))) & SLOT_MASK;
}
/** Bit i set: slot i holds a tag whose bits in `bits` are those of `tag` (a probe in either role ignores the role bit). */
@inline function slotsLike(bp: usize, tag: u8, bits: u8): i32 {
  return i8x16.bitmask(i8x16.eq(v128.and(v128.load(bp), i8x16.splat(<i8>bits)), i8x16.splat(<i8>tag))) & SLOT_MASK;
}
@inline function overflowOf(bp: usize): u32 {
  return <u32>load<u8>(bp + OVERFLOW_AT);
}
@inline function idxAt(bp: usize, slot: i32): u32 {
  return load<u32>(bp + IDX_AT + (<usize>slot << 2));
}

/** Touches the home bucket of `key` in table `h` (group prefetching loads it ahead of a probe). */
@inline export function homeSlot(h: i32, key: u64): u64 {
  return touchHome(h, hashOf(key));
}
@inline function touchHome(h: i32, hash: u64): u64 {
  return load<u64>(bucketAt(<usize>hget(h + T_BASE), homeOf(hash, <u32>hget(h + T_BUCKETS))));
}

/** Touches the home bucket record `idx` is filed under in table `h` of shape `shape` (ahead of its removal). */
@inline export function filedSlot(h: i32, shape: u64, idx: u32): u64 {
  return touchHome(h, filedHash(shape, rp(idx)));
}

// A probe over the records of one key in one role: `for (let q = probeFirst(h, keyAt, key, role);
// q != 0; q = probeNext())`. The cursor lives in these globals for the loop only (never across calls, so a
// snapshot of memory still holds all state); the table must not change while it runs.
let pBase: usize = 0;
let pBuckets: u32 = 0;
let pBucket: u32 = 0;
let pLeft: u32 = 0; // buckets not yet visited (a saturated chain stops after the whole table)
let pMask: i32 = 0; // tag matches of the current bucket not yet returned
let pTag: u8 = 0;
let pBits: u8 = 0; // the tag bits compared: all, or all but the role bit (ROLE_EITHER)
let pKeyAt: u32 = 0;
let pKey: u64 = 0;

/** The first record under `key` in role `role` (0, ROLE_B or ROLE_EITHER) of table `h` (key at `keyAt` in the record), or 0. */
@inline export function probeFirst(h: i32, keyAt: u32, key: u64, role: u8): u32 {
  return probeFiled(h, keyAt, key, key, role);
}

/** The first record filed under `filed` in role `role` whose key is `key` (role B entries filed by `altKey`), or 0. */
export function probeFiled(h: i32, keyAt: u32, filed: u64, key: u64, role: u8): u32 {
  const hash = hashOf(filed);
  pBase = <usize>hget(h + T_BASE);
  pBuckets = <u32>hget(h + T_BUCKETS);
  pBucket = homeOf(hash, pBuckets);
  pLeft = pBuckets - 1;
  const either = role == ROLE_EITHER;
  pBits = either ? ~ROLE_B : 0xff;
  pTag = (tagOf(hash) ^ (either ? 0 : role)) & pBits;
  pMask = slotsLike(bucketAt(pBase, pBucket), pTag, pBits);
  pKeyAt = keyAt;
  pKey = key;
  return probeNext();
}

/** The next record under the probe's key, or 0 at the end. Records are read on tag matches only. */
export function probeNext(): u32 {
  for (;;) {
    const bp = bucketAt(pBase, pBucket);
    while (pMask != 0) {
      const slot = ctz(pMask);
      pMask &= pMask - 1;
      const idx = idxAt(bp, slot);
      if (load<u64>(rp(idx) + pKeyAt) == pKey) return idx;
    }
    if (overflowOf(bp) == 0 || pLeft == 0) return 0;
    pLeft--;
    pBucket = nextBucket(pBucket, pBuckets);
    pMask = slotsLike(bucketAt(pBase, pBucket), pTag, pBits);
  }
  return 0; // not reached (AssemblyScript wants a return after an endless loop)
}

/** Puts record `idx` into table `h` of shape `shape`, in its role. */
export function tableInsert(h: i32, shape: u64, idx: u32): void {
  const count = hget(h + T_COUNT) + 1;
  const buckets = hget(h + T_BUCKETS);
  if (count * MAX_LOAD_DEN > buckets * SLOTS * MAX_LOAD_NUM) rehash(h, shape, <u32>(buckets + (buckets >> 1) + 1));
  hset(h + T_COUNT, count);
  const p = rp(idx);
  const role = roleOf(shape, p);
  put(<usize>hget(h + T_BASE), <u32>hget(h + T_BUCKETS), hashOf(fileKey(shape, p, role)), idx, role);
}

/** Places an entry in the first bucket with room from its home on, counting the buckets it passes. */
function put(base: usize, buckets: u32, hash: u64, idx: u32, role: u8): void {
  let b = homeOf(hash, buckets);
  for (;;) {
    const bp = bucketAt(base, b);
    const free = slotsWith(bp, 0);
    if (free != 0) {
      const slot = ctz(free);
      store<u8>(bp + <usize>slot, tagOf(hash) ^ role);
      store<u32>(bp + IDX_AT + (<usize>slot << 2), idx);
      return;
    }
    const over = overflowOf(bp);
    if (over < SATURATED) store<u8>(bp + OVERFLOW_AT, <u8>(over + 1));
    b = nextBucket(b, buckets);
  }
}

/**
 * Moves every entry into a table of `buckets` buckets. Entries are read bucket by bucket; each
 * one's hash comes from its record's key (the tags keep only 7 bits), reads that do not depend on
 * each other, so the CPU overlaps their misses. A running shard's tables reach their size once.
 */
function rehash(h: i32, shape: u64, buckets: u32): void {
  const old = <usize>hget(h + T_BASE);
  const oldBuckets = <u32>hget(h + T_BUCKETS);
  const base = allocExact(<usize>buckets << BUCKET_SHIFT);
  for (let b: u32 = 0; b < oldBuckets; b++) {
    const bp = bucketAt(old, b);
    let used = ~slotsWith(bp, 0) & SLOT_MASK;
    while (used != 0) {
      const slot = ctz(used);
      used &= used - 1;
      const idx = idxAt(bp, slot);
      const p = rp(idx);
      const role = roleOf(shape, p);
      put(base, buckets, hashOf(fileKey(shape, p, role)), idx, role);
    }
  }
  freeExact(old, <usize>oldBuckets << BUCKET_SHIFT);
  hset(h + T_BASE, <u64>base);
  hset(h + T_BUCKETS, buckets);
}

/** Removes record `idx` (present in table `h` of shape `shape`, in its role). */
export function tableRemove(h: i32, shape: u64, idx: u32): void {
  const base = <usize>hget(h + T_BASE);
  const buckets = <u32>hget(h + T_BUCKETS);
  const at = tagAddress(h, shape, idx);
  store<u8>(at, 0);
  // The buckets it had passed on its way here count one entry fewer.
  const b = <u32>((at - base) >> BUCKET_SHIFT);
  for (let c = foundHome; c != b; c = nextBucket(c, buckets)) {
    const cp = bucketAt(base, c);
    const over = overflowOf(cp);
    if (over < SATURATED) store<u8>(cp + OVERFLOW_AT, <u8>(over - 1));
  }
  hset(h + T_COUNT, hget(h + T_COUNT) - 1);
}

/**
 * Puts record `next` in the slot of record `idx` (present in table `h`), which leaves the table.
 * Both must be filed under the same key in the same role: the tag and every count stay.
 */
export function tableReplace(h: i32, shape: u64, idx: u32, next: u32): void {
  const at = tagAddress(h, shape, idx);
  const q = rp(next);
  assert(load<u8>(at) == (tagOf(filedHash(shape, q)) ^ roleOf(shape, q)), "tableReplace: filed apart");
  const slot = (at - <usize>hget(h + T_BASE)) & ((1 << BUCKET_SHIFT) - 1);
  store<u32>(at - slot + IDX_AT + (slot << 2), next);
}

/** The home bucket of the last tagAddress. */
let foundHome: u32 = 0;

/** The address of the tag of record `idx` (present in table `h`), in its bucket's first 12 bytes; sets foundHome. */
function tagAddress(h: i32, shape: u64, idx: u32): usize {
  const base = <usize>hget(h + T_BASE);
  const buckets = <u32>hget(h + T_BUCKETS);
  const p = rp(idx);
  const role = roleOf(shape, p);
  const hash = hashOf(fileKey(shape, p, role));
  const tag = tagOf(hash) ^ role;
  foundHome = homeOf(hash, buckets);
  let b = foundHome;
  for (let seen: u32 = 0; ; seen++) {
    if (seen == buckets) unreachable(); // not present: a bookkeeping bug
    const bp = bucketAt(base, b);
    let m = slotsWith(bp, tag);
    while (m != 0) {
      const slot = ctz(m);
      m &= m - 1;
      if (idxAt(bp, slot) == idx) return bp + <usize>slot;
    }
    b = nextBucket(b, buckets);
  }
  return 0; // not reached
}

/** How far bucket `b` is past `home`, wrapping. */
@inline function distance(home: u32, b: u32, buckets: u32): u32 {
  return b >= home ? b - home : b + buckets - home;
}

/**
 * Consistency check for tests: 0, or a code naming the first broken invariant: 1 an entry whose
 * record is free (`freeFlag` set in its flags), 2 a tag that is not that of the key it is filed
 * under in its role (the table's shape), 3 a bucket's
 * overflow count that is not the number of entries passing it, 4 the entry count. Allocates
 * nothing (tests check that memory stays flat).
 */
export function tableCheck(h: i32, shape: u64, freeFlag: u16): u32 {
  const base = <usize>hget(h + T_BASE);
  const buckets = <u32>hget(h + T_BUCKETS);
  let count: u64 = 0;
  let farthest: u32 = 0;
  for (let b: u32 = 0; b < buckets; b++) {
    const bp = bucketAt(base, b);
    let used = ~slotsWith(bp, 0) & SLOT_MASK;
    while (used != 0) {
      const slot = ctz(used);
      used &= used - 1;
      const p = rp(idxAt(bp, slot));
      if ((load<u16>(p + R_FLAGS) & freeFlag) != 0) return 1;
      const role = roleOf(shape, p);
      const hash = hashOf(fileKey(shape, p, role));
      if (load<u8>(bp + <usize>slot) != (tagOf(hash) ^ role)) return 2;
      farthest = max(farthest, distance(homeOf(hash, buckets), b, buckets));
      count++;
    }
  }
  // Bucket c is passed by the entries d buckets after it that are at least d from their home.
  for (let c: u32 = 0; c < buckets; c++) {
    let want: u32 = 0;
    let b = c;
    for (let d: u32 = 1; d <= farthest && d < buckets; d++) {
      b = nextBucket(b, buckets);
      const bp = bucketAt(base, b);
      let used = ~slotsWith(bp, 0) & SLOT_MASK;
      while (used != 0) {
        const slot = ctz(used);
        used &= used - 1;
        if (distance(homeOf(filedHash(shape, rp(idxAt(bp, slot))), buckets), b, buckets) >= d) want++;
      }
    }
    const have = overflowOf(bucketAt(base, c));
    if (have != SATURATED && have != want) return 3; // a saturated count stays, whatever is left
  }
  return count == hget(h + T_COUNT) ? 0 : 4;
}
