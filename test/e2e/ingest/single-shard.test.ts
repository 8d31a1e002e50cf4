/**
 * One shard: the worker hands it each request body as it came, the shard parses and validates
 * it once and logs it as it came (JSON document or NDJSON) unless validation had to normalise a
 * span. These check that path end to end on `workerd serve`: every body form links as the
 * offline linker does, a kill -9 with such rows in the log then a restart loses nothing and
 * exports nothing twice, normalised spans are stored normalised, and a bad span is refused
 * with its index and field.
 */
import { gzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import type { ESpan } from "../../../contract/espan.ts";
import { DEFAULT_LINK_CONFIG } from "../../../src/linker/config.ts";
import { LocalCluster } from "../../../src/linker/local-cluster.ts";
import { loadEngineModule } from "../../../src/linker/load-node.ts";
import { generateTraffic } from "../../gen/traffic.ts";
import { postAcrossKill9, startIngest, type Ingest } from "./ingest-server.ts";
import { metrics, settled } from "./metrics.ts";
import { startReceiver, type Receiver } from "./otlp-receiver.ts";

const traffic = generateTraffic({
  seed: 23, traces: 120, untracedCallerFraction: 0.2, clientRootFraction: 0.3, dbCallFraction: 0.3, natFraction: 0.3,
});
const config = { ...DEFAULT_LINK_CONFIG, samplingRate: 1, useAppTraceId: false };

function offline(): Map<string, string> {
  const c = new LocalCluster(loadEngineModule(), config, 1);
  c.ingest(traffic.spans, 0);
  c.flush();
  return new Map(c.drainResults().map((r) => [r.span_id, `${r.trace_id} ${r.parent_id}`]));
}

/** Every batch in one of the body forms, by turn. */
type Form = "json" | "ndjson" | "gzip" | "normalised";
const FORMS: Form[] = ["json", "ndjson", "gzip", "normalised"];

/** A span the validator must normalise (upper-case ids, null optionals), meaning the same. */
function denormalised(s: ESpan): Record<string, unknown> {
  return { ...s, thread_trace_id: s.thread_trace_id ? s.thread_trace_id.toUpperCase() : null, http_version: s.http_version ?? null };
}

async function post(url: string, spans: ESpan[], form: Form): Promise<number> {
  let body: string | Uint8Array<ArrayBuffer>;
  const headers: Record<string, string> = { "content-type": form === "ndjson" ? "application/x-ndjson" : "application/json" };
  if (form === "ndjson") body = "\n" + spans.map((s) => JSON.stringify(s)).join("\n\n") + "\n"; // blank lines are skipped
  else if (form === "normalised") body = JSON.stringify({ spans: spans.map(denormalised) });
  else body = JSON.stringify({ spans });
  if (form === "gzip") {
    body = new Uint8Array(gzipSync(body));
    headers["content-encoding"] = "gzip";
  }
  const res = await fetch(`${url}/v1/bpftracing`, { method: "POST", headers, body }).catch(() => undefined);
  if (!res) return 0;
  await res.arrayBuffer();
  return res.status;
}

function exported(receiver: Receiver) {
  const links = new Map<string, string>();
  const counts = new Map<string, number>();
  for (const s of receiver.spans) {
    links.set(s.spanId, `${s.traceId} ${s.parentSpanId}`);
    counts.set(s.spanId, (counts.get(s.spanId) ?? 0) + 1);
  }
  return { links, twice: [...counts].filter(([, n]) => n > 1) };
}

let running: { ingest: Ingest; receiver: Receiver }[] = [];
afterEach(async () => {
  for (const r of running) {
    await r.ingest.stop();
    await r.receiver.close();
  }
  running = [];
});

async function start() {
  const receiver = await startReceiver();
  const ingest = await startIngest({ shards: 1, samplingRate: 1, useAppTraceId: false, window: "20s", settle: "1s", otlpEndpoint: receiver.url });
  running.push({ ingest, receiver });
  return { ingest, receiver };
}

describe("one shard: request bodies logged as they came", () => {
  const expected = offline();
  const parts: ESpan[][] = [];
  for (let i = 0; i < traffic.spans.length; i += 90) parts.push(traffic.spans.slice(i, i + 90));

  it("JSON, NDJSON, gzip and normalised bodies, a kill -9 in the middle, a restart: every span exported once, linked as offline", async () => {
    const { ingest, receiver } = await start();
    // A batch sent again goes in the next form.
    await postAcrossKill9(ingest, parts.length, (i, again) => post(ingest.url, parts[i], FORMS[(again ? i + 1 : i) % FORMS.length]));
    await settled(ingest.url, 90_000, false);
    const { links, twice } = exported(receiver);
    expect(twice).toEqual([]);
    expect(links.size).toBe(traffic.spans.length);
    expect(links).toEqual(expected);

    // A span of a normalised batch is stored (and served) normalised.
    const normalisedBatch = FORMS.indexOf("normalised");
    const withThread = parts[normalisedBatch].find((s) => s.thread_trace_id && s.http_version === undefined)!;
    const stored = await (await fetch(`${ingest.url}/api/spans/${withThread.span_id}`)).json();
    expect(stored.thread_trace_id).toBe(withThread.thread_trace_id);
    expect("http_version" in stored).toBe(false);
    expect(stored.trace_id).toBe(expected.get(withThread.span_id)!.split(" ")[0]);
  });

  it("refuses a body with a bad span, naming it, and stores none of it", async () => {
    const { ingest } = await start();
    const before = await metrics(ingest.url);
    const bad = parts[0].slice(0, 5).map((s, i) => (i === 3 ? { ...s, src_port: 70000 } : s));
    for (const ndjson of [false, true]) {
      const body = ndjson ? bad.map((s) => JSON.stringify(s)).join("\n") : JSON.stringify({ spans: bad });
      const res = await fetch(`${ingest.url}/v1/bpftracing`, { method: "POST", headers: { "content-type": ndjson ? "application/x-ndjson" : "application/json" }, body });
      expect(res.status).toBe(400);
      const answer = await res.json();
      expect(answer.rejected).toEqual([{ index: 3, field: "src_port", reason: "must be in 0..65535" }]);
    }
    const after = await metrics(ingest.url);
    expect(after.espan_spans_received_total ?? 0).toBe(before.espan_spans_received_total ?? 0);
    expect(after.espan_spans_rejected_total).toBe((before.espan_spans_rejected_total ?? 0) + 2);
  });
});
