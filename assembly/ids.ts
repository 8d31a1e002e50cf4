// Id arithmetic, identical to src/linker/ids.ts (a unit test checks they agree).

/** SplitMix64's finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mixer. */
@inline export function mix64(x: u64): u64 {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

export const SALT_TRACE_HI: u64 = 0x2545f4914f6cdd1d;
export const SALT_TRACE_LO: u64 = 0x9e3779b97f4a7c15;
export const SALT_SAMPLE: u64 = 0xd6e8feb86659fd93;
export const SALT_THREAD_SHARD: u64 = 0xa0761d6478bd642f;
export const SALT_TABLE: u64 = 0xe7037ed1a0b428db;
export const SALT_ALT: u64 = 0x8ebc6af09c88c6e3;

/** ULID layout: 48-bit unix ms of the root's start, then 80 bits hashed from its span id. */
@inline export function traceHiOfRoot(spanId: u64, startNs: u64): u64 {
  const ms = (startNs / 1_000_000) & 0xffffffffffff;
  return (ms << 16) | (mix64(spanId ^ SALT_TRACE_HI) & 0xffff);
}
@inline export function traceLoOfRoot(spanId: u64): u64 {
  const lo = mix64(spanId ^ SALT_TRACE_LO);
  return lo != 0 ? lo : 1;
}

@inline export function sampleHash(hi: u64, lo: u64): u64 {
  return mix64(hi ^ mix64(lo ^ SALT_SAMPLE));
}

@inline export function shardOfNet(key: u64, shards: u32): u32 {
  return <u32>(mix64(key) % <u64>shards);
}
@inline export function shardOfThread(tid: u64, shards: u32): u32 {
  return <u32>(mix64(tid ^ SALT_THREAD_SHARD) % <u64>shards);
}
