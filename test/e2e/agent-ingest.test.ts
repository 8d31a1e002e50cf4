// The whole path on the real kernel: curl → a threaded Python proxy → a Python backend on
// loopback, captured by the real agent pipeline (in this process), shipped to the ingest on
// `workerd serve` (node dist/start.js --workerd), linked, exported as OTLP/protobuf to a local
// receiver and stored for /api. Each curl request must come out as one trace with exactly the
// edges curl exit (root) → proxy entry → proxy exit → backend entry, with the service names
// the processes' environment gave. Then the ingest is stopped for 30 s under traffic: the agent
// retries and spools (memory, then disk), and after the restart every span it produced is
// exported exactly once, linked the same way.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ESpan } from "../../contract/espan.ts";
import { selectEnv, startTestAgent, type TestAgent } from "./helpers/agent.ts";
import { startPyProxy, type App } from "./helpers/apps.ts";
import { curlGated, finishCurl } from "./helpers/curl.ts";
import { sleep, waitUntil } from "./helpers/process.ts";
import { startPythonServer, type Server } from "./helpers/servers.ts";
import { startIngest, type Ingest } from "./ingest/ingest-server.ts";
import { settled } from "./ingest/metrics.ts";
import { startReceiver, type ReceivedSpan, type Receiver } from "./ingest/otlp-receiver.ts";

const SERVICE = { curl: "e2e-curl", proxy: "e2e-proxy", backend: "e2e-backend" };
const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;
const OUTAGE_MS = 30_000;
const REQUEST_EVERY_MS = 200;

/** The four spans one curl request makes, as the agent produced them. */
interface Chain {
  route: string;
  curlExit: ESpan;
  proxyEntry: ESpan;
  proxyExit: ESpan;
  backendEntry: ESpan;
}

