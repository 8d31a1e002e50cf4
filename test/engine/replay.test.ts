/**
 * What a LinkerShard does after a restart: each shard replays its log (the batches it accepted
 * and the messages it received, in order) through a fresh engine, and re-sends every message its
 * replay produces; peers take the duplicates as no-ops. Shards come back in any order. The
 * decisions must be those of a run that never stopped.
 */
import { expect, it } from "vitest";
import type { ESpan } from "../../contract/espan.ts";
import type { LinkResult } from "../../src/linker/config.ts";
import { LinkerEngine } from "../../src/linker/engine.ts";
import { shardOfNet } from "../../src/linker/ids.ts";
import { loadEngineModule } from "../../src/linker/load-node.ts";
import { generateTraffic } from "../gen/traffic.ts";

const module = loadEngineModule({ debug: true });
const cfg = { windowMs: 20_000, settleMs: 1_000, samplingRate: 0.5, useAppTraceId: true };
const S = 4;
type Row = { at: number; spans?: ESpan[]; messages?: Uint8Array };

const byId = (a: LinkResult, b: LinkResult) => (a.span_id < b.span_id ? -1 : 1);

it("replaying every shard's log, shards in any order, decides exactly what the uninterrupted run did", () => {
  const traffic = generateTraffic({ seed: 11, traces: 300, appInstrumentedFraction: 0.3, untracedCallerFraction: 0.2, clientRootFraction: 0.3, natFraction: 0.3 });
  const logs: Row[][] = Array.from({ length: S }, () => []);
  const fresh = () => Array.from({ length: S }, (_, shard) => new LinkerEngine(module, cfg, { shard, shards: S }));
  const deliver = (engines: LinkerEngine[], at: number, log: boolean) => {
    for (let busy = true; busy; ) {
      busy = false;
      for (const e of engines) {
        if (e.pendingMessages === 0) continue;
        busy = true;
        for (const [dest, messages] of e.drainMessages()) {
          if (log) logs[dest].push({ at, messages });
          engines[dest].tick(at);
          engines[dest].accept(messages);
        }
      }
    }
  };

  // The uninterrupted run: half the spans now, half a second later; then time runs out.
  const original = fresh();
  const half = traffic.spans.length >> 1;
  for (const [at, spans] of [[100, traffic.spans.slice(0, half)], [600, traffic.spans.slice(half)]] as const) {
    const parts: ESpan[][] = Array.from({ length: S }, () => []);
    for (const s of spans) parts[shardOfNet(s.req_seq, s.resp_seq, S)].push(s);
    parts.forEach((p, shard) => {
      logs[shard].push({ at, spans: p });
      original[shard].tick(at);
      original[shard].ingest(p, at);
    });
    deliver(original, at, true);
  }
  const end = 200_000;
  const finish = (engines: LinkerEngine[]) => {
    for (let next = Math.min(...engines.map((e) => e.nextDeadline())); next <= end; next = Math.min(...engines.map((e) => e.nextDeadline()))) {
      for (const e of engines) e.tick(next);
      deliver(engines, next, false);
    }
    return engines.flatMap((e) => e.drainResults()).sort(byId);
  };
  const expected = finish(original);
  expect(expected).toHaveLength(traffic.spans.length);

  for (const order of [[0, 1, 2, 3], [3, 1, 0, 2]]) {
    const replayed = fresh();
    for (const shard of order) {
      for (const row of logs[shard]) {
        replayed[shard].tick(row.at);
        if (row.spans) replayed[shard].ingest(row.spans, row.at);
        else replayed[shard].accept(row.messages!);
      }
      deliver(replayed, 1_000, false); // its re-sent messages: duplicates for the peers
    }
    expect(finish(replayed), `replay in order ${order}`).toEqual(expected);
    expect(replayed.reduce((a, e) => a + e.stats().conflicts, 0)).toBe(0);
  }
});
