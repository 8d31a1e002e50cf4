// The agent pipeline on the real kernel, HTTP/1.x: curl against python3's http.server
// (HTTP/1.0, closes) and a keep-alive HTTP/1.1 server. One span per request on each side, the
// client's and the server's with the same (req_seq, resp_seq); the last request of a keep-alive
// connection exported, also while the connection stays open.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateESpan, type ESpan } from "../../contract/espan.ts";
import { selectEnv, startTestAgent, type TestAgent } from "./helpers/agent.ts";
import { curlGated, finishCurl } from "./helpers/curl.ts";
import { spawnGated } from "./helpers/process.ts";
import { helperPath, startPythonServer, type Server } from "./helpers/servers.ts";

const key = (s: ESpan) => `${s.req_seq}/${s.resp_seq}`;
const keys = (spans: ESpan[]) => spans.map(key).sort();

function expectValid(spans: ESpan[]) {
  for (const s of spans) {
    const v = validateESpan(s);
    expect(v.ok, `${JSON.stringify(s)}\n${JSON.stringify(v)}`).toBe(true);
  }
}

describe("agent: HTTP/1.0 and keep-alive HTTP/1.1", () => {
  let t: TestAgent;
  let http10: Server;
  let ka: Server;

  beforeAll(async () => {
    t = startTestAgent();
    http10 = await startPythonServer({ host: "127.0.0.1", env: selectEnv });
    ka = await startPythonServer({ host: "127.0.0.1", keepAlive: true, env: selectEnv });
    await t.waitTraced(http10.pid);
    await t.waitTraced(ka.pid);
  });

  afterAll(async () => {
    await t?.stop();
    await http10?.stop();
    await ka?.stop();
  });

  it("HTTP/1.0: one exit and one entry per request, with the same seq pair", async () => {
    const curl = curlGated([http10.url("/a.txt"), http10.url("/b.txt?x=1"), http10.url("/a.txt")], ["--http1.0"], selectEnv);
    await t.waitTraced(curl.pid);
    await finishCurl(curl, 3);
    expect(await t.waitFor(() => t.spansOf(curl.pid).length === 3 && t.spansOf(http10.pid).length >= 3)).toBe(true);
    const exits = t.spansOf(curl.pid);
    const entries = t.spansOf(http10.pid).filter((s) => exits.some((x) => x.src_port === s.dst_port));
    expectValid([...exits, ...entries]);
    expect(exits.every((s) => s.kind === "exit" && s.thread_trace_id === undefined)).toBe(true);
    expect(entries.every((s) => s.kind === "entry" && /^[0-9a-f]{16}$/.test(s.thread_trace_id!))).toBe(true);
    expect(keys(entries)).toEqual(keys(exits));
    expect(exits.map((s) => s.operation)).toEqual(["GET /a.txt", "GET /b.txt", "GET /a.txt"]);
    for (const e of entries) {
      const x = exits.find((s) => key(s) === key(e))!;
      expect(e).toMatchObject({ http_version: "1.0", http_status_code: 200, status: "ok", l7_proto: "http", host: "e2e-host" });
      expect([e.bytes_read, e.bytes_written]).toEqual([x.bytes_written, x.bytes_read]);
      expect([e.src_port, e.dst_port]).toEqual([x.dst_port, x.src_port]);
      expect(e.duration_ns).toBeGreaterThan(0);
      expect(x.duration_ns).toBeGreaterThan(0);
      expect(Math.abs(Number(BigInt(e.start_ns) - BigInt(x.start_ns)))).toBeLessThan(1e9);
    }
  });

  it("keep-alive: one span per request on one connection, the last one included", async () => {
    const paths = ["/one", "/two", "/three", "/pad/3000", "/five"];
    const curl = curlGated(paths.map((p) => ka.url(p)), [], selectEnv);
    await t.waitTraced(curl.pid);
    await finishCurl(curl, paths.length);
    expect(await t.waitFor(() => t.spansOf(curl.pid).length === paths.length)).toBe(true);
    const exits = t.spansOf(curl.pid);
    expect(new Set(exits.map((s) => s.src_port)).size).toBe(1); // one connection
    expect(await t.waitFor(() => t.spansOf(ka.pid).filter((s) => s.dst_port === exits[0].src_port).length === paths.length)).toBe(true);
    const entries = t.spansOf(ka.pid).filter((s) => s.dst_port === exits[0].src_port);
    expectValid([...exits, ...entries]);
    expect(exits.map((s) => s.http_route)).toEqual(paths);
    expect(entries.map((s) => s.http_route)).toEqual(paths);
    expect(keys(entries)).toEqual(keys(exits));
    expect(new Set(entries.map((s) => s.thread_trace_id)).size).toBe(paths.length);
    const pad = entries.find((s) => s.http_route === "/pad/3000")!;
    expect(pad.bytes_written).toBeGreaterThan(3000);
  });

  it("an idle keep-alive connection's last request is exported while the connection stays open", async () => {
    const n = 3;
    const client = spawnGated("python3", ["-u", helperPath("ka_client.py"), String(ka.port), String(n), "6"], selectEnv);
    await t.waitTraced(client.pid);
    client.release();
    let done = false;
    client.child.stdout!.on("data", (d: Buffer) => (done ||= d.toString().includes("done")));
    expect(await t.waitFor(() => done, 10_000)).toBe(true);
    const doneAt = Date.now();
    // The client holds the connection for 6 s; both sides' last spans must come well before.
    expect(await t.waitFor(() => t.spansOf(client.pid).length === n, 4000)).toBe(true);
    const exits = t.spansOf(client.pid);
    expect(await t.waitFor(() => t.spansOf(ka.pid).filter((s) => s.dst_port === exits[0].src_port).length === n, 4000)).toBe(true);
    expect(Date.now() - doneAt).toBeLessThan(5000);
    expect(client.child.exitCode).toBeNull(); // still connected
    const entries = t.spansOf(ka.pid).filter((s) => s.dst_port === exits[0].src_port);
    expect(keys(entries)).toEqual(keys(exits));
    expect(entries.map((s) => s.http_route)).toEqual(["/ka/0", "/ka/1", "/ka/2"]);
    client.child.kill();
    await client.exited;
  });
});
