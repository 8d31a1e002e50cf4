// Open-addressing multi-map from a u64 key to span records: Robin Hood linear probing (Celis
// 1986; an entry never sits farther from its home than the one it displaced, so a probe stops
// as soon as it meets an entry nearer its own home) with backward-shift deletion (no tombstones).
// Plain linear probing at this load spent a fifth of the engine's time shifting long runs.
// A slot is 8 bytes: the record index (low 32 bits) and a tag, the high half of the key's hash
// (high 32 bits), from which the home slot is computed. Probes compare tags and only read a
// record on a tag match, and deletion finds homes from tags: no cache miss into the records
// except for real matches (a 4-byte slot that read each key from its record cost ~5x the time).
//
// Capacities are not powers of two: the home of a tag is `tag * cap >> 32` (Lemire's fastrange),
// so a table grows by half again at 80% load and its load stays between 53% and 80% (10–15
// bytes per entry). Doubling left a table at 40% just after each doubling (20 bytes per entry),
// the largest swing in bytes per held span (BENCHMARKS.md). A 90% bound would save two more
// bytes but doubled the insert time: Robin Hood inserts shift whole clusters, which grow fast
// past 80%. Homes rise with tags, so a rehash writes the new table almost in order.
// A table is three header words from `h`: base, capacity, count.
import { allocExact, freeExact } from "./alloc";
import { hget, hset } from "./header";
import { mix64, SALT_TABLE } from "./ids";
import { rp } from "./record";

const T_BASE = 0;
const T_CAP = 1;
const T_COUNT = 2;
/** Grow at 80% load, by half again. */
const MAX_LOAD_NUM: u64 = 4;
const MAX_LOAD_DEN: u64 = 5;

export function tableInit(h: i32, cap: u32): void {
  hset(h + T_BASE, <u64>allocExact(<usize>cap << 3));
  hset(h + T_CAP, cap);
  hset(h + T_COUNT, 0);
}

