// A local stand-in for the ingest: records every POST (headers, gunzipped spans) and answers
// what the test's handler says. Loopback only.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import type { ESpan } from "../../../contract/espan.ts";

export interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  spans: ESpan[];
  at: number;
}

export type Answer = { status: number; body?: unknown; headers?: Record<string, string> };

export interface IngestStub {
  url: string;
  port: number;
  received: Received[];
  /** Spans of every request answered 2xx. */
  accepted(): ESpan[];
  close(): Promise<void>;
}

export async function startIngestStub(answer: (req: Received, n: number) => Answer = () => ({ status: 202 }), port = 0): Promise<IngestStub> {
  const received: Received[] = [];
  const okSpans: ESpan[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const text = req.headers["content-encoding"] === "gzip" ? gunzipSync(raw).toString("utf8") : raw.toString("utf8");
      const r: Received = { path: req.url ?? "", headers: req.headers, spans: (JSON.parse(text) as { spans: ESpan[] }).spans, at: Date.now() };
      received.push(r);
      const a = answer(r, received.length);
      if (a.status >= 200 && a.status < 300) okSpans.push(...r.spans);
      const body = JSON.stringify(a.body ?? (a.status < 300 ? { accepted: r.spans.length } : { error: `status ${a.status}` }));
      res.writeHead(a.status, { "content-type": "application/json", ...a.headers });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    received,
    accepted: () => okSpans,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
