// The linking core (DESIGN.md "Linking semantics" and "Scale-out"), one shard's part of it.
//
// A span's home is the shard of its net group, h(req_seq, resp_seq) mod S, so the exit → entry
// link is always found at home. Its thread group lives on h(thread id) mod S; where that is
// another shard, the home sends a registration and a stub record stands in for the span there.
// Links found at the thread shard travel home as messages; trace decisions flow down the tree
// (a home entry tells its thread shard, which tells its members' homes); app-context summaries
// flow up. With S = 1 every group is local and no message is sent. test/model/reference-linker.ts
// states the same semantics plainly; the property tests hold the two equal for S = 1..64.
import { deferFree, outNext, scratchGet, scratchPop, scratchPush, scratchTop, send } from "./buffers";
import {
  hadd, hget, stat, H_APP_BASE, H_DECIDED_HELD, H_NET_BASE, H_NET_CONFLICTS, H_OPTS, H_REC_BASE, H_SETTLE, H_SHARD, H_SHARDS, H_THR_BASE, H_THRESHOLD,
  H_WINDOW, OPT_KEEP_ALL, OPT_USE_APP, STAT_CONFLICTS, STAT_DUPLICATES, STAT_FORCED, STAT_LATE, STAT_ORPHANS,
  STAT_RECEIVED, STAT_ROOTS, STAT_SAMPLED_IN, STAT_SAMPLED_OUT, STAT_STUBS,
} from "./header";
import { sampleHash, shardOfThread, traceHiOfRoot, traceLoOfRoot } from "./ids";
import {
  IN_APP_HI, IN_APP_LO, IN_APP_PARENT, IN_ARRIVAL, IN_F_APP_PARENT, IN_F_APP_TRACE, IN_F_ENTRY, IN_F_HAS_SAMPLED,
  IN_F_HAS_TID, IN_F_SAMPLED, IN_FLAGS, IN_KEY, IN_SIZE, IN_REF, IN_SPAN_ID, IN_START, IN_TID, MSG_A, MSG_B, MSG_C, MSG_D,
  MSG_DECIDED, MSG_E, MSG_F, MSG_G, MSG_LINK, MSG_OWNER_DECIDED, MSG_REG_THREAD, MSG_SUMMARY_HOME,
  MSG_SUMMARY_STUB, MSG_TYPE, OUT_F_HAS_PARENT, OUT_F_SAMPLED, OUT_FLAGS, OUT_PARENT, OUT_REF, OUT_SPAN_ID,
  OUT_TRACE_HI, OUT_TRACE_LO,
} from "./layout";
import { poolAlloc, poolFree, poolPtr } from "./pool";
import {
  A_FLAGS, A_HI, A_LO, A_PARENT, A_REFS, A_SPAN_ID, A_START, addFlags, APP_SHIFT, APP_SIZE, flags, gen, R_BEST_APP,
  R_BEST_DEPTH, R_CHILD, R_F_ENTRY, R_F_EXPIRED, R_F_FORCED, R_F_HAS_TID, R_F_IN_THREAD, R_F_NET_CONFLICT,
  R_F_HEAD, R_F_LISTED, R_F_REMOTE_PARENT, R_F_SAMPLED, R_F_STATE, R_F_STUB, R_F_THREAD_CONFLICT, R_FLAGS, R_GEN, R_KEY, R_OWN_APP, R_PARENT, R_REF,
  R_REMOTE_PARENT, R_SIBLING, R_SPAN_ID, R_START, R_TID, R_X, R_Y, REC_SHIFT, REC_SIZE, rp, S_DECIDED, S_LINKED, S_ROOT,
  S_WAITING, setFlags, setState, state, R_F_FREE,
} from "./record";
import { altKey, filedSlot, homeSlot, probeFiled, probeFirst, probeNext, ROLE_B, ROLE_EITHER, tableCheck, tableInsert, tableRemove, tableReplace } from "./table";
import { decidePeekGen, decidePeekIdx, NO_GEN_CHECK, T_DECIDE, T_EXPIRE, T_HORIZON, timerPush } from "./timers";

const NO_GEN: i32 = -1;

@inline function shard(): u32 {
  return <u32>hget(H_SHARD);
}
@inline function threadShard(tid: u64): u32 {
  const shards = <u32>hget(H_SHARDS);
  return shards == 1 ? 0 : shardOfThread(tid, shards); // one shard: no hash, no 64-bit division
}
@inline function isStub(p: usize): bool {
  return (flags(p) & R_F_STUB) != 0;
}
@inline function isEntry(p: usize): bool {
  return (flags(p) & R_F_ENTRY) != 0;
}
/** The net table's shape (table.ts): by net key; conflicts (role B) filed by net key and span id. */
const NET: u64 = <u64>R_KEY | (<u64>R_SPAN_ID << 8) | (<u64>R_F_NET_CONFLICT << 16) | (<u64>R_F_NET_CONFLICT << 32);
/**
 * The thread table's shape: by thread id; owners (entries) role A, members role B. A member is
 * filed under the thread id when it heads its group's waiting list, otherwise (a stub) apart, by
 * thread id and span id.
 */
const THREAD: u64 = <u64>R_TID | (<u64>R_SPAN_ID << 8) | (<u64>R_F_ENTRY << 16) | (<u64>R_F_HEAD << 48);

