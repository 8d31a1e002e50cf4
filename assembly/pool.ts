// Pools of fixed-size records addressed by a 1-based u32 index (0 = none), stored in pages of
// 2^shift records (each pool passes its own shift). Pages never move, so growing costs no copy
// and wastes at most one page (a doubling array would hold up to twice what it needs). Pages
// are carved from the regions growing tables and queues leave behind, so they are kept small
// (64–256 KiB): 1 MiB pages left the pieces below 1 MiB unused, 10% of the engine's memory. A pool is five header words from
// `h`: page table, page-table capacity, high-water mark, free-list head, live count. A freed
// record keeps its u16 generation (at `genAt`, if ≥ 0) so stale timers can tell.
import { allocExact, allocRegion, growRegion } from "./alloc";
import { hget, hset } from "./header";

const P_PAGES = 0;
const P_PAGES_CAP = 1;
const P_HWM = 2;
const P_FREE = 3;
const P_LIVE = 4;
@inline export function poolPtr(h: i32, size: u32, shift: u32, idx: u32): usize {
  const page = load<usize>(<usize>hget(h + P_PAGES) + (<usize>(idx >> shift) << alignof<usize>()));
  return page + <usize>(idx & ((1 << shift) - 1)) * <usize>size;
}

export function poolInit(h: i32): void {
  hset(h + P_PAGES, <u64>allocRegion(64 << alignof<usize>()));
  hset(h + P_PAGES_CAP, 64);
  hset(h + P_HWM, 0);
  hset(h + P_FREE, 0);
  hset(h + P_LIVE, 0);
}

/** A zeroed record; its generation word (if tracked) kept as the freer left it. */
export function poolAlloc(h: i32, size: u32, shift: u32, genAt: i32): u32 {
  let idx = <u32>hget(h + P_FREE);
  if (idx != 0) {
    const p = poolPtr(h, size, shift, idx);
    hset(h + P_FREE, load<u64>(p));
    const gen: u16 = genAt >= 0 ? load<u16>(p + genAt) : 0; // advanced by the freer
    memory.fill(p, 0, size);
    if (genAt >= 0) store<u16>(p + genAt, gen);
  } else {
    idx = <u32>hget(h + P_HWM) + 1;
    if ((idx & ((1 << shift) - 1)) == 0 || idx == 1) addPage(h, size, shift, idx >> shift);
    hset(h + P_HWM, <u64>idx);
  }
  hset(h + P_LIVE, hget(h + P_LIVE) + 1);
  return idx;
}

function addPage(h: i32, size: u32, shift: u32, page: u32): void {
  const cap = <u32>hget(h + P_PAGES_CAP);
  if (page >= cap) {
    const bytes = <usize>cap << alignof<usize>();
    hset(h + P_PAGES, <u64>growRegion(<usize>hget(h + P_PAGES), bytes, bytes, bytes << 1));
    hset(h + P_PAGES_CAP, <u64>(cap << 1));
  }
  const mem = allocExact(<usize>size << shift); // fresh memory is zero; pages stay
  store<usize>(<usize>hget(h + P_PAGES) + (<usize>page << alignof<usize>()), mem);
}

/** Frees a record; only its generation word survives until reuse. */
export function poolFree(h: i32, size: u32, shift: u32, idx: u32): void {
  const p = poolPtr(h, size, shift, idx);
  store<u64>(p, hget(h + P_FREE));
  hset(h + P_FREE, <u64>idx);
  hset(h + P_LIVE, hget(h + P_LIVE) - 1);
}

export function poolLive(h: i32): u64 {
  return hget(h + P_LIVE);
}

/** Bytes of the pages allocated so far. */
export function poolBytes(h: i32, size: u32, shift: u32): u64 {
  const hwm = hget(h + P_HWM);
  return hwm == 0 ? 0 : ((hwm >> shift) + 1) * (<u64>size << shift);
}
