/**
 * S engine shards in one process, exchanging their messages directly: the offline CLI's
 * `--shards`, the property tests (S shards must equal one) and the benchmark. The Durable Object
 * deployment does the same routing over RPC (src/linker/shard.ts).
 */
import type { ESpan } from "../../contract/espan.ts";
import type { LinkConfig, LinkResult, LinkStats } from "./config.ts";
import { LinkerEngine } from "./engine.ts";
import { shardOfNet } from "./ids.ts";

export class LocalCluster {
  readonly engines: LinkerEngine[];

  constructor(module: WebAssembly.Module, config: LinkConfig, readonly shards = 1) {
    this.engines = Array.from({ length: shards }, (_, shard) => new LinkerEngine(module, config, { shard, shards }));
  }

  /** Spans arriving at `arrivalMs`, each routed to its home shard (its net group's). */
  ingest(spans: readonly ESpan[], arrivalMs: number, refs?: ArrayLike<number>): void {
    if (this.shards === 1) this.engines[0].ingest(spans, arrivalMs, refs);
    else {
      const parts = this.engines.map(() => ({ spans: [] as ESpan[], refs: [] as number[] }));
      spans.forEach((s, i) => {
        const p = parts[shardOfNet(s.req_seq, s.resp_seq, this.shards)];
        p.spans.push(s);
        p.refs.push(refs ? refs[i] : i);
      });
      parts.forEach((p, shard) => this.engines[shard].ingest(p.spans, arrivalMs, p.refs));
    }
    this.pump();
  }

  /**
   * Runs time forward to `nowMs` one deadline at a time across all shards, delivering messages
   * after each step, so S shards decide exactly what one engine would (a shard must not run its
   * later timers before an earlier decision elsewhere has reached it).
   */
  tick(nowMs: number): void {
    for (;;) {
      let next = Infinity;
      for (const e of this.engines) next = Math.min(next, e.nextDeadline());
      if (next > nowMs) break;
      for (const e of this.engines) e.tick(next);
      this.pump();
    }
    for (const e of this.engines) e.tick(nowMs);
    this.pump();
  }

  flush(): void {
    this.tick(Number.MAX_SAFE_INTEGER);
  }

  /** Delivers messages until no shard has any left to send. */
  pump(): void {
    for (let busy = true; busy; ) {
      busy = false;
      for (const e of this.engines) {
        if (e.pendingMessages === 0) continue;
        busy = true;
        for (const [dest, batch] of e.drainMessages()) this.engines[dest].accept(batch);
      }
    }
  }

  drainResults(): LinkResult[] {
    return this.engines.flatMap((e) => e.drainResults());
  }

  stats(): LinkStats & { messagesSent: number } {
    const total = { received: 0, duplicates: 0, conflicts: 0, roots: 0, orphans: 0, forced: 0, late: 0, sampledIn: 0, sampledOut: 0, messagesSent: 0 };
    for (const e of this.engines) {
      const s = e.stats();
      for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += s[k];
    }
    return total;
  }
}
