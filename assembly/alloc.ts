// Regions of linear memory for the engine's growable arrays. Regions are powers of two; a freed
// region goes on the free list of its size and is reused by the next request of that size, so
// doubling arrays do not leak. Exact-size memory (pool pages, tables) is carved from them. Memory is never returned to the host (WebAssembly cannot shrink).
import { HDR, H_FREE, H_TOP, H_WORDS, hget, hset } from "./header";

@inline function sizeClass(bytes: usize): i32 {
  return bytes <= 64 ? 6 : 64 - <i32>clz<u64>(<u64>bytes - 1);
}

export function regionBytes(bytes: usize): usize {
  return (<usize>1) << sizeClass(bytes);
}

export function initAlloc(): void {
  hset(H_TOP, <u64>(HDR + (<usize>H_WORDS << 3)));
  for (let k = 0; k < 32; k++) hset(H_FREE + k, 0);
}

export function allocRegion(bytes: usize): usize {
  const k = sizeClass(bytes);
  const head = <usize>hget(H_FREE + k);
  if (head != 0) {
    hset(H_FREE + k, load<u64>(head));
    memory.fill(head, 0, (<usize>1) << k);
    return head;
  }
  const ptr = <usize>hget(H_TOP);
  const end = ptr + ((<usize>1) << k);
  growTo(end);
  hset(H_TOP, <u64>end);
  return ptr; // fresh memory is zero
}

/**
 * Exactly `bytes` (rounded up to a cache line), zeroed unless the caller writes all of it: pool
 * pages, and tables whose capacity is not a power of two. Carved from a freed region when one is big enough: the regions that growing
 * tables and queues leave behind become record pages instead of waste. Free with `freeExact`.
 */
export function allocExact(bytes: usize, zero: bool = true): usize {
  bytes = (bytes + 63) & ~(63 as usize);
  for (let k = sizeClass(bytes); k < 32; k++) {
    const head = <usize>hget(H_FREE + k);
    if (head == 0) continue;
    hset(H_FREE + k, load<u64>(head));
    freeExact(head + bytes, ((<usize>1) << k) - bytes); // the rest goes back
    if (zero) memory.fill(head, 0, bytes);
    return head;
  }
  const ptr = <usize>hget(H_TOP);
  const end = (ptr + bytes + 63) & ~(63 as usize);
  growTo(end);
  hset(H_TOP, <u64>end);
  return ptr;
}

function growTo(end: usize): void {
  const have = (<usize>memory.size()) << 16;
  if (end > have) {
    // Grow by at least half again: fewer grows, each of which the host must notice.
    const pages = <i32>((end - have + 0xffff) >> 16);
    if (memory.grow(max(pages, <i32>(have >> 17))) < 0 && memory.grow(pages) < 0) unreachable();
  }
}

export function freeRegion(ptr: usize, bytes: usize): void {
  if (ptr == 0) return;
  const k = sizeClass(bytes);
  store<u64>(ptr, hget(H_FREE + k));
  hset(H_FREE + k, <u64>ptr);
}

/** Frees memory from `allocExact`, as power-of-two regions (largest first) for later reuse. */
export function freeExact(ptr: usize, bytes: usize): void {
  let rest = (bytes + 63) & ~(63 as usize);
  let at = ptr;
  for (let j = 31; j >= 6 && rest > 0; j--) {
    const piece = (<usize>1) << j;
    if (rest >= piece) {
      freeRegion(at, piece);
      at += piece;
      rest -= piece;
    }
  }
}

/** Moves `used` bytes to a new region of at least `bytes`, freeing the old one of `oldBytes`. */
export function growRegion(ptr: usize, oldBytes: usize, used: usize, bytes: usize): usize {
  const next = allocRegion(bytes);
  if (used > 0) memory.copy(next, ptr, used);
  freeRegion(ptr, oldBytes);
  return next;
}

/** Bytes sitting on the free lists (freed regions not reused yet). */
export function freeBytes(): u64 {
  let n: u64 = 0;
  for (let k = 6; k < 32; k++) {
    for (let r = <usize>hget(H_FREE + k); r != 0; r = <usize>load<u64>(r)) n += (<u64>1) << k;
  }
  return n;
}
