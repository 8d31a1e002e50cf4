// Open-addressing multi-map from a u64 key to span records, with linear probing and
// backward-shift deletion (Knuth vol. 3, 6.4 Algorithm R), so deletes leave no tombstones.
// Slots hold only the record index (4 bytes); the key is read from the record at `keyAt`.
// A table is three header words from `h`: base, capacity (power of two), count.
import { growRegion, freeRegion } from "./alloc";
import { hget, hset } from "./header";
import { mix64, SALT_TABLE } from "./ids";
import { rp } from "./record";

const T_BASE = 0;
const T_CAP = 1;
const T_COUNT = 2;
/** Grow at 70% load: linear probing stays short, slots cost ~6-12 B per entry. */
const MAX_LOAD_NUM: u64 = 7;
const MAX_LOAD_DEN: u64 = 10;

export function tableInit(h: i32, cap: u32): void {
  hset(h + T_BASE, <u64>growRegion(0, 0, 0, <usize>cap << 2));
  hset(h + T_CAP, cap);
  hset(h + T_COUNT, 0);
}

@inline export function slotsOf(h: i32): usize {
  return <usize>hget(h + T_BASE);
}
@inline export function maskOf(h: i32): u32 {
  return <u32>hget(h + T_CAP) - 1;
}
@inline export function homeSlot(key: u64, mask: u32): u32 {
  return <u32>(mix64(key ^ SALT_TABLE) >> 32) & mask;
}
@inline export function slotAt(slots: usize, pos: u32): u32 {
  return load<u32>(slots + (<usize>pos << 2));
}

export function tableInsert(h: i32, keyAt: u32, idx: u32): void {
  const count = hget(h + T_COUNT) + 1;
  if (count * MAX_LOAD_DEN > hget(h + T_CAP) * MAX_LOAD_NUM) rehash(h, keyAt, <u32>hget(h + T_CAP) << 1);
  hset(h + T_COUNT, count);
  put(slotsOf(h), maskOf(h), load<u64>(rp(idx) + keyAt), idx);
}

@inline function put(slots: usize, mask: u32, key: u64, idx: u32): void {
  let pos = homeSlot(key, mask);
  while (slotAt(slots, pos) != 0) pos = (pos + 1) & mask;
  store<u32>(slots + (<usize>pos << 2), idx);
}

function rehash(h: i32, keyAt: u32, cap: u32): void {
  const old = slotsOf(h);
  const oldCap = <u32>hget(h + T_CAP);
  const slots = growRegion(0, 0, 0, <usize>cap << 2);
  const mask = cap - 1;
  for (let i: u32 = 0; i < oldCap; i++) {
    const idx = slotAt(old, i);
    if (idx != 0) put(slots, mask, load<u64>(rp(idx) + keyAt), idx);
  }
  freeRegion(old, <usize>oldCap << 2);
  hset(h + T_BASE, <u64>slots);
  hset(h + T_CAP, cap);
}

/** Removes record `idx` (present under its key). */
export function tableRemove(h: i32, keyAt: u32, idx: u32): void {
  const slots = slotsOf(h);
  const mask = maskOf(h);
  let i = homeSlot(load<u64>(rp(idx) + keyAt), mask);
  while (slotAt(slots, i) != idx) {
    if (slotAt(slots, i) == 0) unreachable(); // not present: a bookkeeping bug
    i = (i + 1) & mask;
  }
  // Backward shift: pull later members of the probe run into the hole when their home allows.
  let j = i;
  for (;;) {
    j = (j + 1) & mask;
    const e = slotAt(slots, j);
    if (e == 0) break;
    const k = homeSlot(load<u64>(rp(e) + keyAt), mask);
    // The entry at j may move to i iff its home k is not cyclically within (i, j].
    const inRange = i <= j ? k > i && k <= j : k > i || k <= j;
    if (!inRange) {
      store<u32>(slots + (<usize>i << 2), e);
      i = j;
    }
  }
  store<u32>(slots + (<usize>i << 2), 0);
  hset(h + T_COUNT, hget(h + T_COUNT) - 1);
}
