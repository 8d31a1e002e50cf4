// Kernel timestamps → unix nanoseconds.
//
// Records carry bpf_ktime_get_ns(), i.e. CLOCK_MONOTONIC, the clock of process.hrtime.bigint()
// (reference/bpf.md pitfall 13). The eSpan wants wall time (unix ns), so the agent measures the
// offset between the two clocks. Date.now() has millisecond resolution, so the agent waits for it
// to tick over (at most 1 ms of spinning, once a minute): at that instant the wall clock is at an
// exact millisecond, bracketed by two hrtime reads a few hundred nanoseconds apart. Spans from
// agents on different hosts then line up to microseconds (with their clocks in sync), where a
// plain Date.now() sample was off by up to a millisecond (a child could seem to start before its
// parent). Durations, differences of monotonic times, are exact. The offset is measured again
// every minute so that an NTP step of the wall clock reaches the spans.

const RESYNC_NS = 60_000_000_000n;

export interface MonoClock {
  /** Unix ns of a CLOCK_MONOTONIC timestamp. */
  toUnixNs(monoNs: bigint): bigint;
  /** CLOCK_MONOTONIC now. */
  nowMono(): bigint;
}

/** One sample at a millisecond edge of Date.now(): the offset and how wide its bracket was. */
function sampleOffset(): { offset: bigint; bracket: bigint } {
  const start = Date.now();
  let lastSame = process.hrtime.bigint();
  const deadline = lastSame + 5_000_000n; // 5 ms: never spin longer, whatever the clock does
  for (;;) {
    const wall = Date.now();
    const after = process.hrtime.bigint();
    if (wall !== start) {
      // The tick came between the previous read (which still said `start`) and this one.
      return { offset: BigInt(wall) * 1_000_000n - (lastSame + (after - lastSame) / 2n), bracket: after - lastSame };
    }
    if (after > deadline) return { offset: BigInt(wall) * 1_000_000n - after, bracket: 1_000_000n };
    lastSame = after;
  }
}

/** The tightest of a few samples: one whose thread was preempted mid-spin (a busy host) has a
 * wide bracket and may be off by the preemption; three in a row seldom all are. */
function measureOffset(): bigint {
  let best = sampleOffset();
  for (let i = 0; i < 2 && best.bracket > 20_000n; i++) {
    const s = sampleOffset();
    if (s.bracket < best.bracket) best = s;
  }
  return best.offset;
}

export function createMonoClock(): MonoClock {
  let offset = measureOffset();
  let resyncAt = process.hrtime.bigint() + RESYNC_NS;
  return {
    toUnixNs(monoNs) {
      // The timestamps asked about are recent: they tell the time without a clock read per span
      // (and without a BigInt made per span to compare them).
      if (monoNs > resyncAt) {
        offset = measureOffset();
        resyncAt = process.hrtime.bigint() + RESYNC_NS;
      }
      return monoNs + offset;
    },
    nowMono: () => process.hrtime.bigint(),
  };
}
