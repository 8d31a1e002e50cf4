// When to try a failed POST again: exponential backoff with jitter, or the server's
// Retry-After (RFC 9110 §10.2.3: delay-seconds or an HTTP-date).
//
// Jitter ("equal jitter": half fixed, half random) keeps the agents of a fleet that lost the
// ingest at the same moment from coming back in lock-step.

export interface BackoffPolicy {
  /** First delay, ms. */
  initialMs: number;
  /** Upper bound of a computed delay, ms. */
  maxMs: number;
  /** Upper bound of a Retry-After the server asks for, ms (a broken header must not stall the
   * agent for a day). */
  maxRetryAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 30_000, maxRetryAfterMs: 120_000 };

/** Delay before retry number `attempt` (0 = the first retry). */
export function backoffMs(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Milliseconds a Retry-After value asks for, or undefined when it says nothing usable. */
export function parseRetryAfter(value: string | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^[0-9]+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}
