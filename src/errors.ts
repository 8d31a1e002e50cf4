/**
 * Errors classified where they happen and rendered once (src/index.ts's onError): a status, a
 * message naming what was wrong, and for bad spans the list of them (ESPAN.md "Response").
 */
export interface RejectedSpan {
  index: number;
  field: string;
  reason: string;
}

export class IngestError extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 413 | 415 | 429 | 503,
    message: string,
    readonly extra: { rejected?: RejectedSpan[]; retryAfterS?: number } = {},
  ) {
    super(message);
  }

  body(): Record<string, unknown> {
    return { error: this.message, ...(this.extra.rejected ? { rejected: this.extra.rejected } : {}) };
  }
}
