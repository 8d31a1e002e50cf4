/**
 * The trace store's API: GET /api/traces?service=&limit=&since=, /api/traces/:trace_id and
 * /api/spans/:span_id. Store shards are asked in parallel and their answers merged.
 */
import { Hono } from "hono";
import { storeName } from "../env.ts";
import { IngestError } from "../errors.ts";
import { shardOfTrace } from "../linker/ids.ts";
import type { LinkedSpan } from "../../contract/espan.ts";
import type { TraceSummary } from "../store/trace-store.ts";
import type { AppEnv } from "./app-env.ts";
import { bearerAuth } from "./auth.ts";

export const query = new Hono<AppEnv>();
query.use("/api/*", bearerAuth());

const MAX_LIMIT = 1000;

function stores(c: { env: AppEnv["Bindings"]; get: (k: "config") => AppEnv["Variables"]["config"] }) {
  const ns = c.env.TRACE_STORE;
  return Array.from({ length: c.get("config").storeShards }, (_, i) => ns.get(ns.idFromName(storeName(i))));
}

query.get("/api/traces", async (c) => {
  const limitText = c.req.query("limit") ?? "20";
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new IngestError(400, `limit must be an integer from 1 to ${MAX_LIMIT}`);
  const sinceText = c.req.query("since");
  let sinceMs: number | undefined;
  if (sinceText !== undefined) {
    sinceMs = /^\d+$/.test(sinceText) ? Number(sinceText) : Date.parse(sinceText);
    if (Number.isNaN(sinceMs)) throw new IngestError(400, "since must be unix ms or an ISO 8601 time");
  }
  const service = c.req.query("service") || undefined;
  const lists = await Promise.all(stores(c).map((s) => s.listTraces({ service, sinceMs, limit })));
  const traces = (lists.flat() as TraceSummary[]).sort((a, b) => b.start_ms - a.start_ms || (a.trace_id < b.trace_id ? -1 : 1)).slice(0, limit);
  return c.json({ traces });
});

query.get("/api/traces/:trace_id", async (c) => {
  const id = c.req.param("trace_id").toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(id)) throw new IngestError(400, "trace_id must be 32 hex digits");
  const ns = c.env.TRACE_STORE;
  // RPC types cannot express the eSpan's open index signature: the stub's result is cast back.
  const spans = (await ns.get(ns.idFromName(storeName(shardOfTrace(id, c.get("config").storeShards)))).getTrace(id)) as unknown as LinkedSpan[];
  if (spans.length === 0) throw new IngestError(404, `no trace ${id}`);
  return c.json({ trace_id: id, spans });
});

query.get("/api/spans/:span_id", async (c) => {
  const id = c.req.param("span_id").toLowerCase();
  if (!/^[0-9a-f]{16}$/.test(id)) throw new IngestError(400, "span_id must be 16 hex digits");
  const found = ((await Promise.all(stores(c).map((s) => s.getSpan(id)))) as unknown as (LinkedSpan | null)[]).find((s) => s !== null);
  if (!found) throw new IngestError(404, `no span ${id}`);
  return c.json(found);
});