// ---- App context records ----

@inline function ap(a: u32): usize {
  return poolPtr(H_APP_BASE, APP_SIZE, APP_SHIFT, a);
}
function appRetain(a: u32): void {
  assert(<u64>a <= hget(H_APP_BASE + 2), "app record index out of range");
  if (a != 0) store<u32>(ap(a) + A_REFS, load<u32>(ap(a) + A_REFS) + 1);
}
function appRelease(a: u32): void {
  if (a == 0) return;
  assert(<u64>a <= hget(H_APP_BASE + 2), "app record index out of range");
  assert(load<u32>(ap(a) + A_REFS) > 0, "app record released more often than retained");
  const refs = load<u32>(ap(a) + A_REFS) - 1;
  store<u32>(ap(a) + A_REFS, refs);
  if (refs == 0) poolFree(H_APP_BASE, APP_SIZE, APP_SHIFT, a);
}
function appNew(start: u64, spanId: u64, hi: u64, lo: u64, parent: u64, fl: u32): u32 {
  const a = poolAlloc(H_APP_BASE, APP_SIZE, APP_SHIFT, NO_GEN);
  const q = ap(a);
  store<u64>(q + A_START, start);
  store<u64>(q + A_SPAN_ID, spanId);
  store<u64>(q + A_HI, hi);
  store<u64>(q + A_LO, lo);
  store<u64>(q + A_PARENT, parent);
  store<u32>(q + A_FLAGS, fl);
  return a;
}

/** Carrier order: nearer the root, then earlier start, then smaller span id. */
function nearer(a: u32, da: u32, b: u32, db: u32): bool {
  if (da != db) return da < db;
  const sa = load<u64>(ap(a) + A_START);
  const sb = load<u64>(ap(b) + A_START);
  if (sa != sb) return sa < sb;
  return load<u64>(ap(a) + A_SPAN_ID) < load<u64>(ap(b) + A_SPAN_ID);
}

// ---- Lookups ----

/** A record of table `h` (key at `keyAt`, in role `role`) with this key and span id, or 0; stubs skipped if asked. */
function findRecord(h: i32, keyAt: u32, key: u64, role: u8, spanId: u64, homeOnly: bool): u32 {
  for (let idx = probeFirst(h, keyAt, key, role); idx != 0; idx = probeNext()) {
    const p = rp(idx);
    if (load<u64>(p + R_SPAN_ID) == spanId && (!homeOnly || (flags(p) & R_F_STUB) == 0)) return idx;
  }
  return 0;
}

/** The home record of a span by its net key and span id, or 0. */
export function findHome(key: u64, spanId: u64): u32 {
  const idx = findRecord(H_NET_BASE, R_KEY, key, 0, spanId, true);
  return idx != 0 ? idx : findConflict(key, spanId);
}

/** A conflict held at home by its net key and span id, or 0 (no probe, nor call, while none is held). */
@inline function findConflict(key: u64, spanId: u64): u32 {
  return hget(H_NET_CONFLICTS) == 0 ? 0 : probeConflict(key, spanId);
}

function probeConflict(key: u64, spanId: u64): u32 {
  return findApart(H_NET_BASE, R_KEY, key, spanId);
}

/** A role B record of table `h` filed apart, by its key (at `keyAt`) and span id, or 0. */
function findApart(h: i32, keyAt: u32, key: u64, spanId: u64): u32 {
  for (let idx = probeFiled(h, keyAt, altKey(key, spanId), key, ROLE_B); idx != 0; idx = probeNext()) {
    if (load<u64>(rp(idx) + R_SPAN_ID) == spanId) return idx;
  }
  return 0;
}

/** A record in this shard's thread table by thread id, role (entry: an owner) and span id, or 0. */
function findInThread(tid: u64, entry: bool, spanId: u64): u32 {
  if (entry) return findRecord(H_THR_BASE, R_TID, tid, 0, spanId, false);
  // A member stub: filed apart, or heading its waiting list under the thread id.
  const idx = findApart(H_THR_BASE, R_TID, tid, spanId);
  return idx != 0 ? idx : findRecord(H_THR_BASE, R_TID, tid, ROLE_B, spanId, false);
}

// ---- Ingest ----

/** Sink for touched words: keeps the optimiser from dropping the loads of a prefetch pass. */
let touched: u64 = 0;

/**
 * Group prefetching (Chen et al., "Improving hash join performance through prefetching", 2004):
 * the table slots a batch will probe are loaded first, in one tight loop whose loads do not
 * depend on each other, so the CPU overlaps their cache and TLB misses instead of taking them
 * one span at a time. Touches only; the ingest that follows finds them in cache.
 */
export function prefetchIngest(base: usize, n: u32): void {
  let t = touched;
  for (let i: u32 = 0; i < n; i++) {
    const inp = base + <usize>i * IN_SIZE;
    t ^= homeSlot(H_NET_BASE, load<u64>(inp + IN_KEY));
    if ((load<u32>(inp + IN_FLAGS) & IN_F_HAS_TID) != 0) t ^= homeSlot(H_THR_BASE, load<u64>(inp + IN_TID));
  }
  touched = t;
}

