/**
 * Id arithmetic shared by the reference model and the WASM glue: 64-bit mixing, deterministic
 * trace ids and the sampling hash. The AssemblyScript engine (assembly/ids.ts) implements the
 * same functions on u64; a unit test checks both give identical results.
 */

const M64 = (1n << 64n) - 1n;

/** SplitMix64's finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mixer. */
export function mix64(x: bigint): bigint {
  x = (x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n & M64;
  x = (x ^ (x >> 27n)) * 0x94d049bb133111ebn & M64;
  return x ^ (x >> 31n);
}

/** Salts that keep the derived hashes independent of each other. */
export const SALT_TRACE_HI = 0x2545f4914f6cdd1dn;
export const SALT_TRACE_LO = 0x9e3779b97f4a7c15n;
export const SALT_SAMPLE = 0xd6e8feb86659fd93n;
export const SALT_THREAD_SHARD = 0xa0761d6478bd642fn;

export interface TraceId {
  hi: bigint;
  lo: bigint;
}

/**
 * The trace id of a tree, a function of its root only: a ULID layout (48-bit unix ms of the
 * root's start, then 80 bits of a hash of the root's span id) so trace ids sort by time.
 */
export function traceIdOfRoot(rootSpanId: bigint, rootStartNs: bigint): TraceId {
  const ms = (rootStartNs / 1_000_000n) & 0xffffffffffffn;
  const h = mix64(rootSpanId ^ SALT_TRACE_HI);
  const lo = mix64(rootSpanId ^ SALT_TRACE_LO) || 1n;
  return { hi: (ms << 16n) | (h & 0xffffn), lo };
}

/** Sampling threshold for a rate: a trace is kept when sampleHash(trace) < threshold. */
export function samplingThreshold(rate: number): bigint {
  if (!(rate >= 0)) throw new Error(`sampling rate ${rate} is not a number ≥ 0`);
  if (rate >= 1) return M64; // and `keepAll` below
  return BigInt(Math.floor(rate * 2 ** 64));
}

export function sampleHash(t: TraceId): bigint {
  return mix64(t.hi ^ mix64(t.lo ^ SALT_SAMPLE));
}

export function keepTrace(t: TraceId, rate: number, threshold: bigint): boolean {
  return rate >= 1 || sampleHash(t) < threshold;
}

/** Shard of a net group and of a thread group (DESIGN.md "Scale-out"). */
export function shardOfNet(reqSeq: number, respSeq: number, shards: number): number {
  return Number(mix64(BigInt(reqSeq) | (BigInt(respSeq) << 32n)) % BigInt(shards));
}
export function shardOfThread(threadId: bigint, shards: number): number {
  return Number(mix64(threadId ^ SALT_THREAD_SHARD) % BigInt(shards));
}

export const hex16 = (x: bigint): string => x.toString(16).padStart(16, "0");
export const hex32 = (t: TraceId): string => hex16(t.hi) + hex16(t.lo);
export const parseHex = (s: string): bigint => BigInt("0x" + s);
export function parseTraceId(s: string): TraceId {
  return { hi: parseHex(s.slice(0, 16)), lo: parseHex(s.slice(16, 32)) };
}

/** Trace store shard of a trace id (32 hex). */
export function shardOfTrace(traceId: string, shards: number): number {
  return Number(mix64(parseHex(traceId.slice(16, 32)) ^ SALT_TRACE_HI) % BigInt(shards));
}
