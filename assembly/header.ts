// All engine state lives in linear memory, found from one header at a fixed address, so that a
// snapshot is a plain copy of memory [0, top) and a restore is a copy back (no wasm globals hold
// state). Header words are u64; H_* are their indices.

export const HDR: usize = (__heap_base + 63) & ~(63 as usize);

export const H_MAGIC = 0;
export const H_TOP = 1; // bump pointer: first free byte
export const H_FREE = 2; // 2..33: free lists of regions of 2^k bytes
export const H_SHARD = 34;
export const H_SHARDS = 35;
export const H_WINDOW = 36;
export const H_SETTLE = 37;
export const H_THRESHOLD = 38;
export const H_OPTS = 39; // OPT_*
export const H_REC_BASE = 40;
export const H_REC_CAP = 41;
export const H_REC_HWM = 42;
export const H_REC_FREE = 43;
export const H_REC_LIVE = 44;
export const H_APP_BASE = 45;
export const H_APP_CAP = 46;
export const H_APP_HWM = 47;
export const H_APP_FREE = 48;
export const H_APP_LIVE = 49;
export const H_NET_BASE = 50;
export const H_NET_CAP = 51;
export const H_NET_COUNT = 52;
export const H_THR_BASE = 53;
export const H_THR_CAP = 54;
export const H_THR_COUNT = 55;
export const H_FIFO = 56; // 3 FIFOs x 4 words: base, cap, head, len (the 4th at H_RUNS)
export const H_HEAP_BASE = 68;
export const H_HEAP_CAP = 69;
export const H_HEAP_LEN = 70;
export const H_IN_BASE = 71;
export const H_IN_CAP = 72;
export const H_OUT_BASE = 73;
export const H_OUT_CAP = 74;
export const H_OUT_LEN = 75;
export const H_MSG_BASE = 76;
export const H_MSG_CAP = 77;
export const H_MSG_LEN = 78;
export const H_MIN_BASE = 79;
export const H_MIN_CAP = 80;
export const H_STACK_BASE = 81;
export const H_STACK_CAP = 82;
export const H_STATS = 83; // STAT_* follow
export const H_NOW = 100;
export const H_DEFER_BASE = 101;
export const H_DEFER_CAP = 102;
export const H_DECIDED_HELD = 103; // records decided but still held for late relatives
export const H_RUNS = 104; // the FIFO of expiry runs (timers.ts), 4 words like H_FIFO's
export const H_HRUNS = 108; // the FIFO of horizon runs, likewise
export const H_NET_CONFLICTS = 112; // records in the net table as conflicts (table.ts: filed by key and span id)
export const H_WORDS = 120; // a multiple of 8: the memory after the header starts on a cache line

export const OPT_USE_APP: u64 = 1;
export const OPT_KEEP_ALL: u64 = 2;

// Counters, in the order src/linker/engine.ts reads them (LinkStats plus engine extras).
export const STAT_RECEIVED = 0;
export const STAT_DUPLICATES = 1;
export const STAT_CONFLICTS = 2;
export const STAT_ROOTS = 3;
export const STAT_ORPHANS = 4;
export const STAT_FORCED = 5;
export const STAT_LATE = 6;
export const STAT_SAMPLED_IN = 7;
export const STAT_SAMPLED_OUT = 8;
export const STAT_MSGS_SENT = 9;
export const STAT_MSGS_RECEIVED = 10;
export const STAT_STUBS = 11;
export const STAT_COUNT = 12;

export const MAGIC: u64 = 0x6e617073_65_00_0007; // "espan" engine, layout version 7

@inline export function hget(i: i32): u64 {
  return load<u64>(HDR + (<usize>i << 3));
}
@inline export function hset(i: i32, v: u64): void {
  store<u64>(HDR + (<usize>i << 3), v);
}
@inline export function hadd(i: i32, d: u64): void {
  const p = HDR + (<usize>i << 3);
  store<u64>(p, load<u64>(p) + d);
}
@inline export function stat(i: i32): void {
  hadd(H_STATS + i, 1);
}
