// Timers: window expiry, settle decisions, the stuck-tree horizon. Each kind's deadlines are
// almost always pushed in order (arrival + window, now + settle, expiry + window + settle), so
// each kind has a FIFO ring: O(1) push and pop. A deadline earlier than its FIFO's tail (a
// restore, a late message) goes to one binary min-heap instead.
//
// Expiry and horizon timers come in runs: a whole batch arrives at one time and so expires at
// one time, and the records of one expiry run that are still linked (a tree waiting for its root,
// which an orphan entry decides only after its own window) get their horizon at one time. Those
// kinds keep narrow entries, and their deadlines in a second FIFO of runs (deadline, count), one
// per distinct deadline; `runDue` / `runPop` take a due run whole. An expiry entry is the record
// index alone, 4 bytes: expiry timers cannot go stale (a record is freed only after its expiry).
// A horizon entry adds the record's generation (8 bytes), which tells a reused record from the
// one the timer was for: most horizons find their tree decided and the record freed long since.
// Decision entries, and the heap's, are 16 bytes: deadline i64, record u32, gen u16 | kind u16.
import { growRegion, freeRegion } from "./alloc";
import { hget, hset, H_FIFO, H_HEAP_BASE, H_HEAP_CAP, H_HEAP_LEN, H_HRUNS, H_RUNS } from "./header";

export const T_EXPIRE: u32 = 0;
export const T_DECIDE: u32 = 1;
export const T_HORIZON: u32 = 2;
const KINDS: u32 = 3;
/** The FIFOs of runs (16-byte entries: deadline i64, the count of timers left in it) of expiries and of horizons. */
const EXPIRE_RUNS: u32 = 3;
const HORIZON_RUNS: u32 = 4;
const WIDE: usize = 16;

@inline function fw(q: u32, w: i32): i32 {
  return q == EXPIRE_RUNS ? H_RUNS + w : q == HORIZON_RUNS ? H_HRUNS + w : H_FIFO + <i32>q * 4 + w;
}
@inline function entryBytes(q: u32): usize {
  return q == T_EXPIRE ? 4 : q == T_HORIZON ? 8 : WIDE;
}
@inline function runsOf(kind: u32): u32 {
  return kind == T_EXPIRE ? EXPIRE_RUNS : HORIZON_RUNS;
}
@inline function fifoLen(q: u32): u64 {
  return hget(fw(q, 3));
}

export function timersInit(cap: u32): void {
  for (let q: u32 = 0; q <= HORIZON_RUNS; q++) {
    hset(fw(q, 0), <u64>growRegion(0, 0, 0, <usize>cap * entryBytes(q)));
    hset(fw(q, 1), cap);
    hset(fw(q, 2), 0);
    hset(fw(q, 3), 0);
  }
  hset(H_HEAP_BASE, <u64>growRegion(0, 0, 0, <usize>cap * WIDE));
  hset(H_HEAP_CAP, cap);
  hset(H_HEAP_LEN, 0);
}

@inline function fifoAt(q: u32, i: u64): usize {
  const cap = hget(fw(q, 1));
  return <usize>hget(fw(q, 0)) + <usize>((hget(fw(q, 2)) + i) & (cap - 1)) * entryBytes(q);
}

/**
 * Room for one more entry at the tail of FIFO `q` (grown if full); the caller fills it. Inlined
 * with a constant `q` at every call site, so the header words fold to fixed addresses: a timer is
 * pushed for every span, and the generic version took a tenth of the engine's time (profile).
 */
@inline function fifoPush(q: u32): usize {
  const len = fifoLen(q);
  if (len == hget(fw(q, 1))) fifoGrow(q);
  hset(fw(q, 3), len + 1);
  return fifoAt(q, len);
}

/** Unrolls a full ring into a region twice the size. */
function fifoGrow(q: u32): void {
  const len = fifoLen(q);
  const cap = hget(fw(q, 1));
  const size = entryBytes(q);
  const next = growRegion(0, 0, 0, <usize>(cap << 1) * size);
  // A full ring: head..end of the region, then its start up to the head.
  const base = <usize>hget(fw(q, 0));
  const head = <usize>hget(fw(q, 2)) * size;
  const all = <usize>len * size;
  memory.copy(next, base + head, all - head);
  memory.copy(next + all - head, base, head);
  freeRegion(base, <usize>cap * size);
  hset(fw(q, 0), <u64>next);
  hset(fw(q, 1), cap << 1);
  hset(fw(q, 2), 0);
}

@inline function fifoPop(q: u32): void {
  const cap = hget(fw(q, 1));
  hset(fw(q, 2), (hget(fw(q, 2)) + 1) & (cap - 1));
  hset(fw(q, 3), fifoLen(q) - 1);
}

