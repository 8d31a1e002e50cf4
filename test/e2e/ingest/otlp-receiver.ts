/**
 * A local OTLP/HTTP traces receiver for the tests: decodes what the ingest exports, protobuf
 * with the official OTLP definitions (the protobufjs code OpenTelemetry JS generated from
 * opentelemetry-proto) and JSON, and keeps every span with its resource. It can be told to fail.
 */
import { createServer, type Server } from "node:http";
import { gunzipSync } from "node:zlib";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const proto = require("otlp-proto-definitions/build/src/generated/root.js").opentelemetry.proto;
const Request = proto.collector.trace.v1.ExportTraceServiceRequest;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  status: number;
}

export interface Receiver {
  url: string;
  spans: ReceivedSpan[];
  requests: { contentType: string; spans: number; status: number }[];
  /** Answer the next n requests with this status (and Retry-After), then accept again. */
  failNext(n: number, status?: number, retryAfter?: string): void;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const spans: ReceivedSpan[] = [];
  const requests: Receiver["requests"] = [];
  let failing = 0;
  let failStatus = 503;
  let failRetryAfter: string | undefined;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      const contentType = String(req.headers["content-type"] ?? "");
      if (failing > 0) {
        failing--;
        requests.push({ contentType, spans: 0, status: failStatus });
        res.writeHead(failStatus, failRetryAfter ? { "retry-after": failRetryAfter } : {}).end();
        return;
      }
      try {
        const got = contentType.startsWith("application/x-protobuf") ? fromProtobuf(body) : fromJson(JSON.parse(body.toString("utf8")));
        spans.push(...got);
        requests.push({ contentType, spans: got.length, status: 200 });
        res.writeHead(200, { "content-type": contentType }).end(contentType.includes("json") ? "{}" : undefined);
      } catch (e) {
        requests.push({ contentType, spans: 0, status: 400 });
        res.writeHead(400).end(String(e));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    requests,
    failNext(n, status = 503, retryAfter) {
      failing = n;
      failStatus = status;
      failRetryAfter = retryAfter;
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}

const hex = (b: Uint8Array | undefined) => (b && b.length ? Buffer.from(b).toString("hex") : "");

function anyValue(v: Record<string, unknown>): unknown {
  if (v.stringValue !== undefined && v.stringValue !== null) return v.stringValue;
  if (v.intValue !== undefined && v.intValue !== null) return Number(v.intValue);
  if (v.boolValue !== undefined && v.boolValue !== null) return v.boolValue;
  if (v.doubleValue !== undefined && v.doubleValue !== null) return v.doubleValue;
  return undefined;
}

function attrs(list: { key: string; value: Record<string, unknown> }[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((a) => [a.key, anyValue(a.value)]));
}

function fromProtobuf(body: Buffer): ReceivedSpan[] {
  const msg = Request.toObject(Request.decode(body), { longs: String, bytes: Array, defaults: true });
  const out: ReceivedSpan[] = [];
  for (const rs of msg.resourceSpans) {
    for (const ss of rs.scopeSpans) {
      for (const s of ss.spans) {
        out.push({
          traceId: hex(Uint8Array.from(s.traceId)), spanId: hex(Uint8Array.from(s.spanId)),
          parentSpanId: hex(Uint8Array.from(s.parentSpanId ?? [])), name: s.name, kind: s.kind,
          startTimeUnixNano: String(s.startTimeUnixNano), endTimeUnixNano: String(s.endTimeUnixNano),
          attributes: attrs(s.attributes), resource: attrs(rs.resource?.attributes), status: s.status?.code ?? 0,
        });
      }
    }
  }
  return out;
}

function fromJson(msg: { resourceSpans: any[] }): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of msg.resourceSpans ?? []) {
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? "", name: s.name, kind: s.kind,
          startTimeUnixNano: String(s.startTimeUnixNano), endTimeUnixNano: String(s.endTimeUnixNano),
          attributes: attrs(s.attributes), resource: attrs(rs.resource?.attributes), status: s.status?.code ?? 0,
        });
      }
    }
  }
  return out;
}
