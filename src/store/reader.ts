/**
 * Reads the trace store for the query API and the UI: the store shards are asked in parallel and
 * their answers merged (lists), or the one shard holding a trace is asked (by its trace id).
 */
import type { LinkedSpan } from "../../contract/espan.ts";
import type { WorkerConfig } from "../config.ts";
import { storeName, type Env } from "../env.ts";
import { shardOfTrace } from "../linker/ids.ts";
import type { TraceSummary } from "./trace-summary.ts";

export interface TraceQuery {
  service?: string;
  sinceMs?: number;
  limit: number;
}

export class StoreReader {
  constructor(private readonly env: Env, private readonly config: WorkerConfig) {}

  private shard(i: number) {
    return this.env.TRACE_STORE.get(this.env.TRACE_STORE.idFromName(storeName(i)));
  }

  private all() {
    return Array.from({ length: this.config.storeShards }, (_, i) => this.shard(i));
  }

  /** Newest first: each shard's newest `limit`, merged. */
  async listTraces(q: TraceQuery): Promise<TraceSummary[]> {
    const lists = await Promise.all(this.all().map((s) => s.listTraces(q)));
    return (lists.flat() as TraceSummary[]).sort((a, b) => b.start_ms - a.start_ms || (a.trace_id < b.trace_id ? -1 : 1)).slice(0, q.limit);
  }

  /** A trace's spans (none: not stored, or past retention). `traceId` is 32 lower-case hex. */
  async getTrace(traceId: string): Promise<LinkedSpan[]> {
    // RPC types cannot express the eSpan's open index signature: the stub's result is cast back.
    return (await this.shard(shardOfTrace(traceId, this.config.storeShards)).getTrace(traceId)) as unknown as LinkedSpan[];
  }

  /** A span by its id, from whichever shard holds it. */
  async getSpan(spanId: string): Promise<LinkedSpan | null> {
    const found = (await Promise.all(this.all().map((s) => s.getSpan(spanId)))) as unknown as (LinkedSpan | null)[];
    return found.find((s) => s !== null) ?? null;
  }
}
