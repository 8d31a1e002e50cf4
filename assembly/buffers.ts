// Growable buffers: the host's input records, the output and message outboxes, the inbox, and
// two scratch u32 stacks (tree walks without recursion; frees deferred to the end of a call).
import { growRegion, regionBytes } from "./alloc";
import {
  hget, hset, stat, H_DEFER_BASE, H_DEFER_CAP, H_IN_BASE, H_IN_CAP, H_MIN_BASE, H_MIN_CAP, H_MSG_BASE,
  H_MSG_CAP, H_MSG_LEN, H_OUT_BASE, H_OUT_CAP, H_OUT_LEN, H_STACK_BASE, H_STACK_CAP, STAT_MSGS_SENT, STAT_MSGS_RECEIVED, H_STATS,
} from "./header";
import { MSG_A, MSG_B, MSG_C, MSG_D, MSG_DEST, MSG_E, MSG_F, MSG_G, MSG_SIZE, MSG_TYPE, OUT_SIZE } from "./layout";

/**
 * Makes a buffer (base, capacity words at h, hcap) hold at least `bytes`, keeping `used` bytes.
 * Inlined (every caller passes constant header words): the outboxes and stacks below check their
 * room once per element, and a call each time was a measurable part of a decision walk.
 */
@inline export function ensure(h: i32, hcap: i32, used: usize, bytes: usize): usize {
  if (bytes > <usize>hget(hcap)) grow(h, hcap, used, bytes);
  return <usize>hget(h);
}

function grow(h: i32, hcap: i32, used: usize, bytes: usize): void {
  const cap = <usize>hget(hcap);
  const size = regionBytes(max(bytes, cap << 1));
  hset(h, <u64>growRegion(<usize>hget(h), cap, used, size));
  hset(hcap, <u64>size);
}

function bufferInit(h: i32): void {
  hset(h, <u64>growRegion(0, 0, 0, 4096));
  hset(h + 1, 4096);
}

export function buffersInit(): void {
  // Never an array literal here: the engine allocates nothing from the AssemblyScript heap,
  // whose first block would be this engine's header.
  bufferInit(H_IN_BASE);
  bufferInit(H_OUT_BASE);
  bufferInit(H_MSG_BASE);
  bufferInit(H_MIN_BASE);
  bufferInit(H_STACK_BASE);
  bufferInit(H_DEFER_BASE);
  hset(H_OUT_LEN, 0);
  hset(H_MSG_LEN, 0);
}

@inline export function outNext(): usize {
  const len = <usize>hget(H_OUT_LEN);
  const base = ensure(H_OUT_BASE, H_OUT_CAP, len * OUT_SIZE, (len + 1) * OUT_SIZE);
  hset(H_OUT_LEN, <u64>(len + 1));
  return base + len * OUT_SIZE;
}

export function send(dest: u32, type: u32, a: u64, b: u64, c: u64, d: u64, e: u64, f: u64, g: u64): void {
  const len = <usize>hget(H_MSG_LEN);
  const p = ensure(H_MSG_BASE, H_MSG_CAP, len * MSG_SIZE, (len + 1) * MSG_SIZE) + len * MSG_SIZE;
  store<u32>(p + MSG_DEST, dest);
  store<u32>(p + MSG_TYPE, type);
  store<u64>(p + MSG_A, a);
  store<u64>(p + MSG_B, b);
  store<u64>(p + MSG_C, c);
  store<u64>(p + MSG_D, d);
  store<u64>(p + MSG_E, e);
  store<u64>(p + MSG_F, f);
  store<u64>(p + MSG_G, g);
  hset(H_MSG_LEN, <u64>(len + 1));
  stat(STAT_MSGS_SENT);
}

// ---- Scratch stack: a transient top, reset by every API call. ----
export let scratchTop: u32 = 0;

@inline export function scratchPush(v: u32): void {
  const base = ensure(H_STACK_BASE, H_STACK_CAP, <usize>scratchTop << 2, (<usize>scratchTop + 1) << 2);
  store<u32>(base + (<usize>scratchTop << 2), v);
  scratchTop++;
}
@inline export function scratchPop(): u32 {
  scratchTop--;
  return load<u32>(<usize>hget(H_STACK_BASE) + (<usize>scratchTop << 2));
}
@inline export function scratchGet(i: u32): u32 {
  return load<u32>(<usize>hget(H_STACK_BASE) + (<usize>i << 2));
}

// ---- Deferred frees: records decided and expired, freed when the API call ends. ----
export let deferLen: u32 = 0;

@inline export function deferFree(idx: u32): void {
  const base = ensure(H_DEFER_BASE, H_DEFER_CAP, <usize>deferLen << 2, (<usize>deferLen + 1) << 2);
  store<u32>(base + (<usize>deferLen << 2), idx);
  deferLen++;
}
@inline export function deferGet(i: u32): u32 {
  return load<u32>(<usize>hget(H_DEFER_BASE) + (<usize>i << 2));
}


export function resetScratch(): void {
  scratchTop = 0;
  deferLen = 0;
}

export function statAccepted(n: u32): void {
  hset(H_STATS + STAT_MSGS_RECEIVED, hget(H_STATS + STAT_MSGS_RECEIVED) + n);
}
