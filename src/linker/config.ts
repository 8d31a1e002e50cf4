/** How a linker links: the seed's options (DataKit `[[inputs.ebpftrace]]`) plus espan's settle. */
export interface LinkConfig {
  /** The longest a span waits for its relatives (ms). DataKit's `window`, default 20 s. */
  windowMs: number;
  /**
   * How long a root waits after it is known to be a root before its trace is decided (ms), so the
   * decision sees the app context and sampled flags of the tree below it. 0 decides at once.
   */
  settleMs: number;
  /** Share of traces kept, decided per trace on its id; ≥ 1 keeps all. App sampled flags win. */
  samplingRate: number;
  /** Adopt the application's trace id (W3C, Datadog, B3) carried nearest the root. */
  useAppTraceId: boolean;
}

export const DEFAULT_LINK_CONFIG: LinkConfig = {
  windowMs: 20_000,
  settleMs: 2_000,
  samplingRate: 0.1,
  useAppTraceId: true,
};

/** What the linker decided for one span. Every accepted span gets exactly one. */
export interface LinkResult {
  span_id: string;
  trace_id: string;
  /** "" for a root. */
  parent_id: string;
  /** false: the trace was sampled out; the span must not be exported. */
  sampled: boolean;
}

/** Counters every linker keeps (the engine and the reference model alike). */
export interface LinkStats {
  received: number;
  duplicates: number;
  /** A second exit (or entry) for a net group, or a second entry for a thread id: not linked. */
  conflicts: number;
  roots: number;
  /** Roots because their parent did not arrive within the window. */
  orphans: number;
  /** Spans forced to be roots because their tree never resolved (a cycle in bad input). */
  forced: number;
  /** Spans linked after their parent's trace was already decided. */
  late: number;
  sampledIn: number;
  sampledOut: number;
}

export const emptyStats = (): LinkStats => ({
  received: 0,
  duplicates: 0,
  conflicts: 0,
  roots: 0,
  orphans: 0,
  forced: 0,
  late: 0,
  sampledIn: 0,
  sampledOut: 0,
});
