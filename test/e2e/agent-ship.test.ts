// Shipping from the real pipeline: spans captured on the kernel arrive at a local HTTP
// receiver as gzip JSON batches with the bearer token; with the receiver down for a few
// seconds, every span still arrives once it is back.
import net from "node:net";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { validateESpan } from "../../contract/espan.ts";
import { startIngestStub, type IngestStub } from "../unit/agent/ingest-stub.ts";
import { selectEnv, startTestAgent, type TestAgent } from "./helpers/agent.ts";
import { curlGated, finishCurl } from "./helpers/curl.ts";
import { waitUntil } from "./helpers/process.ts";
import { startPythonServer, type Server } from "./helpers/servers.ts";

/** A loopback port nothing listens on (the kernel gave it, then it was closed). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe("agent: shipping", () => {
  let server: Server;
  let t: TestAgent | undefined;
  let stub: IngestStub | undefined;

  afterEach(async () => {
    await t?.stop();
    await stub?.close();
    t = undefined;
    stub = undefined;
  });

  afterAll(async () => {
    await server?.stop();
  });

  async function traffic(agent: TestAgent, n: number): Promise<number> {
    server ??= await startPythonServer({ host: "127.0.0.1", keepAlive: true, env: selectEnv });
    await agent.waitTraced(server.pid);
    const curl = curlGated(Array.from({ length: n }, (_, i) => server.url(`/ship/${i}`)), [], selectEnv);
    await agent.waitTraced(curl.pid);
    await finishCurl(curl, n);
    return curl.pid;
  }

  it("POSTs gzip JSON batches with the bearer token; the spans are the pipeline's, valid", async () => {
    stub = await startIngestStub();
    t = startTestAgent({ trace_server: `127.0.0.1:${stub.port}`, token: "e2e-token", flush_interval: 200 });
    const curlPid = await traffic(t, 4);
    expect(await t.waitFor(() => t!.spansOf(curlPid).length === 4)).toBe(true);
    const want = new Set(t.spans.map((s) => s.span_id));
    expect(await waitUntil(() => [...want].every((id) => stub!.accepted().some((s) => s.span_id === id)), 5000)).toBe(true);
    for (const r of stub.received) {
      expect(r.path).toBe("/v1/bpftracing");
      expect(r.headers["content-encoding"]).toBe("gzip");
      expect(r.headers["content-type"]).toBe("application/json");
      expect(r.headers.authorization).toBe("Bearer e2e-token");
    }
    for (const s of stub.accepted()) expect(validateESpan(s).ok).toBe(true);
    expect(t.agent.stats().ship).toMatchObject({ rejected: 0, dropped: 0 });
  });

  it("the receiver down for a few seconds, then up: every span arrives", async () => {
    const port = await freePort();
    t = startTestAgent({ trace_server: `http://127.0.0.1:${port}`, flush_interval: 200, batch_size: 4 });
    const curlPid = await traffic(t, 10);
    expect(await t.waitFor(() => t!.spansOf(curlPid).length === 10)).toBe(true);
    await new Promise((r) => setTimeout(r, 3000));
    const down = t.agent.stats().ship!;
    expect(down.retries).toBeGreaterThan(0);
    expect(down.sent).toBe(0);
    stub = await startIngestStub(undefined, port);
    const want = t.spans.map((s) => s.span_id);
    expect(await waitUntil(() => want.every((id) => stub!.accepted().some((s) => s.span_id === id)), 40_000)).toBe(true);
    expect(t.agent.stats().ship).toMatchObject({ dropped: 0, rejected: 0 });
  });
});
