// Held batches: a shard keeps each batch's spans, packed, in one block of this module's memory
// until they are done, instead of as a string on the JS heap. A string per batch is a large
// object to V8 (over 128 KiB), each mapped fresh and faulted in (measured: ~1 ms per 264 KB
// batch on this VM, page faults 8–11% of workerd's CPU); blocks are recycled by the allocator,
// in memory that stays mapped.
//
// Block: [u32 count][u32 bytes][count × (u32 start, u32 end)][packed spans]; a span done and
// compacted away has bounds [0, 0).
import { fieldCount, nameAt, nameLen } from "./fields";
import { boundsBase, ensureText, outBase, textBase } from "./scratch";

const HEAD: usize = 8;

/** Spans [first, first + count) of the last parse, in a block of their own. */
export function hold(first: u32, count: u32): usize {
  const b0 = boundsBase + (<usize>first << 3);
  const from = <usize>load<u32>(b0);
  const to = <usize>load<u32>(b0 + (<usize>(count - 1) << 3), 4);
  const block = heap.alloc(HEAD + (<usize>count << 3) + (to - from));
  store<u32>(block, count);
  store<u32>(block, <u32>(to - from), 4);
  const bounds = block + HEAD;
  const shift = <u32>from;
  for (let i: u32 = 0; i < count; i++) {
    const b = b0 + (<usize>i << 3);
    store<u32>(bounds + (<usize>i << 3), load<u32>(b) - shift);
    store<u32>(bounds + (<usize>i << 3), load<u32>(b, 4) - shift, 4);
  }
  memory.copy(bytesOf(block), outBase + from, to - from);
  return block;
}

@inline export function bytesOf(block: usize): usize {
  return block + HEAD + (<usize>load<u32>(block) << 3);
}

export function byteLength(block: usize): u32 {
  return load<u32>(block, 4);
}

export function blockSize(block: usize): u32 {
  return <u32>(HEAD + (<usize>load<u32>(block) << 3)) + load<u32>(block, 4);
}

/**
 * The spans of `block` whose bit in the bitmap at `doneBits` is clear, in a new block (the old
 * one is freed); 0 when none is left.
 */
export function compact(block: usize, doneBits: usize): usize {
  const count = load<u32>(block);
  const bounds = block + HEAD;
  const bytes = bytesOf(block);
  let size: usize = 0;
  for (let i: u32 = 0; i < count; i++) {
    if (isDone(doneBits, i)) continue;
    size += <usize>(load<u32>(bounds + (<usize>i << 3), 4) - load<u32>(bounds + (<usize>i << 3)));
  }
  if (size == 0) {
    heap.free(block);
    return 0;
  }
  const fresh = heap.alloc(HEAD + (<usize>count << 3) + size);
  store<u32>(fresh, count);
  store<u32>(fresh, <u32>size, 4);
  const freshBounds = fresh + HEAD;
  const freshBytes = bytesOf(fresh);
  let at: u32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    const b = bounds + (<usize>i << 3);
    const fb = freshBounds + (<usize>i << 3);
    if (isDone(doneBits, i)) {
      store<u64>(fb, 0);
      continue;
    }
    const start = load<u32>(b);
    const len = load<u32>(b, 4) - start;
    memory.copy(freshBytes + at, bytes + start, len);
    store<u32>(fb, at);
    store<u32>(fb, at + len, 4);
    at += len;
  }
  heap.free(block);
  return fresh;
}

@inline function isDone(bits: usize, i: u32): bool {
  return (load<u8>(bits + (i >> 3)) & (1 << (i & 7))) != 0;
}

/** Span `index` of `block` as JSON (its tokens expanded to keys) at textBase: its length. */
export function spanJson(block: usize, index: u32): u32 {
  const b = block + HEAD + (<usize>index << 3);
  let p = bytesOf(block) + <usize>load<u32>(b);
  const end = bytesOf(block) + <usize>load<u32>(b, 4);
  // A key costs at most its name plus three bytes for the one-byte token it replaced.
  ensureText((end - p) * 21);
  let o = textBase;
  while (p < end) {
    const c = <u32>load<u8>(p);
    p++;
    if (c >= 0x20 || c == 0 || c > <u32>fieldCount()) {
      store<u8>(o, <u8>c);
      o++;
      continue;
    }
    const f = <i32>c - 1;
    const n = <usize>nameLen(f);
    store<u8>(o, 0x22);
    memory.copy(o + 1, nameAt(f), n);
    o += n + 1;
    store<u16>(o, 0x3a22); // ":
    o += 2;
  }
  return <u32>(o - textBase);
}

export function release(block: usize): void {
  heap.free(block);
}
