// Shipping against a local HTTP server: the request, the classification of answers, retry with
// backoff and Retry-After, 413 split, 400 partial, batching.
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ESpan } from "../../../contract/espan.ts";
import { backoffMs, parseRetryAfter } from "../../../agent/src/ship/retry.ts";
import { AgentSpan } from "../../../agent/src/assemble/span.ts";
import { JsonBatch, JsonBatchBuilder } from "../../../agent/src/ship/json-batch.ts";
import { SpanJsonWriter } from "../../../agent/src/ship/span-json.ts";
import { lastId, randomId64 } from "../../../agent/src/ids.ts";
import { gzipBody } from "../../../agent/src/ship/gzip.ts";
import { gzip, gzipLibrary } from "../../../agent/native/index.js";
import { classify, createSender } from "../../../agent/src/ship/sender.ts";
import { Shipper } from "../../../agent/src/ship/shipper.ts";
import { Spool } from "../../../agent/src/ship/spool.ts";
import { startIngestStub, type IngestStub } from "./ingest-stub.ts";
import { waitUntil } from "../../e2e/helpers/process.ts";

const span = (i: number, op = `GET /${i}`): ESpan => ({
  span_id: (i + 1).toString(16).padStart(16, "0"), kind: "exit", req_seq: i, resp_seq: i + 1, start_ns: "1700000000000000000",
  duration_ns: 1000, host: "h", pid: 1, tid: 1, process_name: "p", service: "s", src_ip: "127.0.0.1", dst_ip: "127.0.0.1",
  src_port: 1, dst_port: 2, l7_proto: "http", operation: op,
});
const spans = (n: number) => Array.from({ length: n }, (_, i) => span(i));
const batchOf = (n: number) => JsonBatch.of(spans(n));
const FAST = { initialMs: 20, maxMs: 200, maxRetryAfterMs: 5000 };

let stubs: IngestStub[] = [];
let shippers: Shipper[] = [];
afterEach(async () => {
  for (const s of shippers) await s.stop(0);
  for (const s of stubs) await s.close();
  stubs = [];
  shippers = [];
});

async function stub(answer?: Parameters<typeof startIngestStub>[0]) {
  const s = await startIngestStub(answer);
  stubs.push(s);
  return s;
}

function shipper(url: string, o: { batchSize?: number; flushIntervalMs?: number; token?: string; spool?: Spool; logs?: string[] } = {}) {
  const spool = o.spool ?? new Spool({ maxMemorySpans: 10_000, maxDiskBytes: 0 });
  const s = new Shipper(createSender({ url: `${url}/v1/bpftracing`, token: o.token }), spool, {
    batchSize: o.batchSize ?? 500, flushIntervalMs: o.flushIntervalMs ?? 20, backoff: FAST, log: (l) => o.logs?.push(l),
  });
  shippers.push(s);
  s.start();
  return { s, spool };
}

