// A span record (64 bytes, a cache line): a span whose home is this shard, or a stub standing in
// at its thread shard for a span whose home is another shard. Sized for ≤ 100 B per held span
// with its table slots and timer (BENCHMARKS.md measures it): fields that are never needed at
// the same time share bytes.
import { H_REC_BASE } from "./header";
import { poolPtr } from "./pool";

export const R_SPAN_ID: u32 = 0; // u64
export const R_KEY: u32 = 8; // u64: req_seq | resp_seq << 32
export const R_TID: u32 = 16; // u64: thread id (R_F_HAS_TID)
// Undecided: X = the best app-context carrier of the subtree (app record u32, depth u32) and
// Y = the span's start_ns (a root's trace id needs it: the ULID time). Decided: the trace id.
export const R_X: u32 = 24; // u64
export const R_Y: u32 = 32; // u64
export const R_BEST_APP: u32 = 24; // u32 (undecided)
export const R_BEST_DEPTH: u32 = 28; // u32 (undecided)
export const R_START: u32 = 32; // u64 (undecided)
// Local parent and next sibling (u32 each); or, with R_F_REMOTE_PARENT, the parent's span id; or,
// with R_F_LISTED (a member waiting for its owner), the previous and next waiting member.
export const R_PARENT: u32 = 40; // u32
export const R_SIBLING: u32 = 44; // u32
export const R_REMOTE_PARENT: u32 = 40; // u64
export const R_CHILD: u32 = 48; // u32: first child
export const R_REF: u32 = 52; // u32: host handle (home) / home shard (stub)
export const R_FLAGS: u32 = 56; // u16: R_F_*
export const R_GEN: u32 = 58; // u16: survives free
export const R_OWN_APP: u32 = 60; // u32: this span's own app context record
export const REC_SIZE: u32 = 64;
/** Records per pool page: 2^10 (64 KiB pages). */
export const REC_SHIFT: u32 = 10;

export const R_F_ENTRY: u32 = 1;
export const R_F_HAS_TID: u32 = 2;
export const R_F_STUB: u32 = 4;
export const R_F_EXPIRED: u32 = 8; // window over: relatives arriving now do not find it
export const R_F_NET_CONFLICT: u32 = 16; // not a member of its net group
export const R_F_THREAD_CONFLICT: u32 = 32; // not the owner of its thread group
export const R_F_STATE: u32 = 64 | 128;
export const R_F_SAMPLED: u32 = 256;
export const R_F_REMOTE_PARENT: u32 = 512;
export const R_F_FORCED: u32 = 1024;
export const R_F_IN_THREAD: u32 = 2048; // in this shard's thread table
export const R_F_LISTED: u32 = 0x1000; // on its thread group's list of waiting members (link.ts)
export const R_F_HEAD: u32 = 0x2000; // the head of that list: filed in the thread table under its thread id
export const R_F_FREE: u32 = 0x8000; // on the free list (checks only)

export const S_WAITING: u32 = 0;
export const S_LINKED: u32 = 64;
export const S_ROOT: u32 = 128;
export const S_DECIDED: u32 = 192;

@inline export function rp(idx: u32): usize {
  return poolPtr(H_REC_BASE, REC_SIZE, REC_SHIFT, idx);
}
@inline export function flags(p: usize): u32 {
  return <u32>load<u16>(p + R_FLAGS);
}
@inline export function setFlags(p: usize, f: u32): void {
  store<u16>(p + R_FLAGS, <u16>f);
}
@inline export function addFlags(p: usize, f: u32): void {
  store<u16>(p + R_FLAGS, <u16>(flags(p) | f));
}
@inline export function state(p: usize): u32 {
  return flags(p) & R_F_STATE;
}
@inline export function setState(p: usize, s: u32): void {
  setFlags(p, (flags(p) & ~R_F_STATE) | s);
}
@inline export function gen(p: usize): u32 {
  return <u32>load<u16>(p + R_GEN);
}

// ---- App context records (40 bytes): a span's own context, or a carrier copied from a summary.
// Shared by reference count between a span's own slot and the best slots of its ancestors.
export const A_START: u32 = 0; // u64
export const A_SPAN_ID: u32 = 8; // u64: the carrier span
export const A_HI: u32 = 16; // u64
export const A_LO: u32 = 24; // u64
export const A_PARENT: u32 = 32; // u64: app parent span id (own context only)
export const A_FLAGS: u32 = 40; // u32: IN_F_APP_TRACE | IN_F_APP_PARENT | IN_F_HAS_SAMPLED | IN_F_SAMPLED
export const A_REFS: u32 = 44; // u32
export const APP_SIZE: u32 = 48;
/** App records per pool page: 2^12 (192 KiB pages: carved from a 256 KiB region, the rest is a record page). */
export const APP_SHIFT: u32 = 12;