/** Touches a record (group prefetching, as above). */
export function prefetchRecord(idx: u32): void {
  touched ^= load<u64>(rp(idx) + R_KEY);
}

/**
 * Touches the table slots a record's removal will read: its net slot, and an owner's thread slot.
 * A freed record is in the thread table only as an owner or a member stub (S > 1): stubs, filed
 * apart, are left to miss; asking the table where they are filed kept binaryen from inlining this
 * into the free loop.
 */
export function prefetchSlots(idx: u32): void {
  const p = rp(idx);
  const f = flags(p);
  let t = touched;
  if ((f & R_F_STUB) == 0) t ^= filedSlot(H_NET_BASE, NET, idx);
  if ((f & (R_F_IN_THREAD | R_F_ENTRY)) == (R_F_IN_THREAD | R_F_ENTRY)) t ^= homeSlot(H_THR_BASE, load<u64>(p + R_TID));
  touched = t;
}

/** Records a group of decisions may visit, at most (the touch passes below). */
const TREE_TOUCH_MAX: u32 = 4096;

/**
 * Group prefetching for decisions: the trees of `n` roots due together are loaded wave by wave
 * (each wave the first children and next siblings of the one before, whose loads do not depend
 * on each other), so the walks that follow (assign) find them in cache instead of missing once
 * per record down a sibling chain. Follows what assign would: not below a decided record.
 */
export function prefetchTrees(n: u32): void {
  const base = scratchTop;
  for (let k: u32 = 0; k < n; k++) {
    const idx = decidePeekIdx(k);
    const p = rp(idx);
    if (gen(p) == decidePeekGen(k)) scratchPush(idx);
  }
  const roots = scratchTop;
  let from = base;
  let t = touched;
  while (from < scratchTop && scratchTop - base < TREE_TOUCH_MAX) {
    const to = scratchTop;
    for (let i = from; i < to; i++) t ^= load<u64>(rp(scratchGet(i)) + R_KEY);
    for (let i = from; i < to; i++) {
      const p = rp(scratchGet(i));
      const f = flags(p);
      if ((f & R_F_FREE) != 0) continue;
      if (i >= roots) {
        const sib = load<u32>(p + R_SIBLING);
        if (sib != 0) scratchPush(sib);
      }
      if ((f & R_F_STATE) != S_DECIDED) {
        const c = load<u32>(p + R_CHILD);
        if (c != 0) scratchPush(c);
      }
    }
    from = to;
  }
  touched = t;
  while (scratchTop > base) scratchPop();
}

// What one scan of a new span's net group found (ingestOne): a duplicate, a conflict, or the
// partner of the other kind. Globals for the length of one ingestOne, never across calls.
let netDuplicate = false;
let netConflict = false;
let netOther: u32 = 0;

/**
 * One pass over the records of a net group, for a span not yet in it: is it a duplicate (its span
 * id at home), and whom would it join (at most one exit and one entry: a second of its own kind
 * is a conflict)? One scan instead of a duplicate probe and a join probe; the group's conflicts,
 * filed apart, are looked up by span id (only while any is held).
 */
function scanNetGroup(key: u64, spanId: u64, entry: bool): void {
  netDuplicate = false;
  netConflict = false;
  netOther = 0;
  for (let q = probeFirst(H_NET_BASE, R_KEY, key, 0); q != 0; q = probeNext()) {
    const qp = rp(q);
    const f = flags(qp);
    if (load<u64>(qp + R_SPAN_ID) == spanId && (f & R_F_STUB) == 0) {
      netDuplicate = true;
      return;
    }
    // (A conflict shows here only when its tag, filed apart, happens to match on this chain.)
    if ((f & (R_F_EXPIRED | R_F_NET_CONFLICT)) != 0) continue;
    if (((f & R_F_ENTRY) != 0) == entry) netConflict = true;
    else netOther = q;
  }
  // Conflicts are filed apart (by key and span id): a duplicate of one is found there.
  netDuplicate = findConflict(key, spanId) != 0;
}

