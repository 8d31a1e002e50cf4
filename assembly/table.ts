// Open-addressing multi-map from a u64 key to span records: Robin Hood linear probing (Celis
// 1986; an entry never sits farther from its home than the one it displaced, so a probe stops
// as soon as it meets an entry nearer its own home) with backward-shift deletion (no tombstones).
// Plain linear probing at this load spent a fifth of the engine's time shifting long runs.
// A slot is 8 bytes: the record index (low 32 bits) and a tag, the high half of the key's hash
// (high 32 bits), whose low bits are also the home slot. Probes compare tags and only read a
// record on a tag match, and deletion finds homes from tags: no cache miss into the records
// except for real matches (a 4-byte slot that read each key from its record cost ~5x the time).
// A table is three header words from `h`: base, capacity (power of two), count.
import { growRegion, freeRegion } from "./alloc";
import { hget, hset } from "./header";
import { mix64, SALT_TABLE } from "./ids";
import { rp } from "./record";

const T_BASE = 0;
const T_CAP = 1;
const T_COUNT = 2;
/** Grow at 80% load: slots are 8 bytes and probes read only slots, so runs of a few cache
 *  lines are cheap next to the memory a lower load would cost (BENCHMARKS.md). */
const MAX_LOAD_NUM: u64 = 4;
const MAX_LOAD_DEN: u64 = 5;

export function tableInit(h: i32, cap: u32): void {
  hset(h + T_BASE, <u64>growRegion(0, 0, 0, <usize>cap << 3));
  hset(h + T_CAP, cap);
  hset(h + T_COUNT, 0);
}

@inline export function slotsOf(h: i32): usize {
  return <usize>hget(h + T_BASE);
}
@inline export function maskOf(h: i32): u32 {
  return <u32>hget(h + T_CAP) - 1;
}
/** The tag of a key: the high half of its hash (any value; a slot is in use when its index is not 0). */
@inline export function tagOf(key: u64): u32 {
  return <u32>(mix64(key ^ SALT_TABLE) >> 32);
}
@inline export function slotAt(slots: usize, pos: u32): u64 {
  return load<u64>(slots + (<usize>pos << 3));
}
@inline export function slotIdx(slot: u64): u32 {
  return <u32>slot;
}
@inline export function slotTag(slot: u64): u32 {
  return <u32>(slot >> 32);
}

export function tableInsert(h: i32, keyAt: u32, idx: u32): void {
  const count = hget(h + T_COUNT) + 1;
  if (count * MAX_LOAD_DEN > hget(h + T_CAP) * MAX_LOAD_NUM) rehash(h, <u32>hget(h + T_CAP) << 1);
  hset(h + T_COUNT, count);
  put(slotsOf(h), maskOf(h), (<u64>tagOf(load<u64>(rp(idx) + keyAt)) << 32) | idx);
}

/** Distance of the entry in `slot`, found at `pos`, from its home slot. */
@inline export function distOf(slot: u64, pos: u32, mask: u32): u32 {
  return (pos - (slotTag(slot) & mask)) & mask;
}

/** Whether a probe for a key, `dist` slots from its home, can stop at `slot` (at `pos`). */
@inline export function probeEnds(slot: u64, pos: u32, dist: u32, mask: u32): bool {
  return slotIdx(slot) == 0 || distOf(slot, pos, mask) < dist;
}

function put(slots: usize, mask: u32, slot: u64): void {
  let pos = slotTag(slot) & mask;
  let dist: u32 = 0;
  for (;;) {
    const at = slots + (<usize>pos << 3);
    const cur = load<u64>(at);
    if (slotIdx(cur) == 0) {
      store<u64>(at, slot);
      return;
    }
    const d = distOf(cur, pos, mask);
    if (d < dist) {
      // Robin Hood: the richer resident yields its place and moves on.
      store<u64>(at, slot);
      slot = cur;
      dist = d;
    }
    pos = (pos + 1) & mask;
    dist++;
  }
}

function rehash(h: i32, cap: u32): void {
  const old = slotsOf(h);
  const oldCap = <u32>hget(h + T_CAP);
  const slots = growRegion(0, 0, 0, <usize>cap << 3);
  const mask = cap - 1;
  for (let i: u32 = 0; i < oldCap; i++) {
    const s = slotAt(old, i);
    if (slotIdx(s) != 0) put(slots, mask, s);
  }
  freeRegion(old, <usize>oldCap << 3);
  hset(h + T_BASE, <u64>slots);
  hset(h + T_CAP, cap);
}

/** Removes record `idx` (present under its key). */
export function tableRemove(h: i32, keyAt: u32, idx: u32): void {
  const slots = slotsOf(h);
  const mask = maskOf(h);
  let i = tagOf(load<u64>(rp(idx) + keyAt)) & mask;
  while (slotIdx(slotAt(slots, i)) != idx) {
    if (slotIdx(slotAt(slots, i)) == 0) unreachable(); // not present: a bookkeeping bug
    i = (i + 1) & mask;
  }
  // Backward shift: move the rest of the run one slot back until an entry sits at its home.
  for (;;) {
    const j = (i + 1) & mask;
    const e = slotAt(slots, j);
    if (slotIdx(e) == 0 || distOf(e, j, mask) == 0) break;
    store<u64>(slots + (<usize>i << 3), e);
    i = j;
  }
  store<u64>(slots + (<usize>i << 3), 0);
  hset(h + T_COUNT, hget(h + T_COUNT) - 1);
}