/** The deadline at the head (i = 0) or the tail (i = len - 1) of a FIFO of kind `q`. */
@inline function deadlineAt(q: u32, i: u64): i64 {
  if (q != T_DECIDE) {
    const runs = runsOf(q);
    return load<i64>(fifoAt(runs, i == 0 ? 0 : fifoLen(runs) - 1));
  }
  return load<i64>(fifoAt(q, i));
}

/** Inlined: every caller passes a constant kind. */
@inline export function timerPush(kind: u32, deadline: i64, idx: u32, gen: u32): void {
  const len = fifoLen(kind);
  if (len > 0 && deadline < deadlineAt(kind, len - 1)) {
    heapPush(deadline, idx, gen | (kind << 16));
    return;
  }
  if (kind != T_DECIDE) {
    // One run per distinct deadline.
    const runs = runsOf(kind);
    if (len > 0 && deadline == deadlineAt(kind, len - 1)) {
      const run = fifoAt(runs, fifoLen(runs) - 1);
      store<u32>(run, load<u32>(run, 8) + 1, 8);
    } else {
      const run = fifoPush(runs);
      store<i64>(run, deadline);
      store<u32>(run, 1, 8);
    }
    const e = fifoPush(kind);
    store<u32>(e, idx);
    if (kind == T_HORIZON) store<u32>(e, gen, 4);
    return;
  }
  const p = fifoPush(kind);
  store<i64>(p, deadline);
  store<u32>(p, idx, 8);
  store<u32>(p, gen | (kind << 16), 12);
}

// The earliest due timer, popped into these (an AssemblyScript function returns one value).
export let dueIdx: u32 = 0;
export let dueKind: u32 = 0;
/** The generation the timer was set for; NO_GEN_CHECK for expiry timers (never stale). */
export let dueGen: i32 = 0;
export let dueAt: i64 = 0;
export const NO_GEN_CHECK: i32 = -1;

/**
 * When the earliest due timer heads a run of kind `kind` (T_EXPIRE or T_HORIZON), the whole rest
 * of the run is due: `runDue` says how many, and `runPop` takes them one by one without comparing
 * queues again. Ties go to the lower kind, and to a FIFO over the heap, as in `timerPopDue`.
 * Taking a run whole is sound because neither kind pushes an earlier timer: expiring pushes
 * decisions and horizons no earlier than itself (ties go to expiries), and a horizon pushes none.
 */
export function runDue(kind: u32, now: i64): u32 {
  const runs = runsOf(kind);
  if (fifoLen(runs) == 0) return 0;
  const run = fifoAt(runs, 0);
  const at = load<i64>(run);
  if (at > now) return 0;
  for (let q: u32 = 0; q < KINDS; q++) {
    if (q == kind || fifoLen(q) == 0) continue;
    const d = deadlineAt(q, 0);
    if (d < at || (d == at && q < kind)) return 0;
  }
  if (hget(H_HEAP_LEN) > 0 && load<i64>(<usize>hget(H_HEAP_BASE)) < at) return 0;
  dueAt = at;
  return load<u32>(run, 8);
}

/** The next record of the due run of `kind` (after `runDue`); its generation in dueGen. */
@inline export function runPop(kind: u32): u32 {
  const e = fifoAt(kind, 0);
  const idx = load<u32>(e);
  dueGen = kind == T_HORIZON ? <i32>load<u32>(e, 4) : NO_GEN_CHECK;
  const runs = runsOf(kind);
  const run = fifoAt(runs, 0);
  const left = load<u32>(run, 8) - 1;
  if (left == 0) fifoPop(runs);
  else store<u32>(run, left, 8);
  fifoPop(kind);
  return idx;
}

/** The record `ahead` places behind the head of the FIFO of `kind` (ahead < the due run's length). */
@inline export function runPeek(kind: u32, ahead: u32): u32 {
  return load<u32>(fifoAt(kind, ahead));
}

/**
 * Decision timers due now ahead of every other kind: how many (up to `most`) can be taken in a
 * row, in order, with `decidePeek` / `decidePop`. Deciding pushes no timer, so the count holds.
 * Ties: an expiry goes first (lower kind), a decision before a horizon or the heap.
 */
export function decideRunDue(now: i64, most: u32): u32 {
  const len = fifoLen(T_DECIDE);
  if (len == 0) return 0;
  let limit = now;
  if (fifoLen(T_EXPIRE) > 0) limit = min(limit, deadlineAt(T_EXPIRE, 0) - 1);
  if (fifoLen(T_HORIZON) > 0) limit = min(limit, deadlineAt(T_HORIZON, 0));
  if (hget(H_HEAP_LEN) > 0) limit = min(limit, load<i64>(<usize>hget(H_HEAP_BASE)));
  let n: u32 = 0;
  while (<u64>n < len && n < most && load<i64>(fifoAt(T_DECIDE, n)) <= limit) n++;
  return n;
}

