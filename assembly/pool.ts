// Pools of fixed-size records addressed by a 1-based u32 index (0 = none). A pool is described
// by five consecutive header words starting at `h`: base, capacity, high-water mark, free-list
// head, live count. A freed record keeps its generation (a u16 at `genAt`, if ≥ 0) so that timers
// pointing at a reused slot can tell it is no longer theirs.
import { growRegion, regionBytes } from "./alloc";
import { hget, hset } from "./header";

const P_BASE = 0;
const P_CAP = 1;
const P_HWM = 2;
const P_FREE = 3;
const P_LIVE = 4;

@inline export function poolPtr(h: i32, size: u32, idx: u32): usize {
  return <usize>hget(h + P_BASE) + <usize>idx * <usize>size;
}

export function poolInit(h: i32, size: u32, cap: u32): void {
  const bytes = regionBytes(<usize>(cap + 1) * size);
  hset(h + P_BASE, <u64>growRegion(0, 0, 0, bytes));
  hset(h + P_CAP, <u64>(bytes / size - 1));
  hset(h + P_HWM, 0);
  hset(h + P_FREE, 0);
  hset(h + P_LIVE, 0);
}

/** A zeroed record; its generation word (if tracked) kept as the freer left it. */
export function poolAlloc(h: i32, size: u32, genAt: i32): u32 {
  let idx = <u32>hget(h + P_FREE);
  if (idx != 0) {
    const p = poolPtr(h, size, idx);
    hset(h + P_FREE, load<u64>(p));
    const gen: u16 = genAt >= 0 ? load<u16>(p + genAt) : 0; // advanced by the freer
    memory.fill(p, 0, size);
    if (genAt >= 0) store<u16>(p + genAt, gen);
  } else {
    idx = <u32>hget(h + P_HWM) + 1;
    const cap = <u32>hget(h + P_CAP);
    if (idx > cap) {
      const oldBytes = regionBytes(<usize>(cap + 1) * size);
      const bytes = oldBytes << 1;
      hset(h + P_BASE, <u64>growRegion(<usize>hget(h + P_BASE), oldBytes, <usize>idx * size, bytes));
      hset(h + P_CAP, <u64>(bytes / size - 1));
    }
    hset(h + P_HWM, <u64>idx);
  }
  hset(h + P_LIVE, hget(h + P_LIVE) + 1);
  return idx;
}

/** Frees a record; only its generation word survives until reuse. */
export function poolFree(h: i32, size: u32, idx: u32): void {
  const p = poolPtr(h, size, idx);
  store<u64>(p, hget(h + P_FREE));
  hset(h + P_FREE, <u64>idx);
  hset(h + P_LIVE, hget(h + P_LIVE) - 1);
}

export function poolLive(h: i32): u64 {
  return hget(h + P_LIVE);
}