export function ingestOne(inp: usize): void {
  stat(STAT_RECEIVED);
  const spanId = load<u64>(inp + IN_SPAN_ID);
  const key = load<u64>(inp + IN_KEY);
  const fl = load<u32>(inp + IN_FLAGS);
  scanNetGroup(key, spanId, (fl & IN_F_ENTRY) != 0);
  if (netDuplicate) {
    stat(STAT_DUPLICATES);
    return;
  }
  const conflict = netConflict;
  const other = netOther;
  const arrival = load<i64>(inp + IN_ARRIVAL);
  const idx = poolAlloc(H_REC_BASE, REC_SIZE, REC_SHIFT, R_GEN);
  const p = rp(idx);
  store<u64>(p + R_SPAN_ID, spanId);
  store<u64>(p + R_KEY, key);
  store<u64>(p + R_TID, load<u64>(inp + IN_TID));
  store<u64>(p + R_START, load<u64>(inp + IN_START));
  store<u32>(p + R_REF, load<u32>(inp + IN_REF));
  addFlags(p, ((fl & IN_F_ENTRY) != 0 ? R_F_ENTRY : 0) | ((fl & IN_F_HAS_TID) != 0 ? R_F_HAS_TID : 0));
  if ((fl & (IN_F_APP_TRACE | IN_F_APP_PARENT | IN_F_HAS_SAMPLED)) != 0) {
    const a = appNew(load<u64>(inp + IN_START), spanId, load<u64>(inp + IN_APP_HI), load<u64>(inp + IN_APP_LO),
      load<u64>(inp + IN_APP_PARENT), fl & (IN_F_APP_TRACE | IN_F_APP_PARENT | IN_F_HAS_SAMPLED | IN_F_SAMPLED));
    appRetain(a);
    store<u32>(p + R_OWN_APP, a);
    if ((fl & IN_F_APP_TRACE) != 0) {
      // A carrier: its own context is the best of its (so far empty) subtree, at depth 0.
      appRetain(a);
      store<u32>(p + R_BEST_APP, a);
    }
  }
  timerPush(T_EXPIRE, arrival + <i64>hget(H_WINDOW), idx, gen(p));
  if (conflict) {
    // Not a member of its net group: flagged before it is filed (a conflict is filed apart).
    addFlags(p, R_F_NET_CONFLICT);
    stat(STAT_CONFLICTS);
    hadd(H_NET_CONFLICTS, 1);
  }
  tableInsert(H_NET_BASE, NET, idx);
  // The thread group first: a remote thread shard must hear of the span before any decision
  // about it can follow (the net join may link it under a decided parent at once). Thread links
  // change no flag the net scan looked at, so its findings still hold.
  if ((fl & IN_F_HAS_TID) != 0) registerThread(idx, arrival);
  if (!conflict) netJoin(idx, other);
  // An exit made outside any open entry is a client-side root. (Entries always have a thread
  // id: the contract requires it.)
  if ((fl & (IN_F_HAS_TID | IN_F_ENTRY)) == 0) makeRoot(idx, arrival);
}

/** The exit → entry link of a net group; at most one of each (more are conflicts, not linked). */
function netJoin(idx: u32, other: u32): void {
  const p = rp(idx);
  if (other == 0) return;
  if (isEntry(p)) link(idx, other);
  else if (state(rp(other)) == S_WAITING) link(other, idx);
}

function registerThread(idx: u32, arrival: i64): void {
  const p = rp(idx);
  const tid = load<u64>(p + R_TID);
  const dest = threadShard(tid);
  if (dest == shard()) {
    threadJoin(idx);
    return;
  }
  send(dest, MSG_REG_THREAD, load<u64>(p + R_SPAN_ID), load<u64>(p + R_KEY), tid, <u64>arrival, flags(p), 0, 0);
  // An exit's stub must know the best carrier below it before it links up.
  if (!isEntry(p) && load<u32>(p + R_BEST_APP) != 0 && state(p) != S_DECIDED) propagate(idx);
}

/**
 * A record (home or stub) joins this shard's thread table: an owner adopts the members waiting
 * for it, a member links to its owner. Owners and members are kept in the table's two roles, so
 * neither probe reads the records of the other kind (nor a member its waiting siblings).
 *
 * Members waiting for their owner form one list per thread group, whose head alone is filed under
 * the thread id (role B): a thread making N calls before its entry arrives (fan-out, an N + 1
 * query loop) costs N list inserts, where N table entries under one key made every insert and
 * probe walk the key's chain of buckets (time quadratic in N). A home member is in the table only
 * as a head (it is never looked for by span id); a stub is always, filed apart by thread id and
 * span id when not the head (decisions and summaries find it by span id).
 */
function threadJoin(idx: u32): void {
  const p = rp(idx);
  const tid = load<u64>(p + R_TID);
  if (!isEntry(p)) {
    // One probe of both roles: the live owner, else the head of the waiting list.
    let owner: u32 = 0;
    let head: u32 = 0;
    for (let q = probeFirst(H_THR_BASE, R_TID, tid, ROLE_EITHER); q != 0; q = probeNext()) {
      const f = flags(rp(q));
      if ((f & (R_F_ENTRY | R_F_EXPIRED | R_F_THREAD_CONFLICT)) == R_F_ENTRY) {
        owner = q;
        break;
      }
      if ((f & R_F_HEAD) != 0) head = q;
    }
    if (owner == 0) {
      listWaiting(idx, head);
      return;
    }
    // A home member linked to its owner is never looked for in its thread group again.
    if (isStub(p)) insertThread(idx);
    link(idx, owner);
    return;
  }
  insertThread(idx);
  for (let q = probeFirst(H_THR_BASE, R_TID, tid, 0); q != 0; q = probeNext()) {
    // (A stub filed apart shows here when its tag happens to match: an entry it is not.)
    if (q != idx && (flags(rp(q)) & (R_F_ENTRY | R_F_EXPIRED | R_F_THREAD_CONFLICT)) == R_F_ENTRY) {
      addFlags(p, R_F_THREAD_CONFLICT); // a second live owner: not linked
      stat(STAT_CONFLICTS);
      return;
    }
  }
  let head: u32 = 0;
  for (let q = probeFirst(H_THR_BASE, R_TID, tid, ROLE_B); q != 0; q = probeNext()) {
    if ((flags(rp(q)) & R_F_HEAD) != 0) {
      head = q; // (a stub filed apart shows here only when its tag happens to match)
      break;
    }
  }
  if (head == 0) return;
  // The whole list is linked: taken off first (its links are the fields linking sets).
  const base = scratchTop;
  unfile(head);
  for (let q = head; q != 0; ) {
    const qp = rp(q);
    const next = load<u32>(qp + R_SIBLING);
    unlisted(qp);
    scratchPush(q);
    q = next;
  }
  const end = scratchTop;
  for (let i = base; i < end; i++) link(scratchGet(i), idx);
  while (scratchTop > base) scratchPop();
}

