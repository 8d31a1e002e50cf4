// The engine's API for its hosts: the offline CLI (Node) and a LinkerShard Durable Object
// (workerd). Numbers in, numbers out; the host (src/linker/engine.ts) owns all text.
//
//   init(...)              fresh state for shard `shard` of `shards`
//   inputBuffer(n) → ptr   room for n input records (IN_*), then ingest(n)
//   tick(nowMs)            run the timers due (window expiry, settle decisions, horizon)
//   output*/message*       read out decided spans / messages for other shards, then clear
//   inboxBuffer(n), accept(n)   messages from other shards
//   snapshotBytes()        memory [0, n) is the whole state; restore by copying it back
import "./abort";
import { freeBytes, initAlloc } from "./alloc";
import { buffersInit, deferGet, deferLen, ensure } from "./buffers";
import * as B from "./buffers";
import {
  hget, hset, HDR, H_APP_BASE, H_IN_BASE, H_IN_CAP, H_MAGIC, H_MIN_BASE, H_MIN_CAP, H_MSG_BASE, H_MSG_LEN,
  H_NET_BASE, H_NOW, H_OPTS, H_OUT_BASE, H_OUT_LEN, H_REC_BASE, H_SETTLE, H_SHARD, H_SHARDS, H_STATS, H_THR_BASE,
  H_THRESHOLD, H_TOP, H_DECIDED_HELD, H_OUT_CAP, H_MSG_CAP, H_STACK_CAP, H_DEFER_CAP, H_WINDOW, H_WORDS, MAGIC, OPT_KEEP_ALL, OPT_USE_APP, STAT_COUNT,
} from "./header";
import { shardOfNet, shardOfThread } from "./ids";
import * as L from "./layout";
import { acceptOne, checkTables, freeRecord, ingestOne, onTimer, prefetchIngest, prefetchRecord, prefetchSlots, prefetchTrees } from "./link";
export { checkTables };
import { poolBytes, poolInit, poolLive } from "./pool";
import { APP_SHIFT, APP_SIZE, REC_SHIFT, REC_SIZE } from "./record";
import { tableBytes, tableInit, tableSlots } from "./table";
import { decidePop, decideRunDue, dueAt, dueGen, dueIdx, dueKind, NO_GEN_CHECK, runDue, runPeek, runPop, T_DECIDE, T_EXPIRE, T_HORIZON, timerBytes, timerCount, timerNext, timerPopDue, timersInit } from "./timers";

/** `netSlots`, `threadSlots`: the tables' starting capacity (0: small); a reset shard keeps its sizes. */
export function init(shard: u32, shards: u32, windowMs: i64, settleMs: i64, threshold: u64, useApp: bool, keepAll: bool, netSlots: u32, threadSlots: u32): void {
  // All of memory above the header is zeroed, so that an instance can be reset and reused: the
  // allocator takes memory it has not handed out before to be zero. (On a fresh instance that is
  // the initial pages; on a reused one it keeps its grown memory, already faulted in.)
  memory.fill(HDR, 0, (<usize>memory.size() << 16) - HDR);
  hset(H_MAGIC, MAGIC);
  initAlloc();
  hset(H_SHARD, shard);
  hset(H_SHARDS, shards);
  hset(H_WINDOW, <u64>windowMs);
  hset(H_SETTLE, <u64>settleMs);
  hset(H_THRESHOLD, threshold);
  hset(H_OPTS, (useApp ? OPT_USE_APP : 0) | (keepAll ? OPT_KEEP_ALL : 0));
  poolInit(H_REC_BASE);
  poolInit(H_APP_BASE);
  tableInit(H_NET_BASE, max<u32>(2048, netSlots));
  tableInit(H_THR_BASE, max<u32>(2048, threadSlots));
  timersInit(1024);
  buffersInit();
}

// The host records' layout, exported as wasm globals: the glue reads offsets from here.
export * from "./layout";
export const REC_BYTES: u32 = REC_SIZE;
export const APP_BYTES: u32 = APP_SIZE;
export const STATS: u32 = <u32>STAT_COUNT;

export function inputBuffer(n: u32): usize {
  return ensure(H_IN_BASE, H_IN_CAP, 0, <usize>n * L.IN_SIZE);
}

export function ingest(n: u32): void {
  begin();
  const base = <usize>hget(H_IN_BASE);
  prefetchIngest(base, n);
  for (let i: u32 = 0; i < n; i++) ingestOne(base + <usize>i * L.IN_SIZE);
  end();
}

/** A run of expiries or horizons is taken in groups of this many, their records loaded first (as frees are, below). */
const RUN_GROUP: u32 = 256;
/** Decisions are taken in groups of up to this many, their trees loaded first. */
const DECIDE_GROUP: u32 = 256;

export function tick(nowMs: i64): void {
  begin();
  hset(H_NOW, <u64>nowMs);
  for (;;) {
    // A due run of expiries is taken whole, in groups whose records are loaded in a pass first.
    if (takeRun(T_EXPIRE, nowMs)) continue;
    // Due decisions likewise, their trees loaded first.
    const d = decideRunDue(nowMs, DECIDE_GROUP);
    if (d > 0) {
      prefetchTrees(d);
      for (let k: u32 = 0; k < d; k++) {
        decidePop();
        onTimer(T_DECIDE, dueIdx, dueGen, dueAt);
      }
      continue;
    }
    // Horizons come in runs too; most find their record freed (its tree was decided after its
    // window), which the generation check reads from the record: loaded in a pass first as well.
    if (takeRun(T_HORIZON, nowMs)) continue;
    if (!timerPopDue(nowMs)) break;
    onTimer(dueKind, dueIdx, dueGen, dueAt);
  }
  end();
}

