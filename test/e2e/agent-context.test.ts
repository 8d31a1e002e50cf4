// App trace context read from real requests: traceparent after a ~3 KB JWT-like Authorization
// header (found with the 4 KB capture), Datadog with 128-bit ids, B3 single and multi, header
// names in any case. Both sides of each request carry it.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ESpan } from "../../contract/espan.ts";
import { selectEnv, startTestAgent, type TestAgent } from "./helpers/agent.ts";
import { curlGated, finishCurl } from "./helpers/curl.ts";
import { startPythonServer, type Server } from "./helpers/servers.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";

describe("agent: app trace context", () => {
  let t: TestAgent;
  let server: Server;

  beforeAll(async () => {
    t = startTestAgent({ capture_bytes: 4096 });
    server = await startPythonServer({ host: "127.0.0.1", keepAlive: true, env: selectEnv });
    await t.waitTraced(server.pid);
  });

  afterAll(async () => {
    await t?.stop();
    await server?.stop();
  });

  /** One traced curl with these headers; returns [exit, entry]. */
  async function request(path: string, headers: string[]): Promise<[ESpan, ESpan]> {
    const curl = curlGated([server.url(path)], headers.flatMap((h) => ["-H", h]), selectEnv);
    await t.waitTraced(curl.pid);
    await finishCurl(curl, 1);
    expect(await t.waitFor(() => t.spansOf(curl.pid).length === 1)).toBe(true);
    const exit = t.spansOf(curl.pid)[0];
    expect(await t.waitFor(() => t.spansOf(server.pid).some((s) => s.req_seq === exit.req_seq))).toBe(true);
    return [exit, t.spansOf(server.pid).find((s) => s.req_seq === exit.req_seq)!];
  }

  it("traceparent after a 3 KB JWT-like Authorization header", async () => {
    const jwt = `eyJhbGciOiJSUzI1NiJ9.${randomBytes(2200).toString("base64url")}.${randomBytes(256).toString("base64url")}`;
    expect(jwt.length).toBeGreaterThan(3000);
    const [exit, entry] = await request("/jwt", [`Authorization: Bearer ${jwt}`, `Traceparent: 00-${TRACE}-${PARENT}-00`]);
    for (const s of [exit, entry]) expect(s).toMatchObject({ app_trace_id: TRACE, app_parent_id: PARENT, app_sampled: false });
    expect(exit.bytes_written).toBeGreaterThan(3000);
    expect(entry.bytes_read).toBeGreaterThan(3000);
  });

  it("Datadog: decimal ids, 128 bits with _dd.p.tid, sampling priority", async () => {
    const [exit, entry] = await request("/dd", [
      "X-Datadog-Trace-Id: 13088165645273925489",
      "X-Datadog-Parent-Id: 5678",
      "X-Datadog-Sampling-Priority: 2",
      "X-Datadog-Tags: _dd.p.dm=-4,_dd.p.tid=6641b8e300000000",
    ]);
    const low = BigInt("13088165645273925489").toString(16); // b5a2814f70060771
    for (const s of [exit, entry]) {
      expect(s).toMatchObject({ app_trace_id: `6641b8e300000000${low}`, app_parent_id: "000000000000162e", app_sampled: true });
    }
  });

  it("B3 single header and multi headers", async () => {
    const [single] = await request("/b3", [`b3: a3ce929d0e0e4736-${PARENT}-1`]);
    expect(single).toMatchObject({ app_trace_id: "0000000000000000a3ce929d0e0e4736", app_parent_id: PARENT, app_sampled: true });
    const [, multi] = await request("/b3m", [`X-B3-TraceId: ${TRACE}`, `X-B3-SpanId: ${PARENT}`, "X-B3-Flags: 1"]);
    expect(multi).toMatchObject({ app_trace_id: TRACE, app_parent_id: PARENT, app_sampled: true });
  });
});