/** A member with no owner yet joins its group's waiting list, headed by `head` (0: none yet). */
function listWaiting(idx: u32, head: u32): void {
  const p = rp(idx);
  if (head == 0) {
    addFlags(p, R_F_LISTED | R_F_HEAD);
    insertThread(idx); // R_PARENT and R_SIBLING are 0 in a new record
    return;
  }
  addFlags(p, R_F_LISTED);
  if (isStub(p)) insertThread(idx); // filed apart
  // Second on the list, after the head (the order of a list is of no consequence).
  const hp = rp(head);
  const next = load<u32>(hp + R_SIBLING);
  store<u32>(p + R_PARENT, head);
  store<u32>(p + R_SIBLING, next);
  if (next != 0) store<u32>(rp(next) + R_PARENT, idx);
  store<u32>(hp + R_SIBLING, idx);
}

/**
 * A head leaves the thread table's slot under the thread id; a stub goes back in, filed apart (a
 * stub is always findable by span id).
 */
function unfile(head: u32): void {
  const hp = rp(head);
  tableRemove(H_THR_BASE, THREAD, head);
  setFlags(hp, flags(hp) & ~(R_F_HEAD | R_F_IN_THREAD));
  if (isStub(hp)) insertThread(head);
}

/**
 * A waiting member leaves its list: its window is over, it will not be linked, and it is not
 * looked for in its thread group again (a stub is freed now, a home member becomes a root), so
 * a head leaves the table without being filed apart.
 */
function unlist(idx: u32): void {
  const p = rp(idx);
  const prev = load<u32>(p + R_PARENT);
  const next = load<u32>(p + R_SIBLING);
  if (next != 0) store<u32>(rp(next) + R_PARENT, prev);
  if (prev != 0) {
    store<u32>(rp(prev) + R_SIBLING, next);
  } else {
    if (next != 0) {
      // The next one heads the list, in this one's slot (a stub leaves its own slot apart first).
      const np = rp(next);
      if (isStub(np)) tableRemove(H_THR_BASE, THREAD, next);
      addFlags(np, R_F_HEAD | R_F_IN_THREAD);
      tableReplace(H_THR_BASE, THREAD, idx, next);
    } else {
      tableRemove(H_THR_BASE, THREAD, idx);
    }
    setFlags(p, flags(p) & ~(R_F_HEAD | R_F_IN_THREAD));
  }
  unlisted(p);
}

/** Off the list: the fields the list used are its parent and sibling again. */
@inline function unlisted(p: usize): void {
  setFlags(p, flags(p) & ~(R_F_LISTED | R_F_HEAD));
  store<u32>(p + R_PARENT, 0);
  store<u32>(p + R_SIBLING, 0);
}

@inline function insertThread(idx: u32): void {
  tableInsert(H_THR_BASE, THREAD, idx);
  addFlags(rp(idx), R_F_IN_THREAD);
}

function link(child: u32, parent: u32): void {
  const c = rp(child);
  const pp = rp(parent);
  assert((flags(c) & R_F_FREE) == 0 && (flags(pp) & R_F_FREE) == 0, "link: a freed record");
  assert(state(c) == S_WAITING, "link: child already placed");
  // A home member is linked straight away or taken off its waiting list first: never in the table.
  assert((flags(c) & R_F_LISTED) == 0 && (flags(c) & (R_F_ENTRY | R_F_STUB | R_F_IN_THREAD)) != R_F_IN_THREAD, "link: a home member still filed");
  setState(c, S_LINKED);
  store<u32>(c + R_PARENT, parent);
  store<u32>(c + R_SIBLING, load<u32>(pp + R_CHILD));
  store<u32>(pp + R_CHILD, child);
  if (isStub(c)) {
    send(load<u32>(c + R_REF), MSG_LINK, load<u64>(c + R_SPAN_ID), load<u64>(c + R_KEY), load<u64>(pp + R_SPAN_ID), 0, 0, 0, 0);
  }
  if (state(pp) == S_DECIDED) {
    stat(STAT_LATE);
    assign(child, load<u64>(pp + R_X), load<u64>(pp + R_Y), (flags(pp) & R_F_SAMPLED) != 0);
  } else if (load<u32>(c + R_BEST_APP) != 0) {
    propagate(child);
  }
}

// ---- App-context summaries flowing up ----

/** Offers a carrier at `depth` below record `idx`; walks up while it improves the best. */
function offer(idx: u32, a: u32, depth: u32): void {
  for (;;) {
    const p = rp(idx);
    assert((flags(p) & R_F_FREE) == 0, "offer: a freed record");
    if (state(p) == S_DECIDED) return;
    const cur = load<u32>(p + R_BEST_APP);
    if (cur != 0 && !nearer(a, depth, cur, load<u32>(p + R_BEST_DEPTH))) return;
    appRetain(a);
    appRelease(cur);
    store<u32>(p + R_BEST_APP, a);
    store<u32>(p + R_BEST_DEPTH, depth);
    const next = upward(idx);
    if (next == 0) return;
    idx = next;
    depth++;
  }
}

