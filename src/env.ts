/** The worker's bindings (wrangler.toml): Durable Object namespaces and configuration vars. */
import type { LinkerShard } from "./linker/shard.ts";
import type { TraceStore } from "./store/trace-store.ts";

export interface Env {
  LINKER_SHARD: DurableObjectNamespace<LinkerShard>;
  TRACE_STORE: DurableObjectNamespace<TraceStore>;
  [variable: string]: unknown;
}

export const shardName = (i: number): string => `shard-${i}`;
export const storeName = (i: number): string => `store-${i}`;