@inline export function slotsOf(h: i32): usize {
  return <usize>hget(h + T_BASE);
}
@inline export function capOf(h: i32): u32 {
  return <u32>hget(h + T_CAP);
}
/** The tag of a key: the high half of its hash (any value; a slot is in use when its index is not 0). */
@inline export function tagOf(key: u64): u32 {
  return <u32>(mix64(key ^ SALT_TABLE) >> 32);
}
/** The home slot of a tag in a table of `cap` slots. */
@inline export function homeOf(tag: u32, cap: u32): u32 {
  return <u32>((<u64>tag * <u64>cap) >> 32);
}
/** The slot after `pos`, wrapping. */
@inline export function nextPos(pos: u32, cap: u32): u32 {
  return pos + 1 == cap ? 0 : pos + 1;
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

/** The slot at the home of `key` in table `h` (group prefetching loads it ahead of a probe). */
@inline export function homeSlot(h: i32, key: u64): u64 {
  return slotAt(slotsOf(h), homeOf(tagOf(key), capOf(h)));
}

// A probe over the records of one key: `for (let q = probeFirst(h, keyAt, key); q != 0; q =
// probeNext())`. The cursor lives in these globals for the loop only (never across calls, so a
// snapshot of memory still holds all state); the table must not change while it runs.
let pSlots: usize = 0;
let pCap: u32 = 0;
let pTag: u32 = 0;
let pPos: u32 = 0;
let pDist: u32 = 0;
let pKeyAt: u32 = 0;
let pKey: u64 = 0;

/** The first record under `key` in table `h` (key at `keyAt` in the record), or 0. */
export function probeFirst(h: i32, keyAt: u32, key: u64): u32 {
  pSlots = slotsOf(h);
  pCap = capOf(h);
  pTag = tagOf(key);
  pPos = homeOf(pTag, pCap);
  pDist = 0;
  pKeyAt = keyAt;
  pKey = key;
  return probeNext();
}

/** The next record under the probe's key, or 0 at the end. Records are read on tag matches only. */
export function probeNext(): u32 {
  let slot = slotAt(pSlots, pPos);
  while (!probeEnds(slot, pPos, pDist, pCap)) {
    pPos = nextPos(pPos, pCap);
    pDist++;
    if (slotTag(slot) == pTag && load<u64>(rp(slotIdx(slot)) + pKeyAt) == pKey) return slotIdx(slot);
    slot = slotAt(pSlots, pPos);
  }
  return 0;
}

export function tableInsert(h: i32, keyAt: u32, idx: u32): void {
  const count = hget(h + T_COUNT) + 1;
  const cap = hget(h + T_CAP);
  if (count * MAX_LOAD_DEN > cap * MAX_LOAD_NUM) rehash(h, <u32>(cap + (cap >> 1)));
  hset(h + T_COUNT, count);
  put(slotsOf(h), capOf(h), (<u64>tagOf(load<u64>(rp(idx) + keyAt)) << 32) | idx);
}

/** Distance of the entry in `slot`, found at `pos`, from its home slot. */
@inline export function distOf(slot: u64, pos: u32, cap: u32): u32 {
  const home = homeOf(slotTag(slot), cap);
  return pos >= home ? pos - home : pos + cap - home;
}

/** Whether a probe for a key, `dist` slots from its home, can stop at `slot` (at `pos`). */
@inline export function probeEnds(slot: u64, pos: u32, dist: u32, cap: u32): bool {
  return slotIdx(slot) == 0 || distOf(slot, pos, cap) < dist;
}

function put(slots: usize, cap: u32, slot: u64): void {
  let pos = homeOf(slotTag(slot), cap);
  let dist: u32 = 0;
  for (;;) {
    const at = slots + (<usize>pos << 3);
    const cur = load<u64>(at);
    if (slotIdx(cur) == 0) {
      store<u64>(at, slot);
      return;
    }
    const d = distOf(cur, pos, cap);
    if (d < dist || (d == dist && slotTag(cur) > slotTag(slot))) {
      // Robin Hood: the richer resident yields its place and moves on. Between equals, the
      // larger tag moves on: runs stay sorted by tag, which rehash relies on.
      store<u64>(at, slot);
      slot = cur;
      dist = d;
    }
    pos = nextPos(pos, cap);
    dist++;
  }
}

/**
 * Moves every entry into a table of `cap` slots in one sequential pass: the table keeps its
 * entries in order of tag (put breaks Robin Hood's ties by tag), homes rise with tags at any
 * capacity, so each entry goes to its new home or just after the entry placed before it. (A put
 * per entry cost more than all the run's inserts together.) Entries pushed past the last slot
 * are put after the pass, Robin Hood style, so they wrap to the front as they should.
 */
function rehash(h: i32, cap: u32): void {
  const old = slotsOf(h);
  const oldCap = capOf(h);
  const slots = allocExact(<usize>cap << 3, false); // every slot is written below
  // Entries in the first slots may belong to a run that wrapped around the end: they come last.
  let first: u32 = 0;
  while (first < oldCap) {
    const s = slotAt(old, first);
    if (slotIdx(s) == 0 || homeOf(slotTag(s), oldCap) <= first) break;
    first++;
  }
  let next: u32 = 0; // the first position not taken, no wrapping
  let over: u32 = 0; // entries that would sit past the last slot
  for (let k: u32 = 0; k < oldCap; k++) {
    const s = slotAt(old, first + k < oldCap ? first + k : first + k - oldCap);
    if (slotIdx(s) == 0) continue;
    const home = homeOf(slotTag(s), cap);
    const pos = home > next ? home : next;
    if (pos >= cap) over++;
    else {
      memory.fill(slots + (<usize>next << 3), 0, <usize>(pos - next) << 3); // the gap before it
      store<u64>(slots + (<usize>pos << 3), s);
    }
    next = pos + 1;
  }
  if (next < cap) memory.fill(slots + (<usize>next << 3), 0, <usize>(cap - next) << 3);
  // The overflow is the last entries of the pass: put them, wrapping to the front.
  for (let k = oldCap; over > 0; ) {
    k--;
    const s = slotAt(old, first + k < oldCap ? first + k : first + k - oldCap);
    if (slotIdx(s) == 0) continue;
    put(slots, cap, s);
    over--;
  }
  freeExact(old, <usize>oldCap << 3);
  hset(h + T_BASE, <u64>slots);
  hset(h + T_CAP, cap);
}

/** Removes record `idx` (present under its key). */
export function tableRemove(h: i32, keyAt: u32, idx: u32): void {
  const slots = slotsOf(h);
  const cap = capOf(h);
  let i = homeOf(tagOf(load<u64>(rp(idx) + keyAt)), cap);
  while (slotIdx(slotAt(slots, i)) != idx) {
    if (slotIdx(slotAt(slots, i)) == 0) unreachable(); // not present: a bookkeeping bug
    i = nextPos(i, cap);
  }
  // Backward shift: move the rest of the run one slot back until an entry sits at its home.
  for (;;) {
    const j = nextPos(i, cap);
    const e = slotAt(slots, j);
    if (slotIdx(e) == 0 || distOf(e, j, cap) == 0) break;
    store<u64>(slots + (<usize>i << 3), e);
    i = j;
  }
  store<u64>(slots + (<usize>i << 3), 0);
  hset(h + T_COUNT, hget(h + T_COUNT) - 1);
}