/** Pushes a record's best carrier one step up: returns a local parent to continue at, or 0. */
function propagate(idx: u32): void {
  const next = upward(idx);
  if (next != 0) offer(next, load<u32>(rp(idx) + R_BEST_APP), load<u32>(rp(idx) + R_BEST_DEPTH) + 1);
}

/** Where a record's summary goes: a local parent (returned), a message (sent, 0), or nowhere. */
function upward(idx: u32): u32 {
  const p = rp(idx);
  const f = flags(p);
  const a = load<u32>(p + R_BEST_APP);
  if ((f & R_F_STUB) != 0) {
    if ((f & R_F_ENTRY) != 0) {
      // An owner's stand-in: its parent is at the owner's home.
      sendSummary(load<u32>(p + R_REF), MSG_SUMMARY_HOME, load<u64>(p + R_SPAN_ID), load<u64>(p + R_KEY), a, load<u32>(p + R_BEST_DEPTH));
      return 0;
    }
    return state(p) == S_LINKED ? load<u32>(p + R_PARENT) : 0;
  }
  if ((f & (R_F_ENTRY | R_F_HAS_TID)) == R_F_HAS_TID && threadShard(load<u64>(p + R_TID)) != shard()) {
    // A member whose thread group is elsewhere: its stub there links it up.
    const tid = load<u64>(p + R_TID);
    sendSummary(threadShard(tid), MSG_SUMMARY_STUB, load<u64>(p + R_SPAN_ID), tid, a, load<u32>(p + R_BEST_DEPTH));
    return 0;
  }
  return state(p) == S_LINKED && (f & R_F_REMOTE_PARENT) == 0 ? load<u32>(p + R_PARENT) : 0;
}

function sendSummary(dest: u32, type: u32, spanId: u64, where: u64, a: u32, depth: u32): void {
  const q = ap(a);
  send(dest, type, spanId, where, load<u64>(q + A_START), load<u64>(q + A_SPAN_ID), load<u64>(q + A_HI),
    load<u64>(q + A_LO), <u64>depth | (<u64>load<u32>(q + A_FLAGS) << 32));
}

// ---- Roots, decisions, output ----

function makeRoot(idx: u32, at: i64): void {
  const p = rp(idx);
  setState(p, S_ROOT);
  stat(STAT_ROOTS);
  timerPush(T_DECIDE, at + <i64>hget(H_SETTLE), idx, gen(p));
}

/** A root (or a forced one) decides its trace: the app's id or its own, and sampling. */
export function decide(idx: u32): void {
  const p = rp(idx);
  const a = load<u32>(p + R_BEST_APP);
  const opts = hget(H_OPTS);
  let hi: u64, lo: u64;
  if ((opts & OPT_USE_APP) != 0 && a != 0) {
    hi = load<u64>(ap(a) + A_HI);
    lo = load<u64>(ap(a) + A_LO);
  } else {
    hi = traceHiOfRoot(load<u64>(p + R_SPAN_ID), load<u64>(p + R_START));
    lo = traceLoOfRoot(load<u64>(p + R_SPAN_ID));
  }
  let sampled: bool;
  if (a != 0 && (load<u32>(ap(a) + A_FLAGS) & IN_F_HAS_SAMPLED) != 0) {
    sampled = (load<u32>(ap(a) + A_FLAGS) & IN_F_SAMPLED) != 0; // the app's decision wins
  } else {
    sampled = (opts & OPT_KEEP_ALL) != 0 || sampleHash(hi, lo) < hget(H_THRESHOLD);
  }
  assign(idx, hi, lo, sampled);
}

/** Gives a record and its whole local subtree a decided trace; remote parts get messages. */
export function assign(start: u32, hi: u64, lo: u64, sampled: bool): void {
  const base = scratchTop;
  scratchPush(start);
  while (scratchTop > base) {
    const idx = scratchPop();
    const p = rp(idx);
    assert((flags(p) & R_F_FREE) == 0, "assign: a freed record");
    if (state(p) == S_DECIDED) continue;
    appRelease(load<u32>(p + R_BEST_APP));
    store<u64>(p + R_X, hi);
    store<u64>(p + R_Y, lo);
    setState(p, S_DECIDED);
    hadd(H_DECIDED_HELD, 1);
    if (sampled) addFlags(p, R_F_SAMPLED);
    const f = flags(p);
    if ((f & R_F_STUB) != 0) {
      // A member's stand-in tells the member's home.
      if ((f & R_F_ENTRY) == 0) send(load<u32>(p + R_REF), MSG_DECIDED, load<u64>(p + R_SPAN_ID), load<u64>(p + R_KEY), hi, lo, sampled ? 1 : 0, 0, 0);
    } else {
      emit(p, hi, lo, sampled);
      if ((f & R_F_ENTRY) != 0) {
        const tid = load<u64>(p + R_TID);
        const dest = threadShard(tid);
        if (dest != shard()) send(dest, MSG_OWNER_DECIDED, load<u64>(p + R_SPAN_ID), tid, hi, lo, sampled ? 1 : 0, 0, 0);
      }
    }
    for (let c = load<u32>(p + R_CHILD); c != 0; c = load<u32>(rp(c) + R_SIBLING)) scratchPush(c);
    if ((f & R_F_EXPIRED) != 0) deferFree(idx);
  }
}

