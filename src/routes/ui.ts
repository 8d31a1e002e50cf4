/**
 * The web UI, served by the worker: GET /ui (trace list), /ui/traces/:trace_id (waterfall),
 * /ui/services (service map), /ui/login. With ESPAN_TOKEN set, a page needs the token as a bearer
 * header or in the cookie the sign-in form sets (a browser cannot send the header on navigation).
 */
import { Hono, type MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { StoreReader } from "../store/reader.ts";
import { layoutWaterfall } from "../ui/waterfall.ts";
import { loginPage, serviceMapPage, traceListPage, tracePage } from "../ui/pages.ts";
import { serviceEdges } from "../ui/service-map.ts";
import type { LinkedSpan } from "../../contract/espan.ts";
import { IngestError } from "../errors.ts";
import type { AppEnv } from "./app-env.ts";
import { bearerToken, timingSafeEqual } from "./auth.ts";
import { parseTraceQuery, traceIdParam } from "./query-params.ts";

const COOKIE = "espan_token";
/** Traces the service map reads by default, and how many it asks the store for at once. */
const MAP_TRACES = 50;
const MAP_FETCHES_AT_ONCE = 50;

export const ui = new Hono<AppEnv>();

function uiAuth(): MiddlewareHandler<AppEnv> {
  return async function signedIn(c, next) {
    const token = c.get("config").token;
    if (token && !timingSafeEqual(bearerToken(c.req.header("authorization")) || (getCookie(c, COOKIE) ?? ""), token)) {
      return c.redirect("/ui/login", 302);
    }
    await next();
  };
}

ui.get("/", (c) => c.redirect("/ui", 302));

ui.get("/ui/login", (c) => c.html(loginPage()));

ui.post("/ui/login", async (c) => {
  const token = c.get("config").token;
  const form = await c.req.parseBody();
  const given = typeof form.token === "string" ? form.token : "";
  if (token && !timingSafeEqual(given, token)) return c.html(loginPage("That is not this ingest's token."), 401);
  setCookie(c, COOKIE, given, { path: "/ui", httpOnly: true, sameSite: "Strict", secure: new URL(c.req.url).protocol === "https:" });
  return c.redirect("/ui", 303);
});

ui.use("/ui", uiAuth());
ui.use("/ui/traces/*", uiAuth());
ui.use("/ui/services", uiAuth());

ui.get("/ui", async (c) => {
  const q = parseTraceQuery(c.req.query(), 50);
  const traces = await new StoreReader(c.env, c.get("config")).listTraces(q);
  return c.html(traceListPage(traces, { service: q.service, limit: q.limit }));
});

ui.get("/ui/traces/:trace_id", async (c) => {
  const id = traceIdParam(c.req.param("trace_id"));
  const spans = await new StoreReader(c.env, c.get("config")).getTrace(id);
  if (spans.length === 0) throw new IngestError(404, `no trace ${id} (not stored, sampled out, or past retention)`);
  return c.html(tracePage(id, layoutWaterfall(spans)));
});

ui.get("/ui/services", async (c) => {
  const n = Number(c.req.query("traces") || MAP_TRACES);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new IngestError(400, "traces must be an integer from 1 to 1000");
  const reader = new StoreReader(c.env, c.get("config"));
  const summaries = await reader.listTraces({ limit: n });
  const traces: LinkedSpan[][] = [];
  for (let i = 0; i < summaries.length; i += MAP_FETCHES_AT_ONCE) {
    traces.push(...(await Promise.all(summaries.slice(i, i + MAP_FETCHES_AT_ONCE).map((t) => reader.getTrace(t.trace_id)))));
  }
  return c.html(serviceMapPage(serviceEdges(traces), summaries.length));
});
