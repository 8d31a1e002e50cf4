/** Helpers for tests inside workerd: requests to the worker, and the shards' clocks run. */
import { SELF } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { Env } from "../../src/env.ts";
import { shardName } from "../../src/env.ts";

export const TOKEN = "s3cret";
export const bindings = env as unknown as Env;

export function post(body: BodyInit, headers: Record<string, string> = {}): Promise<Response> {
  return SELF.fetch("https://espan.test/v1/bpftracing", {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", ...headers },
    body,
  });
}

export function get(path: string): Promise<Response> {
  return SELF.fetch(`https://espan.test${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
}

/** Waits out the window and settle (1 s + 100 ms here), then runs every shard's timers and export. */
export async function settle(ms = 1300): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  const shards = Number(bindings.ESPAN_SHARDS);
  for (let round = 0; round < 3; round++) {
    await Promise.all(Array.from({ length: shards }, (_, i) => bindings.LINKER_SHARD.get(bindings.LINKER_SHARD.idFromName(shardName(i))).flush()));
  }
}