/** Runs the due run of `kind` whole, if the earliest due timer heads one. */
@inline function takeRun(kind: u32, nowMs: i64): bool {
  let n = runDue(kind, nowMs);
  if (n == 0) return false;
  while (n > 0) {
    const g = min(n, RUN_GROUP);
    for (let k: u32 = 0; k < g; k++) prefetchRecord(runPeek(kind, k));
    for (let k: u32 = 0; k < g; k++) {
      const idx = runPop(kind);
      onTimer(kind, idx, dueGen, dueAt);
    }
    n -= g;
  }
  return true;
}

/** When the next timer is due (ms), or i64.MAX_VALUE: lets S shards step through time together. */
export function nextDeadline(): i64 {
  return timerNext();
}

export function inboxBuffer(n: u32): usize {
  return ensure(H_MIN_BASE, H_MIN_CAP, 0, <usize>n * L.MSG_SIZE);
}

export function accept(n: u32): void {
  begin();
  const base = <usize>hget(H_MIN_BASE);
  for (let i: u32 = 0; i < n; i++) acceptOne(base + <usize>i * L.MSG_SIZE);
  B.statAccepted(n);
  end();
}

@inline function begin(): void {
  B.resetScratch();
}
/** Frees are done in groups of this many (their records and table buckets loaded first). */
const FREE_GROUP: u32 = 256;

function end(): void {
  const n = deferLen;
  for (let g: u32 = 0; g < n; g += FREE_GROUP) {
    // Group prefetching in whole passes: the group's records, then (their keys now in cache) the
    // table buckets their removals will clear, then the frees, which find all of it loaded. Passes
    // over a group overlap every miss; touching a fixed distance ahead inside one loop overlapped
    // fewer (frees took 140 ns each against 87 in alternating runs).
    const e = min(n, g + FREE_GROUP);
    for (let i = g; i < e; i++) prefetchRecord(deferGet(i));
    for (let i = g; i < e; i++) prefetchSlots(deferGet(i));
    for (let i = g; i < e; i++) freeRecord(deferGet(i));
  }
  B.resetScratch();
}

export function outputCount(): u32 {
  return <u32>hget(H_OUT_LEN);
}
export function outputPtr(): usize {
  return <usize>hget(H_OUT_BASE);
}
export function outputClear(): void {
  hset(H_OUT_LEN, 0);
}
export function messageCount(): u32 {
  return <u32>hget(H_MSG_LEN);
}
export function messagePtr(): usize {
  return <usize>hget(H_MSG_BASE);
}
export function messageClear(): void {
  hset(H_MSG_LEN, 0);
}

export function stat(i: i32): u64 {
  return hget(H_STATS + i);
}
/** Home records held (pending or kept for late relatives), stubs included. */
export function heldRecords(): u64 {
  return poolLive(H_REC_BASE);
}
export function decidedHeld(): u64 {
  return hget(H_DECIDED_HELD);
}
export function heldAppRecords(): u64 {
  return poolLive(H_APP_BASE);
}
export function pendingTimers(): u64 {
  return timerCount();
}
/**
 * Where the memory goes (bytes), for the benchmark: 0 record pages, 1 app-record pages, 2 net
 * table, 3 thread table, 4 timers, 5 host buffers, 6 regions on free lists.
 */
export function memoryPart(i: i32): u64 {
  switch (i) {
    case 0: return poolBytes(H_REC_BASE, REC_SIZE, REC_SHIFT);
    case 1: return poolBytes(H_APP_BASE, APP_SIZE, APP_SHIFT);
    case 2: return tableBytes(H_NET_BASE);
    case 3: return tableBytes(H_THR_BASE);
    case 4: return timerBytes();
    case 5: return hget(H_IN_CAP) + hget(H_OUT_CAP) + hget(H_MSG_CAP) + hget(H_MIN_CAP) + hget(H_STACK_CAP) + hget(H_DEFER_CAP);
    case 6: return freeBytes();
    default: return 0;
  }
}

/** Slots of the net (0) or thread (1) table: what a reset passes back to `init` to keep them. */
export function tableCapacity(i: i32): u32 {
  return restored() ? tableSlots(i == 0 ? H_NET_BASE : H_THR_BASE) : 0;
}

/** Bytes of linear memory in use: the snapshot size. */
export function memoryUsed(): usize {
  return <usize>hget(H_TOP);
}
export function headerPtr(): usize {
  return HDR;
}
/** After the host copied a snapshot back into memory: true if it is one of this layout. */
export function restored(): bool {
  return hget(H_MAGIC) == MAGIC;
}

export function netShard(key: u64, shards: u32): u32 {
  return shardOfNet(key, shards);
}
export function threadShard(tid: u64, shards: u32): u32 {
  return shardOfThread(tid, shards);
}
