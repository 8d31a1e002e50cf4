// Kernel timestamps → unix nanoseconds.
//
// Records carry bpf_ktime_get_ns(), i.e. CLOCK_MONOTONIC, the clock of process.hrtime.bigint()
// (reference/bpf.md pitfall 13). The eSpan wants wall time (unix ns), so the agent measures the
// offset between the two clocks: it reads hrtime, Date.now(), hrtime again and keeps the sample
// with the tightest bracket (Date.now() has ms resolution, so the offset is good to ~1 ms; the
// durations, which are differences of monotonic times, are exact). The offset is measured again
// every minute so that an NTP step of the wall clock reaches the spans.

const RESYNC_NS = 60_000_000_000n;
const SAMPLES = 5;

export interface MonoClock {
  /** Unix ns of a CLOCK_MONOTONIC timestamp. */
  toUnixNs(monoNs: bigint): bigint;
  /** CLOCK_MONOTONIC now. */
  nowMono(): bigint;
}

function measureOffset(): bigint {
  let best = -1n;
  let offset = 0n;
  for (let i = 0; i < SAMPLES; i++) {
    const before = process.hrtime.bigint();
    const wallMs = BigInt(Date.now());
    const after = process.hrtime.bigint();
    const gap = after - before;
    if (best < 0n || gap < best) {
      best = gap;
      offset = wallMs * 1_000_000n - (before + gap / 2n);
    }
  }
  return offset;
}

export function createMonoClock(): MonoClock {
  let offset = measureOffset();
  let measuredAt = process.hrtime.bigint();
  return {
    toUnixNs(monoNs) {
      const now = process.hrtime.bigint();
      if (now - measuredAt > RESYNC_NS) {
        offset = measureOffset();
        measuredAt = now;
      }
      return monoNs + offset;
    },
    nowMono: () => process.hrtime.bigint(),
  };
}