function emit(p: usize, hi: u64, lo: u64, sampled: bool): void {
  const f = flags(p);
  let parent: u64 = 0;
  if ((f & R_F_FORCED) != 0) parent = 0;
  else if ((f & R_F_REMOTE_PARENT) != 0) parent = load<u64>(p + R_REMOTE_PARENT);
  else if (state(p) != S_ROOT && load<u32>(p + R_PARENT) != 0) parent = load<u64>(rp(load<u32>(p + R_PARENT)) + R_SPAN_ID);
  const own = load<u32>(p + R_OWN_APP);
  // DESIGN.md: a span carrying app_parent_id nests under the application's span.
  if ((hget(H_OPTS) & OPT_USE_APP) != 0 && own != 0 && (load<u32>(ap(own) + A_FLAGS) & IN_F_APP_PARENT) != 0) {
    parent = load<u64>(ap(own) + A_PARENT);
  }
  const o = outNext();
  store<u64>(o + OUT_SPAN_ID, load<u64>(p + R_SPAN_ID));
  store<u64>(o + OUT_TRACE_HI, hi);
  store<u64>(o + OUT_TRACE_LO, lo);
  store<u64>(o + OUT_PARENT, parent);
  store<u32>(o + OUT_REF, load<u32>(p + R_REF));
  store<u32>(o + OUT_FLAGS, (sampled ? OUT_F_SAMPLED : 0) | (parent != 0 ? OUT_F_HAS_PARENT : 0));
  stat(sampled ? STAT_SAMPLED_IN : STAT_SAMPLED_OUT);
}

// ---- Timers ----

export function onTimer(kind: u32, idx: u32, g: i32, at: i64): void {
  const p = rp(idx);
  if (g != NO_GEN_CHECK && gen(p) != <u32>g) return; // the record was freed and reused since
  if (kind == T_EXPIRE) expire(idx, at);
  else if (kind == T_DECIDE) {
    if (state(p) == S_ROOT) decide(idx);
  } else if (kind == T_HORIZON && state(p) == S_LINKED && !isStub(p)) {
    // Linked, but its tree never resolved: a cycle in bad input, or a tree spread over more
    // than its window. It becomes a root; its parent must not reach it any more.
    detach(idx);
    addFlags(p, R_F_FORCED);
    stat(STAT_FORCED);
    stat(STAT_ROOTS);
    decide(idx);
  }
}

/** Takes a record out of its local parent's child list. */
function detach(idx: u32): void {
  const p = rp(idx);
  if ((flags(p) & R_F_REMOTE_PARENT) != 0) return;
  const parent = load<u32>(p + R_PARENT);
  if (parent == 0) return;
  const next = load<u32>(p + R_SIBLING);
  let at = rp(parent) + R_CHILD; // the link that points at idx: a parent's child or a sibling
  while (load<u32>(at) != idx) {
    const c = load<u32>(at);
    if (c == 0) return;
    at = rp(c) + R_SIBLING;
  }
  store<u32>(at, next);
}

/** The window is over: relatives arriving from now on do not find it. */
function expire(idx: u32, at: i64): void {
  const p = rp(idx);
  addFlags(p, R_F_EXPIRED);
  const s = state(p);
  if ((flags(p) & R_F_LISTED) != 0) unlist(idx); // waiting, and will not be linked now
  if (isStub(p)) {
    // A stand-in stays while a decision must pass through it.
    const needed = isEntry(p) ? s != S_DECIDED && load<u32>(p + R_CHILD) != 0 : s == S_LINKED;
    if (!needed) deferFree(idx);
    return;
  }
  if (s == S_WAITING) {
    stat(STAT_ORPHANS);
    makeRoot(idx, at);
  } else if (s == S_LINKED) {
    // Its root decides at the latest a window and a settle from now (an orphan entry that arrived
    // just now); a second settle lets that decision reach it from another shard first, so that a
    // tie does not force a root with shards that one engine would not.
    timerPush(T_HORIZON, at + <i64>hget(H_WINDOW) + 2 * <i64>hget(H_SETTLE), idx, gen(p));
  } else if (s == S_DECIDED) {
    deferFree(idx);
  }
}

export function freeRecord(idx: u32): void {
  const p = rp(idx);
  const f = flags(p);
  appRelease(load<u32>(p + R_OWN_APP));
  if ((f & R_F_STATE) != S_DECIDED) appRelease(load<u32>(p + R_BEST_APP));
  else hadd(H_DECIDED_HELD, <u64>-1);
  if ((f & R_F_STUB) == 0) {
    tableRemove(H_NET_BASE, NET, idx);
    if ((f & R_F_NET_CONFLICT) != 0) hadd(H_NET_CONFLICTS, <u64>-1);
  }
  if ((f & R_F_IN_THREAD) != 0) tableRemove(H_THR_BASE, THREAD, idx);
  setFlags(p, R_F_FREE);
  store<u16>(p + R_GEN, <u16>(gen(p) + 1)); // timers still pointing here are now stale
  poolFree(H_REC_BASE, REC_SIZE, REC_SHIFT, idx);
}

