/**
 * The espan ingest worker (Hono on workerd): routes, one error handler, and the Durable Object
 * classes it binds (LinkerShard, TraceStore).
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { ConfigError, loadConfig, type WorkerConfig } from "./config.ts";
import type { Env } from "./env.ts";
import { IngestError } from "./errors.ts";
import type { AppEnv } from "./routes/app-env.ts";
import { ingest } from "./routes/ingest.ts";
import { metrics } from "./routes/metrics.ts";
import { query } from "./routes/query.ts";
import { ui } from "./routes/ui.ts";

export { LinkerShard } from "./linker/shard.ts";
export { TraceStore } from "./store/trace-store.ts";

let config: WorkerConfig | undefined;

const app = new Hono<AppEnv>();

app.use("*", async (c, next) => {
  config ??= loadConfig(c.env);
  c.set("config", config);
  await next();
});

app.get("/healthz", (c) => c.json({ ok: true }));
app.route("/", ingest);
app.route("/", query);
app.route("/", metrics);
app.route("/", ui);

app.notFound((c) => c.json({ error: `no route ${c.req.method} ${new URL(c.req.url).pathname}` }, 404));

app.onError((err, c) => {
  if (err instanceof IngestError) {
    if (err.extra.retryAfterS !== undefined) c.header("retry-after", String(Math.ceil(err.extra.retryAfterS)));
    return c.json(err.body(), err.status);
  }
  if (err instanceof ConfigError) return c.json({ error: `configuration: ${err.message}` }, 500);
  if (err instanceof HTTPException) return c.json({ error: err.message }, err.status);
  console.error(`unexpected: ${err.stack ?? err}`);
  return c.json({ error: "internal error" }, 500);
});

export default app satisfies ExportedHandler<Env>;
