/**
 * OTLP/HTTP export (JSON or protobuf) with the collector's own error classes: 429/502/503/504
 * and network errors are retried with exponential backoff and jitter, honouring Retry-After;
 * other 4xx are permanent for that batch (the OTLP spec, and the OpenTelemetry Collector's
 * otlphttpexporter). The caller keeps spans until an outcome says they are done.
 */
import { CONTENT_TYPE, encodeExportSpans, type ExportSpan, type OtlpProtocol } from "./otlp-encode.ts";
import { OtlpProtoEncoder } from "./otlp-proto.ts";
import { ResourceCache } from "./otlp-span.ts";

export type ExportOutcome =
  | { kind: "ok"; rejectedSpans: number }
  | { kind: "retry"; afterMs: number; reason: string }
  | { kind: "permanent"; reason: string };

const RETRYABLE = new Set([429, 502, 503, 504]);
const TIMEOUT_MS = 10_000;
const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 60_000;

export class OtlpExporter {
  private failures = 0;
  /** OTel resources by process, kept across requests (JSON). */
  private readonly resources = new ResourceCache();
  /** Protobuf: the one-pass encoder (the official serializer's bytes), its buffer and resources kept. */
  private readonly proto = new OtlpProtoEncoder();

  constructor(
    readonly endpoint: string,
    readonly protocol: OtlpProtocol,
    private readonly headers: Record<string, string> = {},
    private readonly fetcher: typeof fetch = (input, init) => fetch(input, init),
  ) {}

  async send(spans: readonly ExportSpan[]): Promise<ExportOutcome> {
    let res: Response;
    try {
      res = await this.fetcher(this.endpoint, {
        method: "POST",
        headers: { ...this.headers, "content-type": CONTENT_TYPE[this.protocol] },
        body: this.protocol === "http/protobuf" ? this.proto.encode(spans) : encodeExportSpans(spans, this.protocol, this.resources),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (e) {
      return this.retry(undefined, `collector unreachable: ${(e as Error).message}`);
    }
    const body = await res.arrayBuffer().catch(() => new ArrayBuffer(0));
    if (res.ok) {
      this.failures = 0;
      return { kind: "ok", rejectedSpans: this.rejectedSpans(body) };
    }
    const reason = `collector answered ${res.status} ${res.statusText}`.trim();
    if (RETRYABLE.has(res.status)) return this.retry(res.headers.get("retry-after"), reason);
    return { kind: "permanent", reason };
  }

  private retry(retryAfter: string | null | undefined, reason: string): ExportOutcome {
    this.failures++;
    const header = parseRetryAfter(retryAfter);
    const backoff = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** Math.min(this.failures - 1, 10));
    const afterMs = header ?? backoff / 2 + Math.random() * (backoff / 2);
    return { kind: "retry", afterMs, reason };
  }

  /** ExportTraceServiceResponse.partial_success.rejected_spans, for the JSON encoding. */
  private rejectedSpans(body: ArrayBuffer): number {
    if (this.protocol !== "http/json" || body.byteLength === 0) return 0;
    try {
      const r = JSON.parse(new TextDecoder().decode(body));
      return Number(r?.partialSuccess?.rejectedSpans ?? 0) || 0;
    } catch {
      return 0;
    }
  }
}

/** Retry-After: delay-seconds or an HTTP date (RFC 9110 10.2.3); undefined when absent or bad. */
export function parseRetryAfter(v: string | null | undefined, now = Date.now()): number | undefined {
  if (!v) return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}