describe("agent → ingest (workerd) → OTLP and /api: a real 3-tier chain", () => {
  let receiver: Receiver;
  let ingest: Ingest;
  let t: TestAgent;
  let backend: Server;
  let proxy: App;
  let spoolDir: string;
  /** route → pid of the curl that requested it. */
  const curlPidOf = new Map<string, number>();

  beforeAll(async () => {
    receiver = await startReceiver();
    ingest = await startIngest({
      window: "2s", settle: "500ms", samplingRate: 1, useAppTraceId: true,
      otlpEndpoint: receiver.url, otlpProtocol: "http/protobuf",
    });
    spoolDir = mkdtempSync(join(tmpdir(), "espan-e2e-spool-"));
    // A small memory queue, so that the outage spills batches to the disk spool too.
    t = startTestAgent({ trace_server: ingest.url, flush_interval: 200, spool_dir: spoolDir, queue_max_spans: 40 });
    // DK_BPFTRACE_SERVICE wins over OTEL_SERVICE_NAME (the seed's order).
    backend = await startPythonServer({
      host: "127.0.0.1", keepAlive: true,
      env: { ...selectEnv, DK_BPFTRACE_SERVICE: SERVICE.backend, OTEL_SERVICE_NAME: "not-this-one" },
    });
    proxy = await startPyProxy(backend.port, [], { ...selectEnv, OTEL_SERVICE_NAME: SERVICE.proxy });
    await t.waitTraced(backend.pid);
    await t.waitTraced(proxy.pid);
  });

  afterAll(async () => {
    await t?.stop();
    await proxy?.stop();
    await backend?.stop();
    await ingest?.stop();
    await receiver?.close();
    if (spoolDir) rmSync(spoolDir, { recursive: true, force: true });
  });

  /** One traced curl: these paths on one keep-alive connection to the proxy. */
  async function curl(paths: string[]): Promise<void> {
    const c = curlGated(paths.map((p) => proxy.url(p)), [], { ...selectEnv, DK_BPFTRACE_SERVICE: SERVICE.curl });
    await t.waitTraced(c.pid);
    for (const p of paths) curlPidOf.set(p, c.pid);
    await finishCurl(c, paths.length);
  }

  /** The four spans of `route`'s chain from the agent's spans, each undefined while missing. */
  function spansOfChain(route: string) {
    const one = (pid: number, kind: ESpan["kind"], r: string) => t.spans.find((s) => s.pid === pid && s.kind === kind && s.http_route === r);
    return {
      curlExit: one(curlPidOf.get(route)!, "exit", route),
      proxyEntry: one(proxy.pid, "entry", route),
      proxyExit: one(proxy.pid, "exit", `/backend${route}`),
      backendEntry: one(backend.pid, "entry", `/backend${route}`),
    };
  }

  /** The chain of `route`, or undefined while a span is missing. */
  function chainOf(route: string): Chain | undefined {
    const { curlExit, proxyEntry, proxyExit, backendEntry } = spansOfChain(route);
    if (!curlExit || !proxyEntry || !proxyExit || !backendEntry) return undefined;
    return { route, curlExit, proxyEntry, proxyExit, backendEntry };
  }

  /** Which spans of `route` are missing, by name. */
  const missingOf = (route: string) => Object.entries(spansOfChain(route)).filter(([, s]) => !s).map(([name]) => name);

  async function chainsOf(routes: string[], timeoutMs = 10_000): Promise<Chain[]> {
    const ok = await t.waitFor(() => routes.every((r) => chainOf(r) !== undefined), timeoutMs);
    const missing = routes.filter((r) => !chainOf(r)).map((r) => `${r} (${missingOf(r).join(", ")})`);
    expect(ok, `spans of ${missing.join("; ")} not all captured; agent log: ${t.logs.slice(-5).join(" | ")}; stats ${JSON.stringify(t.agent.stats())}`).toBe(true);
    return routes.map((r) => chainOf(r)!);
  }

  /** What the agent itself must have got right for the linker to link the chain. */
  function expectAgentLinks(c: Chain): void {
    expect(c.curlExit.thread_trace_id, `${c.route}: curl is a client root`).toBeUndefined();
    expect(c.proxyExit.thread_trace_id, `${c.route}: proxy exit on the entry's thread`).toBe(c.proxyEntry.thread_trace_id);
    expect([c.proxyEntry.req_seq, c.proxyEntry.resp_seq]).toEqual([c.curlExit.req_seq, c.curlExit.resp_seq]);
    expect([c.backendEntry.req_seq, c.backendEntry.resp_seq]).toEqual([c.proxyExit.req_seq, c.proxyExit.resp_seq]);
  }

  /** The exported trace of a chain: exactly its four spans, exactly these edges. */
  function expectExportedChain(c: Chain, exported: Map<string, ReceivedSpan>): string {
    const label = new Map([
      [c.curlExit.span_id, "curl exit"],
      [c.proxyEntry.span_id, "proxy entry"],
      [c.proxyExit.span_id, "proxy exit"],
      [c.backendEntry.span_id, "backend entry"],
    ]);
    const root = exported.get(c.curlExit.span_id);
    expect(root, `${c.route}: curl exit exported`).toBeDefined();
    const traceId = root!.traceId;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    const trace = [...exported.values()].filter((s) => s.traceId === traceId);
    const edges = Object.fromEntries(trace.map((s) => [label.get(s.spanId) ?? s.spanId, s.parentSpanId === "" ? "(root)" : label.get(s.parentSpanId) ?? s.parentSpanId]));
    expect(edges, `${c.route}: trace ${traceId}`).toEqual({
      "curl exit": "(root)",
      "proxy entry": "curl exit",
      "proxy exit": "proxy entry",
      "backend entry": "proxy exit",
    });
    const get = (s: ESpan) => exported.get(s.span_id)!;
    expect([get(c.curlExit), get(c.proxyEntry), get(c.proxyExit), get(c.backendEntry)].map((s) => [s.kind, s.resource["service.name"]])).toEqual([
      [SPAN_KIND_CLIENT, SERVICE.curl],
      [SPAN_KIND_SERVER, SERVICE.proxy],
      [SPAN_KIND_CLIENT, SERVICE.proxy],
      [SPAN_KIND_SERVER, SERVICE.backend],
    ]);
    expect(get(c.proxyEntry).attributes["http.route"]).toBe(c.route);
    expect(get(c.backendEntry).attributes["http.route"]).toBe(`/backend${c.route}`);
    return traceId;
  }

  /** Every span the agent produced reached the receiver, and each exactly once. */
  async function expectAllExportedOnce(): Promise<Map<string, ReceivedSpan>> {
    const want = () => t.spans.map((s) => s.span_id);
    const arrived = await waitUntil(() => {
      const got = new Set(receiver.spans.map((s) => s.spanId));
      return want().every((id) => got.has(id));
    }, 90_000, 200);
    expect(arrived, `${want().filter((id) => !receiver.spans.some((s) => s.spanId === id)).length} spans never exported`).toBe(true);
    await settled(ingest.url, 30_000);
    await sleep(500); // an export that would repeat a span has time to show
    const counts = new Map<string, number>();
    for (const s of receiver.spans) counts.set(s.spanId, (counts.get(s.spanId) ?? 0) + 1);
    expect([...counts].filter(([, n]) => n > 1), "spans exported twice").toEqual([]);
    expect([...counts.keys()].sort()).toEqual(want().sort());
    expect(t.agent.stats().assemble.spans).toBe(t.spans.length);
    return new Map(receiver.spans.map((s) => [s.spanId, s]));
  }

  it("each curl request is one trace: curl exit (root) → proxy entry → proxy exit → backend entry, in the OTLP export and /api", async () => {
    const routes = ["/chain/a1", "/chain/a2", "/chain/a3", "/chain/b", "/chain/c"];
    // One keep-alive connection with three requests, and two single requests, concurrently.
    await Promise.all([curl(routes.slice(0, 3)), curl(["/chain/b"]), curl(["/chain/c"])]);
    const chains = await chainsOf(routes);
    for (const c of chains) expectAgentLinks(c);
    expect(t.spans).toHaveLength(4 * routes.length); // nothing else was captured

    const exported = await expectAllExportedOnce();
    expect(receiver.requests.every((r) => r.contentType === "application/x-protobuf" && r.status === 200)).toBe(true);
    const traceIds = chains.map((c) => expectExportedChain(c, exported));
    expect(new Set(traceIds).size).toBe(routes.length); // one trace per request

    // The built-in store has the same traces, span for span.
    for (const [i, c] of chains.entries()) {
      const res = await fetch(`${ingest.url}/api/traces/${traceIds[i]}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { trace_id: string; spans: { span_id: string; trace_id: string; parent_id: string; service: string }[] };
      const got = body.spans.map((s) => [s.span_id, s.trace_id, s.parent_id, s.service]).sort();
      const want = [
        [c.curlExit.span_id, traceIds[i], "", SERVICE.curl],
        [c.proxyEntry.span_id, traceIds[i], c.curlExit.span_id, SERVICE.proxy],
        [c.proxyExit.span_id, traceIds[i], c.proxyEntry.span_id, SERVICE.proxy],
        [c.backendEntry.span_id, traceIds[i], c.proxyExit.span_id, SERVICE.backend],
      ].sort();
      expect(got, `/api/traces/${traceIds[i]} (${c.route})`).toEqual(want);
    }
    expect(t.agent.stats().ship).toMatchObject({ dropped: 0, rejected: 0 });
  });

  it("the ingest stopped for 30 s then restarted: every span arrives, exactly once, linked", { timeout: 240_000 }, async () => {
    await settled(ingest.url, 30_000); // what came before is exported: only the outage's spans are in flight
    const before = { ...t.agent.stats().ship! };
    const spansBefore = t.spans.length;

    await ingest.stop({ keepStorage: true });
    const stoppedAt = Date.now();
    // A request every 200 ms, each its own curl process, until the outage ends (≤ 150).
    const routes: string[] = [];
    for (let i = 0; i < OUTAGE_MS / REQUEST_EVERY_MS; i++) {
      const slot = stoppedAt + i * REQUEST_EVERY_MS;
      if (slot > stoppedAt + OUTAGE_MS - 1000) break;
      await sleep(Math.max(0, slot - Date.now()));
      const route = `/outage/${i}`;
      await curl([route]);
      routes.push(route);
    }
    const chains = await chainsOf(routes);
    for (const c of chains) expectAgentLinks(c);
    expect(t.spans.length - spansBefore).toBe(4 * routes.length);
    await sleep(Math.max(0, stoppedAt + OUTAGE_MS - Date.now()));

    // While it was down: retried, nothing accepted, nothing dropped; spilled to disk beyond 40.
    const down = t.agent.stats().ship!;
    expect(down.retries).toBeGreaterThan(before.retries);
    expect(down.sent).toBe(before.sent);
    expect(down.dropped).toBe(0);
    expect(down.disk_spans).toBeGreaterThan(0);
    expect(down.memory_spans + down.disk_spans + down.pending).toBe(4 * routes.length);
    console.log(
      `outage: ${routes.length} requests (${4 * routes.length} spans) in ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s; ` +
        `${down.retries - before.retries} retries; queued ${down.memory_spans} in memory, ${down.disk_spans} on disk (${down.disk_bytes} B)`,
    );

    const restartedAt = Date.now();
    await ingest.restart();
    const exported = await expectAllExportedOnce();
    console.log(`after the restart: every span exported within ${((Date.now() - restartedAt) / 1000).toFixed(1)} s`);
    const traceIds = chains.map((c) => expectExportedChain(c, exported));
    expect(new Set(traceIds).size).toBe(routes.length);
    expect(t.agent.stats().ship).toMatchObject({ dropped: 0, rejected: 0, memory_spans: 0, disk_spans: 0, pending: 0 });
  });
});
