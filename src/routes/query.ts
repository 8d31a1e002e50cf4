/**
 * The trace store's API: GET /api/traces?service=&limit=&since=, /api/traces/:trace_id and
 * /api/spans/:span_id (src/store/reader.ts asks the store shards).
 */
import { Hono } from "hono";
import { IngestError } from "../errors.ts";
import { StoreReader } from "../store/reader.ts";
import type { AppEnv } from "./app-env.ts";
import { bearerAuth } from "./auth.ts";
import { parseTraceQuery, traceIdParam } from "./query-params.ts";

export const query = new Hono<AppEnv>();
query.use("/api/*", bearerAuth());

query.get("/api/traces", async (c) => {
  const traces = await new StoreReader(c.env, c.get("config")).listTraces(parseTraceQuery(c.req.query()));
  return c.json({ traces });
});

query.get("/api/traces/:trace_id", async (c) => {
  const id = traceIdParam(c.req.param("trace_id"));
  const spans = await new StoreReader(c.env, c.get("config")).getTrace(id);
  if (spans.length === 0) throw new IngestError(404, `no trace ${id}`);
  return c.json({ trace_id: id, spans });
});

query.get("/api/spans/:span_id", async (c) => {
  const id = c.req.param("span_id").toLowerCase();
  if (!/^[0-9a-f]{16}$/.test(id)) throw new IngestError(400, "span_id must be 16 hex digits");
  const found = await new StoreReader(c.env, c.get("config")).getSpan(id);
  if (!found) throw new IngestError(404, `no span ${id}`);
  return c.json(found);
});