// ---- Messages from other shards ----

export function acceptOne(m: usize): void {
  const type = load<u32>(m + MSG_TYPE);
  const a = load<u64>(m + MSG_A);
  const b = load<u64>(m + MSG_B);
  if (type == MSG_REG_THREAD) {
    // A registration seen before (the sender replayed its log after a restart) changes nothing.
    if (findInThread(load<u64>(m + MSG_C), (<u32>load<u64>(m + MSG_E) & R_F_ENTRY) != 0, a) != 0) return;
    const idx = poolAlloc(H_REC_BASE, REC_SIZE, REC_SHIFT, R_GEN);
    const p = rp(idx);
    store<u64>(p + R_SPAN_ID, a);
    store<u64>(p + R_KEY, b);
    store<u64>(p + R_TID, load<u64>(m + MSG_C));
    store<u32>(p + R_REF, shardOfNetKey(b));
    addFlags(p, R_F_STUB | R_F_HAS_TID | (<u32>load<u64>(m + MSG_E) & R_F_ENTRY));
    stat(STAT_STUBS);
    timerPush(T_EXPIRE, load<i64>(m + MSG_D) + <i64>hget(H_WINDOW), idx, gen(p));
    threadJoin(idx);
  } else if (type == MSG_LINK) {
    const idx = findHome(b, a);
    if (idx == 0) return;
    const p = rp(idx);
    if (state(p) != S_WAITING) return;
    setState(p, S_LINKED);
    addFlags(p, R_F_REMOTE_PARENT);
    store<u64>(p + R_REMOTE_PARENT, load<u64>(m + MSG_C));
  } else if (type == MSG_OWNER_DECIDED) {
    const idx = findInThread(b, true, a); // the owner's stub
    if (idx != 0) assign(idx, load<u64>(m + MSG_C), load<u64>(m + MSG_D), load<u64>(m + MSG_E) != 0);
  } else if (type == MSG_DECIDED) {
    const idx = findHome(b, a);
    if (idx != 0) assign(idx, load<u64>(m + MSG_C), load<u64>(m + MSG_D), load<u64>(m + MSG_E) != 0);
  } else if (type == MSG_SUMMARY_HOME || type == MSG_SUMMARY_STUB) {
    const idx = type == MSG_SUMMARY_HOME ? findHome(b, a) : findInThread(b, false, a); // a member's stub
    if (idx == 0) return;
    const g = load<u64>(m + MSG_G);
    const carrier = appNew(load<u64>(m + MSG_C), load<u64>(m + MSG_D), load<u64>(m + MSG_E), load<u64>(m + MSG_F), 0, <u32>(g >> 32));
    appRetain(carrier);
    offer(idx, carrier, <u32>g);
    appRelease(carrier);
  }
}

import { shardOfNet } from "./ids";
@inline function shardOfNetKey(key: u64): u32 {
  return shardOfNet(key, <u32>hget(H_SHARDS));
}

/**
 * Consistency check for tests: 0, or a code naming the first broken invariant: 10 + the net
 * table's code, 20 + the thread table's (table.ts), 30 + the waiting lists' (checkLists).
 */
export function checkTables(): u32 {
  const net = tableCheck(H_NET_BASE, NET, <u16>R_F_FREE);
  if (net != 0) return 10 + net;
  const thread = tableCheck(H_THR_BASE, THREAD, <u16>R_F_FREE);
  if (thread != 0) return 20 + thread;
  const lists = checkLists();
  return lists != 0 ? 30 + lists : 0;
}

/**
 * The waiting lists, record by record: 1 a link that its neighbour does not return, 2 a head not
 * first on its list or not in the thread table, 3 a listed record that is not a waiting member of
 * its neighbour's thread (expired, linked, an entry), 4 a home member in the thread table but not
 * as a head, or a member stub not in it.
 */
function checkLists(): u32 {
  const hwm = <u32>hget(H_REC_BASE + 2);
  for (let idx: u32 = 1; idx <= hwm; idx++) {
    const p = rp(idx);
    const f = flags(p);
    if ((f & (R_F_FREE | R_F_ENTRY)) != 0) continue;
    if ((f & R_F_STUB) != 0 ? (f & R_F_IN_THREAD) == 0 : (f & (R_F_IN_THREAD | R_F_HEAD)) == R_F_IN_THREAD) return 4;
    if ((f & R_F_LISTED) == 0) {
      if ((f & R_F_HEAD) != 0) return 2;
      continue;
    }
    const prev = load<u32>(p + R_PARENT);
    const next = load<u32>(p + R_SIBLING);
    if (prev != 0 && load<u32>(rp(prev) + R_SIBLING) != idx) return 1;
    if (next != 0 && load<u32>(rp(next) + R_PARENT) != idx) return 1;
    if ((prev == 0) != ((f & R_F_HEAD) != 0) || ((f & R_F_HEAD) != 0 && (f & R_F_IN_THREAD) == 0)) return 2;
    if ((f & R_F_EXPIRED) != 0 || state(p) != S_WAITING) return 3;
    if (next != 0 && load<u64>(rp(next) + R_TID) != load<u64>(p + R_TID)) return 3;
  }
  return 0;
}
