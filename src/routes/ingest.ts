/**
 * POST /v1/bpftracing (ESPAN.md): decode and validate the batch, split it by home shard (the
 * shard of each span's net group), hand each part to its LinkerShard, and answer 202 only when
 * every part is durable. A shard over its bounds makes it a 429 with Retry-After; the parts
 * other shards stored are linked once when the agent sends the batch again (duplicates are
 * linked once).
 */
import { Hono } from "hono";
import type { ESpan } from "../../contract/espan.ts";
import { shardName } from "../env.ts";
import { IngestError } from "../errors.ts";
import { decodeBatch } from "../ingest/decode.ts";
import { shardOfNet } from "../linker/ids.ts";
import type { AppEnv } from "./app-env.ts";
import { bearerAuth } from "./auth.ts";
import { workerCounters } from "./counters.ts";

export const ingest = new Hono<AppEnv>();

ingest.post("/v1/bpftracing", bearerAuth(), async (c) => {
  const cfg = c.get("config");
  workerCounters.requests++;
  let spans: ESpan[];
  try {
    spans = await decodeBatch(c.req.raw, cfg.maxBody);
  } catch (e) {
    if (e instanceof IngestError) workerCounters.rejected += e.extra.rejected ? new Set(e.extra.rejected.map((r) => r.index)).size : 1;
    throw e;
  }
  workerCounters.received += spans.length;
  if (spans.length === 0) return c.json({ accepted: 0 }, 202);

  const arrivalMs = Date.now();
  const parts = new Map<number, ESpan[]>();
  for (const s of spans) {
    const shard = shardOfNet(s.req_seq, s.resp_seq, cfg.shards);
    let p = parts.get(shard);
    if (!p) parts.set(shard, (p = []));
    p.push(s);
  }
  let answers;
  try {
    answers = await Promise.all([...parts].map(([shard, part]) => {
      const stub = c.env.LINKER_SHARD.get(c.env.LINKER_SHARD.idFromName(shardName(shard)));
      // One string per shard: cheaper over RPC than a clone of the objects, and logged as it is.
      return stub.ingest(shard, JSON.stringify(part), arrivalMs);
    }));
  } catch (e) {
    console.error(`ingest: a shard failed: ${(e as Error).stack ?? e}`);
    throw new IngestError(503, "a linker shard is unavailable; retry", { retryAfterS: 1 });
  }
  const busy = answers.find((a) => "busy" in a);
  if (busy && "busy" in busy) {
    workerCounters.throttled++;
    throw new IngestError(429, `over capacity: ${busy.busy}`, { retryAfterS: busy.retryAfterS });
  }
  workerCounters.accepted += spans.length;
  return c.json({ accepted: spans.length }, 202);
});
