/**
 * Unix-ns timestamps without per-span BigInt work. The model keeps time as a Number offset (ns)
 * from the run's base, exact below 2^53 ns (104 days); only the printed `start_ns` needs the
 * full 64-bit value, so the base is split at 10^12 and offset + low part is carried by hand.
 */
const SPLIT = 1_000_000_000_000;
const SPLIT_BIG = 1_000_000_000_000n;

export class NsClock {
  private readonly high: number;
  private readonly low: number;
  /** The leading digits change once every 10^12 ns: keep their string. */
  private lastCarry = -1;
  private highText = "";

  constructor(readonly base: bigint) {
    if (base < 0n) throw new RangeError("baseNs must be ≥ 0");
    this.high = Number(base / SPLIT_BIG);
    this.low = Number(base % SPLIT_BIG);
  }

  /** base + off as a decimal string (off: integer ns ≥ 0). */
  decimal(off: number): string {
    const t = this.low + off;
    const carry = Math.floor(t / SPLIT);
    const low = t - carry * SPLIT;
    if (carry !== this.lastCarry) {
      this.lastCarry = carry;
      const high = this.high + carry;
      this.highText = high === 0 ? "" : String(high);
    }
    return this.highText === "" ? String(low) : this.highText + String(low).padStart(12, "0");
  }

  bigint(off: number): bigint {
    return this.base + BigInt(off);
  }
}