describe("JSON batches", () => {
  it("writes exactly JSON.stringify({ spans }) as UTF-8, for any batch size, reusing its buffer", () => {
    const builder = new JsonBatchBuilder();
    const enc = { encode: (b: ESpan[]) => (b.forEach((x) => builder.add(x)), builder.take().body) };
    // Bigger first, then smaller: a reused buffer must not leak the earlier batch's bytes.
    for (const n of [0, 1, 19, 20, 21, 40, 41, 2000, 3, 0, 500]) {
      const batch = Array.from({ length: n }, (_, i) =>
        span(i, i % 7 === 0 ? `GET /é/"q"\\\n\u0001/${"ü".repeat(i % 50)}/\u{1F600}` : `GET /${i}`),
      );
      for (const [i, s] of batch.entries()) if (i % 3 === 0) s.attributes = { "espan.pipelined_offset": i, x: "ß" };
      const got = enc.encode(batch);
      expect(got.toString("utf8"), `n=${n}`).toBe(JSON.stringify({ spans: batch }));
      expect(JSON.parse(got.toString("utf8")).spans).toEqual(batch);
    }
  });
  it("writes the agent's own spans (AgentSpan) exactly as JSON.stringify does, whatever their values", () => {
    const builder = new JsonBatchBuilder();
    const enc = { encode: (b: ESpan[]) => (b.forEach((x) => builder.add(x)), builder.take().body) };
    const texts = ["", "a", "GET /x?y=1", 'q"uote', "back\\slash", "ctl\u0001\n\t", "\u007f", "é", "ü/ß", "\u{1F600}", "\ud800 lone", "x".repeat(5000)];
    const numbers = [0, 1, 9, 10, 99, 100, 65535, 4294967295, 2 ** 53 - 1, -1, -0, 1.5, 1e21, Number.NaN, Infinity,
      ...Array.from({ length: 16 }, (_, k) => [10 ** k - 1, 10 ** k, 10 ** k + 7, Math.floor(1.234567890123456 * 10 ** k)]).flat()];
    const pick = <T,>(xs: T[], i: number) => xs[i % xs.length];
    const batch = Array.from({ length: 300 }, (_, i) => new AgentSpan(
      (i + 1).toString(16).padStart(16, "0"), i % 2 ? "entry" : "exit", pick(numbers, i), pick(numbers, i + 3), `17000000000000000${i}`,
      pick(numbers, i + 5), pick(texts, i), pick(numbers, i + 7), i, pick(texts, i + 1), pick(texts, i + 2), "127.0.0.1", "::1",
      pick(numbers, i + 1), 80, "http", pick([undefined, null, "00000000000000ab"], i), pick([undefined, ...texts], i),
      pick([undefined, "GET"], i), pick([undefined, ...texts], i + 4), pick([undefined, "1.1", "1.0"], i), pick([undefined, 200, 503], i),
      pick([undefined, "ok", "error"], i), pick([undefined, ...numbers], i), pick([undefined, 0, 12], i),
      pick([undefined, "0af7651916cd43dd8448eb211c80319c"], i), pick([undefined, "b7ad6b7169203331"], i), pick([undefined, true, false], i),
      pick<Record<string, string | number> | undefined>([undefined, { "espan.pipelined_offset": 3 }, { "espan.request_head": "truncated", x: "é" }], i),
    ));
    for (const n of [300, 1, 0, 57]) {
      const some = batch.slice(0, n);
      expect(enc.encode(some).toString("utf8"), `n=${n}`).toBe(JSON.stringify({ spans: some }));
    }
    // spans of one connection and endpoint that differ in one field each: what the writer
    // remembers of one span must never be written for another
    const base = batch[10];
    const variants = ["host", "pid", "process_name", "service", "src_ip", "dst_ip", "l7_proto", "operation", "http_method",
      "http_route", "http_version", "http_status_code", "status"].map((f) => {
      const v = new AgentSpan(...(Object.values(base) as ConstructorParameters<typeof AgentSpan>));
      const before = v[f];
      v[f] = typeof before === "number" ? before + 1 : typeof before === "string" ? `${before}x` : "y";
      return v;
    });
    const alike = [base, ...variants.flatMap((v) => [v, base])];
    expect(enc.encode(alike).toString("utf8")).toBe(JSON.stringify({ spans: alike }));
    // mixed with plain objects (spans read back from the spool)
    const mixed = [...spans(3), ...batch.slice(0, 3)];
    expect(enc.encode(mixed).toString("utf8")).toBe(JSON.stringify({ spans: mixed }));
  });

  it("writes spans built by the agent (ids, start and thread id also as numbers) through the addon, exactly as JSON.stringify does", () => {
    // As buildSpan makes them: the numbers given with the strings (AgentSpan.setWire).
    const wired = (i: number, o: { thread?: boolean; port?: number; status?: number } = {}) => {
      const thread = o.thread === false ? undefined : randomId64();
      const [thHi, thLo] = [lastId.hi, lastId.lo];
      const id = randomId64();
      const start = 1_764_900_000_000_000_000n + BigInt(i) * 1_234_567n;
      const s = new AgentSpan(id, i % 2 ? "entry" : "exit", (i * 2_654_435_761) >>> 0, i, start.toString(), i * 1_000_003,
        "h", 7, 8, "node", "svc", "10.0.0.1", "10.0.0.2", o.port ?? 40_000 + (i % 3), 8080, i % 11 ? "http" : "tcp", thread, "GET /a", "GET", "/a",
        "1.1", o.status ?? 200, "ok", i % 5 ? 78 + i : undefined, i % 7 ? 4096 * i : undefined, undefined, undefined, undefined, undefined);
      s.setWire(lastId.hi, lastId.lo, Number(start >> 32n), Number(start & 0xffff_ffffn), thHi, thLo);
      return s;
    };
    const w = new SpanJsonWriter(16); // grows while the addon writes
    const list = (xs: ESpan[]) => {
      w.n = 0;
      w.clearItems();
      for (const x of xs) w.item(x);
      w.flush();
      const text = w.buf.subarray(0, w.n).toString("utf8");
      // every span where the writer says it is
      xs.forEach((x, k) => expect(w.buf.subarray(w.starts[k], w.ends[k]).toString("utf8")).toBe(JSON.stringify(x)));
      return text;
    };
    const plain = Array.from({ length: 1000 }, (_, i) => wired(i, { thread: i % 4 !== 0, port: i % 50 === 0 ? 1 + i : undefined }));
    expect(list(plain)).toBe(plain.map((x) => JSON.stringify(x)).join(","));
    expect(w.encodedNatively).toBeGreaterThan(900); // the addon wrote them (all but each run's first)
    // Changed after they were built, or holding values the addon does not write: JS writes
    // those, in order among the others.
    const changes: ((s: AgentSpan) => void)[] = [
      (s) => (s.span_id = "0123456789abcdef"), (s) => (s.start_ns = "1"), (s) => (s.thread_trace_id = "00000000000000ab"),
      (s) => (s.thread_trace_id = null), (s) => (s.thread_trace_id = undefined), (s) => (s.kind = "client" as never),
      (s) => (s.req_seq = -1), (s) => (s.req_seq = 2 ** 32), (s) => (s.resp_seq = 1.5), (s) => (s.duration_ns = Number.NaN),
      (s) => (s.duration_ns = 2 ** 53), (s) => (s.bytes_read = -0), (s) => (s.bytes_written = Infinity), (s) => (s.app_sampled = true),
      (s) => (s.app_trace_id = "0af7651916cd43dd8448eb211c80319c"), (s) => (s.attributes = { "espan.pipelined_offset": 3 }),
      (s) => (s.req_seq = "7" as never), (s) => (s.host = "h2"), (s) => (s.operation = "GET /b"), (s) => (s.l7_proto = "udp"),
      (s) => (s.src_port = 65_536 * 65_536), (s) => (s.dst_port = -2), (s) => (s.dst_ip = "10.0.0.3"),
    ];
    const mixed = Array.from({ length: 600 }, (_, i) => {
      const s = wired(i, { status: i % 97 === 0 ? 503 : 200 });
      if (i % 3 === 0) changes[(i / 3) % changes.length](s);
      return s;
    });
    const before = w.encodedNatively;
    expect(list(mixed)).toBe(mixed.map((x) => JSON.stringify(x)).join(","));
    expect(w.encodedNatively - before).toBeGreaterThan(300);
    // and as batches
    const b = new JsonBatchBuilder();
    for (const x of [...mixed, ...spans(3), ...plain.slice(0, 300)]) b.add(x);
    const batch = b.takePlain();
    expect(batch.body.toString("utf8")).toBe(JSON.stringify({ spans: [...mixed, ...spans(3), ...plain.slice(0, 300)] }));
    expect(batch.pick([601, 0, 902]).body.toString("utf8")).toBe(JSON.stringify({ spans: [spans(3)[1], mixed[0], plain[299]] }));
    // An addon that fails (a bug): the spans staged for it are written by JS, in their places.
    const failing = new SpanJsonWriter();
    const all = [...plain.slice(0, 400), ...mixed.slice(0, 100)];
    for (const x of all.slice(0, 300)) failing.item(x);
    Object.defineProperty((failing as unknown as { native: object }).native, "encode", {
      value: () => {
        throw new Error("addon bug");
      },
    });
    for (const x of all.slice(300)) failing.item(x);
    failing.flush();
    expect(failing.buf.subarray(0, failing.n).toString("utf8")).toBe(all.map((x) => JSON.stringify(x)).join(","));
    all.forEach((x, k) => expect(failing.buf.subarray(failing.starts[k], failing.ends[k]).toString("utf8")).toBe(JSON.stringify(x)));
  });

  it("picks, slices and reads back spans by the offsets it kept", () => {
    const all = spans(7);
    all[3] = span(3, `GET /é/"q"/\u{1F600}`);
    const b = JsonBatch.of(all);
    expect(b.length).toBe(7);
    expect(b.spans()).toEqual(all);
    const body = (x: JsonBatch) => x.body.toString("utf8");
    expect(body(b.pick([6, 0, 3]))).toBe(JSON.stringify({ spans: [all[6], all[0], all[3]] }));
    expect(body(b.slice(2, 5))).toBe(JSON.stringify({ spans: all.slice(2, 5) }));
    expect(body(b.slice(5))).toBe(JSON.stringify({ spans: all.slice(5) }));
    expect(body(b.pick([]))).toBe(JSON.stringify({ spans: [] }));
    expect(body(b.slice(1, 4).pick([2]))).toBe(JSON.stringify({ spans: [all[3]] }));
    expect(body(JsonBatch.fromBody(b.body))).toBe(body(b));
    expect(() => JsonBatch.fromBody(Buffer.from('{"x":1}'))).toThrow(/no "spans" array/);
  });

  it("keeps a batch gzipped, by ISA-L or libdeflate when the system has them, as node:zlib reads it", () => {
    const all = spans(300);
    const b = JsonBatch.of(all);
    const text = JSON.stringify({ spans: all });
    expect(gunzipSync(b.gzipped()).toString("utf8")).toBe(text);
    expect(b.body.toString("utf8")).toBe(text);
    expect(gunzipSync(b.pick([2, 1]).gzipped()).toString("utf8")).toBe(JSON.stringify({ spans: [all[2], all[1]] }));
    // Incompressible bytes too (stored blocks; more output than input), and several blocks.
    const random = randomBytes(200_000);
    const big = Buffer.from(text.repeat(40));
    for (const data of [Buffer.alloc(0), Buffer.from(text), Buffer.from(text).subarray(7, 4000), random, big]) {
      expect(gunzipSync(gzipBody(data)).equals(data)).toBe(true);
      for (const level of [1, 6]) {
        const native = gzip(data, level); // null on a system with neither library
        if (native) expect(gunzipSync(native).equals(data)).toBe(true);
      }
    }
    // The library in use, as scripts/setup-system.sh installs them: ISA-L at level 1.
    const lib = gzipLibrary();
    expect([null, "libdeflate", "isal"]).toContain(lib);
    if (existsSync("/usr/include/isa-l/igzip_lib.h")) expect(lib).toBe("isal");
    if (lib !== null) expect(gzip(big, 1)!.length).toBeLessThan(big.length / 20);
  });
});

