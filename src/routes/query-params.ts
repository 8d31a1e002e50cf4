/** Query parameters shared by the API and the UI, checked with errors that name them. */
import { IngestError } from "../errors.ts";
import type { TraceQuery } from "../store/reader.ts";

const MAX_LIMIT = 1000;

/** `limit` (1..1000, default 20), `since` (unix ms or ISO 8601), `service` (empty: any). */
export function parseTraceQuery(q: Record<string, string | undefined>, defaultLimit = 20): TraceQuery {
  const limitText = q.limit || String(defaultLimit);
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new IngestError(400, `limit must be an integer from 1 to ${MAX_LIMIT}`);
  let sinceMs: number | undefined;
  if (q.since) {
    sinceMs = /^\d+$/.test(q.since) ? Number(q.since) : Date.parse(q.since);
    if (Number.isNaN(sinceMs)) throw new IngestError(400, "since must be unix ms or an ISO 8601 time");
  }
  return { service: q.service || undefined, sinceMs, limit };
}

/** A trace id from a path: 32 hex digits, lower-cased. */
export function traceIdParam(text: string): string {
  const id = text.toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(id)) throw new IngestError(400, "trace_id must be 32 hex digits");
  return id;
}
