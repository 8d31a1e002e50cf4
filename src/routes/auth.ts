/** Bearer-token check for the ingest and the query API (ESPAN_TOKEN; none set: open). */
import type { MiddlewareHandler } from "hono";
import { IngestError } from "../errors.ts";
import type { AppEnv } from "./app-env.ts";

export function bearerAuth(): MiddlewareHandler<AppEnv> {
  return async function bearer(c, next) {
    const token = c.get("config").token;
    if (token) {
      if (!timingSafeEqual(bearerToken(c.req.header("authorization")), token)) throw new IngestError(401, "missing or wrong bearer token (Authorization: Bearer <ESPAN_TOKEN>)");
    }
    await next();
  };
}

/** The token of an `Authorization: Bearer <token>` header ("" without one). */
export function bearerToken(header: string | undefined): string {
  return /^Bearer\s+(.+)$/i.exec(header ?? "")?.[1]?.trim() ?? "";
}

/** Compares in time independent of where the strings differ. */
export function timingSafeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}