describe("sender", () => {
  it("gives up on an ingest that takes the body and never answers, within its deadline", async () => {
    const { createServer } = await import("node:http");
    const silent = createServer((req) => req.resume()); // reads, never answers
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    try {
      const port = (silent.address() as { port: number }).port;
      const t0 = Date.now();
      const r = await createSender({ url: `http://127.0.0.1:${port}/v1/bpftracing`, timeoutMs: 300 }).send(batchOf(2));
      expect(r.kind).toBe("retry");
      expect(r.kind === "retry" && r.detail).toMatch(/no answer within 300 ms/);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
  });

  it("POSTs gzip JSON {spans} to /v1/bpftracing with the bearer token", async () => {
    const ingest = await stub();
    const r = await createSender({ url: `${ingest.url}/v1/bpftracing`, token: "s3cret" }).send(batchOf(3));
    expect(r).toEqual({ kind: "ok", status: 202 });
    const got = ingest.received[0];
    expect(got.path).toBe("/v1/bpftracing");
    expect(got.headers["content-type"]).toBe("application/json");
    expect(got.headers["content-encoding"]).toBe("gzip");
    expect(got.headers.authorization).toBe("Bearer s3cret");
    expect(got.spans).toEqual(spans(3));
  });

  it("sends no Authorization header without a token", async () => {
    const ingest = await stub();
    await createSender({ url: `${ingest.url}/v1/bpftracing` }).send(batchOf(1));
    expect(ingest.received[0].headers.authorization).toBeUndefined();
  });

  it("classifies answers", () => {
    const rejected = JSON.stringify({ error: "bad", rejected: [{ index: 2, field: "kind", reason: "x" }, { index: 0, field: "pid", reason: "y" }] });
    expect(classify(400, undefined, rejected, 3)).toMatchObject({ kind: "rejected", indexes: [0, 2] });
    expect(classify(400, undefined, JSON.stringify({ error: "bad", rejected: [{ index: 7 }] }), 3).kind).toBe("permanent");
    expect(classify(400, undefined, "not json", 3).kind).toBe("permanent");
    expect(classify(413, undefined, "", 3).kind).toBe("too_large");
    expect(classify(415, undefined, "", 3).kind).toBe("permanent");
    expect(classify(401, undefined, "", 3).kind).toBe("refused");
    expect(classify(403, undefined, "", 3).kind).toBe("refused");
    expect(classify(429, "3", "", 3)).toMatchObject({ kind: "retry", retryAfterMs: 3000 });
    expect(classify(503, undefined, "", 3)).toMatchObject({ kind: "retry", retryAfterMs: undefined });
    expect(classify(500, undefined, "", 3).kind).toBe("retry");
  });

  it("a refused connection is retryable", async () => {
    const ingest = await stub();
    const url = `${ingest.url}/v1/bpftracing`;
    await ingest.close();
    stubs = [];
    expect((await createSender({ url }).send(batchOf(1))).kind).toBe("retry");
  });
});

describe("retry timing", () => {
  it("Retry-After in seconds or as an HTTP date", () => {
    const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it("exponential backoff with jitter, bounded", () => {
    const p = { initialMs: 100, maxMs: 1000, maxRetryAfterMs: 0 };
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffMs(a, p, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect([0, 1, 2].map((a) => backoffMs(a, p, () => 0))).toEqual([50, 100, 200]);
  });
});

describe("shipper", () => {
  it("batches by size, then sends the rest after the flush interval", async () => {
    const ingest = await stub();
    const { s } = shipper(ingest.url, { batchSize: 3, flushIntervalMs: 100 });
    const t0 = Date.now();
    for (const sp of spans(7)) s.write(sp);
    expect(await waitUntil(() => ingest.received.length === 3, 2000)).toBe(true);
    expect(ingest.received.map((r) => r.spans.length)).toEqual([3, 3, 1]);
    expect(ingest.received[2].at - t0).toBeGreaterThanOrEqual(95); // the partial one waited
    expect(await waitUntil(() => s.stats.sent === 7, 1000)).toBe(true);
  });

  it("retries 5xx with growing delays until accepted", async () => {
    const ingest = await stub((_r, n) => (n <= 3 ? { status: 503 } : { status: 202 }));
    const { s } = shipper(ingest.url);
    for (const sp of spans(5)) s.write(sp);
    expect(await waitUntil(() => ingest.accepted().length === 5, 5000)).toBe(true);
    expect(ingest.received).toHaveLength(4);
    expect(s.stats.retries).toBe(3);
    const gaps = ingest.received.slice(1).map((r, i) => r.at - ingest.received[i].at);
    expect(gaps[0]).toBeGreaterThanOrEqual(9); // 20 ms ± jitter: at least half
    expect(gaps[2]).toBeGreaterThanOrEqual(39); // 80 ms ± jitter
  });

  it("honours Retry-After", async () => {
    const ingest = await stub((_r, n) => (n === 1 ? { status: 429, headers: { "retry-after": "1" } } : { status: 202 }));
    const { s } = shipper(ingest.url);
    s.write(span(1));
    expect(await waitUntil(() => ingest.accepted().length === 1, 5000)).toBe(true);
    expect(ingest.received[1].at - ingest.received[0].at).toBeGreaterThanOrEqual(950);
  });

  it("413: splits the batch until it fits", async () => {
    const ingest = await stub((r) => (r.spans.length > 2 ? { status: 413 } : { status: 202 }));
    const { s } = shipper(ingest.url, { batchSize: 9 });
    for (const sp of spans(9)) s.write(sp);
    expect(await waitUntil(() => ingest.accepted().length === 9, 5000)).toBe(true);
    expect(ingest.accepted().map((x) => x.req_seq).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(s.stats.rejected).toBe(0);
  });

  it("400 with a rejected list: drops exactly those spans, counted and logged, and resends the rest", async () => {
    const ingest = await stub((r) => {
      const bad = r.spans.map((x, index) => ({ x, index })).filter(({ x }) => x.operation === "bad");
      if (bad.length === 0) return { status: 202 };
      return { status: 400, body: { error: "invalid spans", rejected: bad.map(({ index }) => ({ index, field: "operation", reason: "is bad" })) } };
    });
    const logs: string[] = [];
    const { s } = shipper(ingest.url, { batchSize: 6, logs });
    const batch = spans(6);
    batch[1] = span(1, "bad");
    batch[4] = span(4, "bad");
    for (const sp of batch) s.write(sp);
    expect(await waitUntil(() => ingest.accepted().length === 4, 5000)).toBe(true);
    expect(ingest.accepted().map((x) => x.req_seq)).toEqual([0, 2, 3, 5]);
    expect(s.stats.rejected).toBe(2);
    expect(logs.join("\n")).toMatch(/rejected 2 of 6 spans.*operation/s);
  });

  it("401: keeps the spans and says why", async () => {
    const ingest = await stub(() => ({ status: 401, body: { error: "bad token" } }));
    const logs: string[] = [];
    const { s, spool } = shipper(ingest.url, { logs });
    s.write(span(1));
    expect(await waitUntil(() => logs.length > 0, 3000)).toBe(true);
    expect(logs[0]).toMatch(/refuses the agent \(check token and trace_server\).*HTTP 401/);
    expect(spool.stats.memory_spans).toBe(1);
    expect(s.stats.sent).toBe(0);
  });

  it("an ingest down for a while then up: every span arrives", async () => {
    const ingest = await stub();
    const port = ingest.port;
    await ingest.close();
    stubs = [];
    const { s } = shipper(`http://127.0.0.1:${port}`, { batchSize: 10 });
    for (const sp of spans(35)) s.write(sp);
    await new Promise((r) => setTimeout(r, 600));
    expect(s.stats.retries).toBeGreaterThan(0);
    // Back on the same port, so the agent's URL still points at it.
    const again = await startIngestStub(undefined, port);
    stubs.push(again);
    expect(await waitUntil(() => again.accepted().length === 35, 5000)).toBe(true);
    expect(new Set(again.accepted().map((x) => x.span_id)).size).toBe(35);
  });

  it("stop(): what the ingest did not take goes to the spool directory, and the next run sends it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "espan-spool-"));
    const down = await stub(() => ({ status: 503 }));
    const spool1 = new Spool({ maxMemorySpans: 100, dir, maxDiskBytes: 1 << 20 });
    const { s } = shipper(down.url, { batchSize: 4, spool: spool1 });
    for (const sp of spans(10)) s.write(sp);
    await s.stop(100);
    expect(readdirSync(dir).filter((f) => f.endsWith(".json.gz")).length).toBe(3);
    const up = await stub();
    const spool2 = new Spool({ maxMemorySpans: 100, dir, maxDiskBytes: 1 << 20 });
    spool2.replay();
    expect(spool2.stats.replayed).toBe(10);
    shipper(up.url, { spool: spool2 });
    expect(await waitUntil(() => up.accepted().length === 10, 5000)).toBe(true);
    // Each file goes once its batch is acknowledged (just after the stub counted it).
    expect(await waitUntil(() => readdirSync(dir).filter((f) => f.endsWith(".json.gz")).length === 0, 2000)).toBe(true);
  });
});
