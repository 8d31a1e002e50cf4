/**
 * Seeded PRNG for the traffic generator: sfc32 seeded through splitmix32.
 * Why not Math.random: property tests and benchmarks must replay the exact same traffic from a
 * seed. Why sfc32: 32-bit integer ops only (Math.imul, |0), so it is fast in V8 and needs no BigInt.
 */

const HEX = Array.from("0123456789abcdef", (c) => c.charCodeAt(0));

/**
 * 16 lower-case hex digits of two 32-bit halves. One fromCharCode call makes a flat string:
 * concatenated pieces would be a rope that V8 flattens again when the id is hashed (Map keys).
 */
export function hex64(hi: number, lo: number): string {
  return String.fromCharCode(
    HEX[hi >>> 28], HEX[(hi >>> 24) & 15], HEX[(hi >>> 20) & 15], HEX[(hi >>> 16) & 15],
    HEX[(hi >>> 12) & 15], HEX[(hi >>> 8) & 15], HEX[(hi >>> 4) & 15], HEX[hi & 15],
    HEX[lo >>> 28], HEX[(lo >>> 24) & 15], HEX[(lo >>> 20) & 15], HEX[(lo >>> 16) & 15],
    HEX[(lo >>> 12) & 15], HEX[(lo >>> 8) & 15], HEX[(lo >>> 4) & 15], HEX[lo & 15],
  );
}

/** A small integer hash (murmur3 finaliser) for values that must not consume the PRNG stream. */
export function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    // splitmix32 spreads any seed (small ints, negatives, > 2^32) over the 128-bit state.
    let s = (seed >>> 0) ^ mix32(Math.floor(seed / 4294967296) >>> 0);
    const next = (): number => {
      s = (s + 0x9e3779b9) | 0;
      return mix32(s);
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32(); // discard the first outputs: sfc32's warm-up
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) + t;
    this.c |= 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [lo, hi] (inclusive; hi - lo < 2^32). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)];
  }

  /**
   * Integer in [lo, hi], mostly near lo with a long tail (median ≈ lo + (hi - lo) / 16), like
   * latencies and payload sizes. A power of u instead of log-uniform: no Math.pow per draw.
   */
  skewInt(lo: number, hi: number): number {
    const u = this.float();
    const u2 = u * u;
    return lo + Math.floor((hi - lo) * u2 * u2);
  }

  /** Random 64-bit id as 16 lower-case hex, never all zero (span ids, thread ids, app span ids). */
  hex16(): string {
    let hi = this.u32();
    const lo = this.u32();
    if (hi === 0 && lo === 0) hi = 1;
    return hex64(hi, lo);
  }

  /** Random 128-bit id as 32 lower-case hex, never all zero (W3C trace ids). */
  hex32(): string {
    return this.hex16() + this.hex16();
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.float() * (i + 1));
      const x = items[i];
      items[i] = items[j];
      items[j] = x;
    }
    return items;
  }
}