/** The record and generation of the decision timer `ahead` places behind the head. */
@inline export function decidePeekIdx(ahead: u32): u32 {
  return load<u32>(fifoAt(T_DECIDE, ahead), 8);
}
@inline export function decidePeekGen(ahead: u32): u32 {
  return load<u32>(fifoAt(T_DECIDE, ahead), 12) & 0xffff;
}

/** Pops the head decision timer into dueIdx / dueGen / dueAt (after `decideRunDue`). */
export function decidePop(): void {
  const p = fifoAt(T_DECIDE, 0);
  dueAt = load<i64>(p);
  dueKind = T_DECIDE;
  dueIdx = load<u32>(p, 8);
  dueGen = <i32>(load<u32>(p, 12) & 0xffff);
  fifoPop(T_DECIDE);
}

/** Pops the earliest timer due at or before `now`; false when none is due. */
export function timerPopDue(now: i64): bool {
  let best: i32 = -1;
  let bestAt: i64 = i64.MAX_VALUE;
  for (let q: u32 = 0; q < KINDS; q++) {
    if (fifoLen(q) == 0) continue;
    const at = deadlineAt(q, 0);
    if (at < bestAt) {
      bestAt = at;
      best = <i32>q;
    }
  }
  const heapLen = hget(H_HEAP_LEN);
  const heap = <usize>hget(H_HEAP_BASE);
  if (heapLen > 0 && load<i64>(heap) < bestAt) {
    bestAt = load<i64>(heap);
    best = <i32>KINDS;
  }
  if (best < 0 || bestAt > now) return false;
  dueAt = bestAt;
  if (best == <i32>KINDS) {
    dueIdx = load<u32>(heap, 8);
    const aux = load<u32>(heap, 12);
    dueKind = aux >> 16;
    dueGen = dueKind == T_EXPIRE ? NO_GEN_CHECK : <i32>(aux & 0xffff);
    heapPop();
    return true;
  }
  const q = <u32>best;
  if (q == T_DECIDE) {
    decidePop();
    return true;
  }
  dueKind = q;
  dueIdx = q == T_EXPIRE ? runPop(T_EXPIRE) : runPop(T_HORIZON);
  return true;
}

/** The earliest deadline of any timer, or i64.MAX_VALUE. */
export function timerNext(): i64 {
  let at: i64 = i64.MAX_VALUE;
  for (let q: u32 = 0; q < KINDS; q++) if (fifoLen(q) > 0) at = min(at, deadlineAt(q, 0));
  if (hget(H_HEAP_LEN) > 0) at = min(at, load<i64>(<usize>hget(H_HEAP_BASE)));
  return at;
}

export function timerCount(): u64 {
  let n = hget(H_HEAP_LEN);
  for (let q: u32 = 0; q < KINDS; q++) n += fifoLen(q);
  return n;
}

@inline function hat(i: u64): usize {
  return <usize>hget(H_HEAP_BASE) + <usize>i * WIDE;
}

@inline function swap(a: usize, b: usize): void {
  const d = load<i64>(a);
  const x = load<u64>(a, 8);
  store<i64>(a, load<i64>(b));
  store<u64>(a, load<u64>(b, 8), 8);
  store<i64>(b, d);
  store<u64>(b, x, 8);
}

function heapPush(deadline: i64, idx: u32, aux: u32): void {
  const len = hget(H_HEAP_LEN);
  const cap = hget(H_HEAP_CAP);
  if (len == cap) {
    hset(H_HEAP_BASE, <u64>growRegion(<usize>hget(H_HEAP_BASE), <usize>cap * WIDE, <usize>len * WIDE, <usize>(cap << 1) * WIDE));
    hset(H_HEAP_CAP, cap << 1);
  }
  let i = len;
  const p = hat(i);
  store<i64>(p, deadline);
  store<u32>(p, idx, 8);
  store<u32>(p, aux, 12);
  hset(H_HEAP_LEN, len + 1);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (load<i64>(hat(parent)) <= load<i64>(hat(i))) break;
    swap(hat(parent), hat(i));
    i = parent;
  }
}

function heapPop(): void {
  const len = hget(H_HEAP_LEN) - 1;
  hset(H_HEAP_LEN, len);
  if (len == 0) return;
  memory.copy(hat(0), hat(len), WIDE);
  let i: u64 = 0;
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < len && load<i64>(hat(l)) < load<i64>(hat(m))) m = l;
    if (r < len && load<i64>(hat(r)) < load<i64>(hat(m))) m = r;
    if (m == i) break;
    swap(hat(i), hat(m));
    i = m;
  }
}

export function timerBytes(): u64 {
  let n = hget(H_HEAP_CAP) * <u64>WIDE;
  for (let q: u32 = 0; q <= HORIZON_RUNS; q++) n += hget(fw(q, 1)) * <u64>entryBytes(q);
  return n;
}
