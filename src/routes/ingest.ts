/**
 * POST /v1/bpftracing (ESPAN.md): decode and validate the batch, split it by home shard (the
 * shard of each span's net group), hand each part to its LinkerShard, and answer 202 only when
 * every part is durable. A shard over its bounds makes it a 429 with Retry-After; the parts
 * other shards stored are linked once when the agent sends the batch again (duplicates are
 * linked once).
 *
 * One shard: the request is forwarded to it as it came (LinkerShard.fetch reads and checks it).
 * Several: the fast path (span-parser.ts) checks the body here and each shard gets its spans
 * packed; a body it declines goes to the full parser, and each shard gets its spans as JSON.
 */
import { Hono, type Context } from "hono";
import parserModule from "../../build/ingest.wasm";
import type { ESpan } from "../../contract/espan.ts";
import { shardName } from "../env.ts";
import { IngestError } from "../errors.ts";
import { parseBatch, readBodyBytes, utf8, type BatchBytes } from "../ingest/decode.ts";
import { SpanParser } from "../ingest/span-parser.ts";
import { shardIngestUrl, type IngestAnswer } from "../linker/shard.ts";
import { shardOfNet } from "../linker/ids.ts";
import type { AppEnv } from "./app-env.ts";
import { bearerAuth } from "./auth.ts";
import { workerCounters } from "./counters.ts";

export const ingest = new Hono<AppEnv>();

/** The worker's fast path (its scratch only: the shards hold spans in their own). */
let parser: SpanParser | undefined;

ingest.post("/v1/bpftracing", bearerAuth(), async (c) => {
  const cfg = c.get("config");
  workerCounters.requests++;
  if (cfg.shards === 1) {
    // RPC types flatten the answer union: cast back.
    const answer = await ask(async () => (await (await shardStub(c.env, 0).fetch(shardIngestUrl(0), c.req.raw)).json()) as IngestAnswer);
    if ("invalid" in answer) throw rejected(new IngestError(answer.status, answer.invalid, { rejected: answer.rejected }));
    return answered([answer], "accepted" in answer ? answer.accepted : 0, c);
  }

  let body: BatchBytes;
  try {
    body = await readBodyBytes(c.req.raw, cfg.maxBody);
  } catch (e) {
    throw e instanceof IngestError ? rejected(e) : e;
  }
  const arrivalMs = Date.now();
  parser ??= new SpanParser(parserModule);
  const n = parser.parse(body.bytes, body.ndjson ? "ndjson" : "doc", "strict", 0, arrivalMs);
  if (typeof n === "number") {
    const byShard = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const shard = shardOfNet(...parser.netKey(i), cfg.shards);
      let p = byShard.get(shard);
      if (!p) byShard.set(shard, (p = []));
      p.push(i);
    }
    // Copied out of the parser now: another request may parse while these are on their way.
    const parts = [...byShard].map(([shard, idx]) => ({ shard, packed: parser!.packedCopy(idx), count: idx.length }));
    const answers = await ask(() => Promise.all(parts.map(async (p) => (await shardStub(c.env, p.shard).ingestPacked(p.shard, p.packed, p.count, arrivalMs)) as IngestAnswer)));
    return answered(answers, n, c);
  }

  let spans: ESpan[];
  try {
    spans = parseBatch(utf8(body.bytes), body.ndjson).spans;
  } catch (e) {
    throw e instanceof IngestError ? rejected(e) : e;
  }
  const parts = new Map<number, ESpan[]>();
  for (const s of spans) {
    const shard = shardOfNet(s.req_seq, s.resp_seq, cfg.shards);
    let p = parts.get(shard);
    if (!p) parts.set(shard, (p = []));
    p.push(s);
  }
  // One string per shard: cheaper over RPC than a clone of the objects.
  const answers = await ask(() => Promise.all([...parts].map(async ([shard, part]) => (await shardStub(c.env, shard).ingest(shard, JSON.stringify(part), arrivalMs)) as IngestAnswer)));
  return answered(answers, spans.length, c);
});

const shardStub = (env: AppEnv["Bindings"], shard: number) => env.LINKER_SHARD.get(env.LINKER_SHARD.idFromName(shardName(shard)));

/** A bad request, counted: a batch with bad spans counts each of them, any other one request. */
function rejected(e: IngestError): IngestError {
  workerCounters.rejected += e.extra.rejected ? new Set(e.extra.rejected.map((r) => r.index)).size : 1;
  return e;
}

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
