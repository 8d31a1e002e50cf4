// The parser's scratch buffers: the request body in, and out of a parse the packed spans, their
// bounds and their engine records. Each grows when it must and is then kept: memory a shard has
// touched once stays mapped (on this VM a page fault costs ~11 µs, so buffers that come and go
// cost more than their copies).

export let inBase: usize = 0;
let inCap: usize = 0;
export let outBase: usize = 0;
let outCap: usize = 0;
export let boundsBase: usize = 0;
export let recBase: usize = 0;
let spanCap: u32 = 0;
export let textBase: usize = 0;
let textCap: usize = 0;

/** Bytes past the end of input and output a parse may read or write (word-sized copies and key compares). */
export const SLACK: usize = 32;

/** Room for `len` bytes of input and (packing never grows a span) as many of output. */
export function ensureInput(len: usize): void {
  len += SLACK;
  if (len > inCap) {
    if (inBase != 0) heap.free(inBase);
    inCap = grown(inCap, len);
    inBase = heap.alloc(inCap);
  }
  if (len > outCap) {
    if (outBase != 0) heap.free(outBase);
    outCap = grown(outCap, len);
    outBase = heap.alloc(outCap);
  }
}

/** Room for the bounds and records of `n` spans (a parse asks as it goes). */
export function ensureSpans(n: u32, recSize: u32): void {
  if (n <= spanCap) return;
  const cap = <u32>grown(spanCap, n < 256 ? 256 : n);
  boundsBase = boundsBase == 0 ? heap.alloc(<usize>cap << 3) : heap.realloc(boundsBase, <usize>cap << 3);
  recBase = recBase == 0 ? heap.alloc(<usize>cap * recSize) : heap.realloc(recBase, <usize>cap * recSize);
  spanCap = cap;
}

/** Room for one span's JSON, expanded from its packed form. */
export function ensureText(len: usize): void {
  if (len <= textCap) return;
  if (textBase != 0) heap.free(textBase);
  textCap = grown(textCap, len);
  textBase = heap.alloc(textCap);
}

@inline function grown(cap: usize, need: usize): usize {
  let c: usize = cap < 4096 ? 4096 : cap;
  while (c < need) c += c >> 1;
  return c;
}
