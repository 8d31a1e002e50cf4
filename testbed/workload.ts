// The testbed's workloads: phases sent by the loadgen (h2), and the cron-like job (h3).
// Bounded in count and time: about 120 client requests, a few seconds of traffic.
import { serviceUrl } from "./topology.ts";

export interface Phase {
  phase: string;
  flow: "chain" | "fan" | "ng" | "otel";
  target: string;
  ids: string[];
  concurrency: number;
  /** One connection per worker for all its requests; else a connection per request. */
  keepalive: boolean;
  /** Each request carries a fresh W3C traceparent, as from an instrumented client. */
  traceparent: boolean;
}

export interface RequestResult {
  id: string;
  status: number;
  trace_id?: string;
  parent_id?: string;
  error?: string;
}

/** One client request of the workload and what it is expected to produce. */
export interface ClientRequest extends RequestResult {
  phase: string;
  flow: Phase["flow"];
  /** The traced client process's service: loadgen or cron. */
  client: string;
  traceparent: boolean;
  concurrency: number;
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

function phase(name: string, flow: Phase["flow"], entry: string, n: number, concurrency: number, o: Partial<Phase> = {}): Phase {
  return { phase: name, flow, target: serviceUrl(entry), ids: ids(name, n), concurrency, keepalive: true, traceparent: false, ...o };
}

/** The default plan; `scale` multiplies request counts (the demo and benchmarks may raise it). */
export function defaultPlan(scale = 1): Phase[] {
  const n = (k: number) => Math.max(1, Math.round(k * scale));
  return [
    // 3-tier chain loadgen → web (h1) → api via the VIP (h2) → inventory (h3): keep-alive, concurrent.
    phase("chain", "chain", "web", n(24), 4),
    // The same with a new connection for every request.
    phase("chainnc", "chain", "web", n(8), 2, { keepalive: false }),
    // Fan-out: web calls api (VIP), inventory and pricing one after the other.
    phase("fan", "fan", "web", n(12), 3),
    // Through the OTel-instrumented checkout (h3) → api (VIP) → pricing: the SDK starts the
    // trace (one request at a time), then continues the client's (concurrent, traceparent).
    phase("otelseq", "otel", "checkout", n(8), 1),
    phase("oteltp", "otel", "checkout", n(16), 4, { traceparent: true }),
    // nginx (edge, h1) → inventory (h3): one at a time, concurrent, concurrent with traceparent.
    phase("ngseq", "ng", "edge", n(8), 1),
    phase("ngconc", "ng", "edge", n(24), 6),
    phase("ngtp", "ng", "edge", n(16), 6, { traceparent: true }),
  ];
}

/** The cron-like job: h3 runs a fresh curl every `interval` s against web's chain. */
export const CRON_PLAN = { flow: "chain" as const, entry: "web", prefix: "cron", count: 4, intervalS: 1 };
