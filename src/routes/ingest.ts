/**
 * POST /v1/bpftracing (ESPAN.md): decode and validate the batch, split it by home shard (the
 * shard of each span's net group), hand each part to its LinkerShard, and answer 202 only when
 * every part is durable. A shard over its bounds makes it a 429 with Retry-After; the parts
 * other shards stored are linked once when the agent sends the batch again (duplicates are
 * linked once).
 */
import { Hono, type Context } from "hono";
import type { ESpan } from "../../contract/espan.ts";
import { shardName } from "../env.ts";
import { IngestError } from "../errors.ts";
import { parseBatch, readBody } from "../ingest/decode.ts";
import type { IngestAnswer } from "../linker/shard.ts";
import { shardOfNet } from "../linker/ids.ts";
import type { AppEnv } from "./app-env.ts";
import { bearerAuth } from "./auth.ts";
import { workerCounters } from "./counters.ts";

export const ingest = new Hono<AppEnv>();

ingest.post("/v1/bpftracing", bearerAuth(), async (c) => {
  const cfg = c.get("config");
  workerCounters.requests++;
  let body;
  try {
    body = await readBody(c.req.raw, cfg.maxBody);
  } catch (e) {
    if (e instanceof IngestError) workerCounters.rejected++;
    throw e;
  }
  const arrivalMs = Date.now();
  if (cfg.shards === 1) {
    // One shard: the body goes to it as it came, to be parsed and validated there, once.
    // RPC types flatten the answer union: cast back.
    const answer = await ask(async () => (await shardStub(c.env, 0).ingestBody(0, body.text, body.ndjson, arrivalMs)) as IngestAnswer);
    if ("invalid" in answer) {
      workerCounters.rejected += answer.rejected ? new Set(answer.rejected.map((r) => r.index)).size : 1;
      throw new IngestError(400, answer.invalid, { rejected: answer.rejected });
    }
    return answered([answer], "accepted" in answer ? answer.accepted : 0, c);
  }

  let spans: ESpan[];
  try {
    spans = parseBatch(body.text, body.ndjson).spans;
  } catch (e) {
    if (e instanceof IngestError) workerCounters.rejected += e.extra.rejected ? new Set(e.extra.rejected.map((r) => r.index)).size : 1;
    throw e;
  }
  const parts = new Map<number, ESpan[]>();
  for (const s of spans) {
    const shard = shardOfNet(s.req_seq, s.resp_seq, cfg.shards);
    let p = parts.get(shard);
    if (!p) parts.set(shard, (p = []));
    p.push(s);
  }
  // One string per shard: cheaper over RPC than a clone of the objects, and logged as it is.
  const answers = await ask(() => Promise.all([...parts].map(async ([shard, part]) => (await shardStub(c.env, shard).ingest(shard, JSON.stringify(part), arrivalMs)) as IngestAnswer)));
  return answered(answers, spans.length, c);
});

const shardStub = (env: AppEnv["Bindings"], shard: number) => env.LINKER_SHARD.get(env.LINKER_SHARD.idFromName(shardName(shard)));

async function ask<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    console.error(`ingest: a shard failed: ${(e as Error).stack ?? e}`);
    throw new IngestError(503, "a linker shard is unavailable; retry", { retryAfterS: 1 });
  }
}

/** 202 when every shard took its part; 429 when one was over its bounds. */
function answered(answers: IngestAnswer[], n: number, c: Context<AppEnv>) {
  workerCounters.received += n;
  const busy = answers.find((a) => "busy" in a);
  if (busy && "busy" in busy) {
    workerCounters.throttled++;
    throw new IngestError(429, `over capacity: ${busy.busy}`, { retryAfterS: busy.retryAfterS });
  }
  workerCounters.accepted += n;
  return c.json({ accepted: n }, 202);
}
