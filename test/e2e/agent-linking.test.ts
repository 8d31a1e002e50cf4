// In-process linking on the real kernel: a thread-per-connection Python proxy (exits carry the
// entry's thread_trace_id), a worker thread that answered its request and then makes an
// unrelated call (not linked), and a Node proxy under concurrency, where all socket I/O runs on
// one thread: no false link, ever (links only when one entry is open, or by app context).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ESpan } from "../../contract/espan.ts";
import { selectEnv, startTestAgent, type TestAgent } from "./helpers/agent.ts";
import { startNodeProxy, startPyProxy, type App } from "./helpers/apps.ts";
import { curlGated, finishCurl } from "./helpers/curl.ts";
import { run } from "./helpers/process.ts";
import { helperPath, startPythonServer, type Server } from "./helpers/servers.ts";

const entriesById = (spans: ESpan[]) => new Map(spans.filter((s) => s.kind === "entry").map((s) => [s.thread_trace_id!, s]));

describe("agent: in-process linking", () => {
  let t: TestAgent;
  let backend: Server;
  const apps: App[] = [];

  beforeAll(async () => {
    t = startTestAgent();
    backend = await startPythonServer({ host: "127.0.0.1", keepAlive: true, env: selectEnv });
    await t.waitTraced(backend.pid);
  });

  afterAll(async () => {
    await t?.stop();
    for (const a of apps) await a.stop();
    await backend?.stop();
  });

  it("threaded proxy: each exit carries the thread_trace_id of the entry it was made for", async () => {
    const proxy = await startPyProxy(backend.port, [], selectEnv);
    apps.push(proxy);
    await t.waitTraced(proxy.pid);
    const paths = ["/p/1", "/p/2", "/p/3", "/p/4", "/p/5", "/p/6"];
    // Three curls in parallel, two requests each on a keep-alive connection: 3 handler threads.
    const curls = [0, 1, 2].map((i) => curlGated([proxy.url(paths[2 * i]), proxy.url(paths[2 * i + 1])]));
    await Promise.all(curls.map((c) => finishCurl(c, 2)));
    expect(await t.waitFor(() => t.spansOf(proxy.pid).length === 12)).toBe(true);
    const spans = t.spansOf(proxy.pid);
    const entries = entriesById(spans);
    const exits = spans.filter((s) => s.kind === "exit");
    expect(entries.size).toBe(6);
    expect(exits).toHaveLength(6);
    for (const x of exits) {
      const entry = entries.get(x.thread_trace_id!);
      expect(entry, `exit ${x.http_route} unlinked`).toBeDefined();
      expect(x.http_route).toBe(`/backend${entry!.http_route}`);
      expect(x.tid).toBe(entry!.tid);
    }
    // And the exits reach the backend's entries by seq pair (the net group).
    expect(await t.waitFor(() => exits.every((x) => t.spansOf(backend.pid).some((e) => e.req_seq === x.req_seq && e.resp_seq === x.resp_seq)))).toBe(true);
  });

  it("stale guard: a call made on the worker thread after its response was written is not linked", async () => {
    const proxy = await startPyProxy(backend.port, ["--call-after-response"], selectEnv);
    apps.push(proxy);
    await t.waitTraced(proxy.pid);
    const curl = curlGated([proxy.url("/s/1"), proxy.url("/s/2")]);
    await finishCurl(curl, 2);
    expect(await t.waitFor(() => t.spansOf(proxy.pid).filter((s) => s.kind === "exit").length === 2)).toBe(true);
    const spans = t.spansOf(proxy.pid);
    const late = spans.filter((s) => s.kind === "exit");
    expect(late.map((s) => s.http_route).sort()).toEqual(["/late/s/1", "/late/s/2"]);
    const entries = spans.filter((s) => s.kind === "entry");
    for (const x of late) {
      expect(x.thread_trace_id).toBeUndefined();
      expect(entries.some((e) => e.tid === x.tid)).toBe(true); // same thread as an answered entry
    }
  });

  for (const forward of [false, true]) {
    it(`Node event loop, 20 concurrent requests${forward ? ", traceparent propagated" : ""}: no false links`, async () => {
      const proxy = await startNodeProxy(backend.port, forward ? ["--forward"] : [], selectEnv);
      apps.push(proxy);
      await t.waitTraced(proxy.pid);
      const before = { ...t.agent.stats().link };
      const n = 60;
      const load = await run(process.execPath, [helperPath("load.mjs"), String(proxy.port), String(n), "20", ...(forward ? ["--traceparent"] : [])]);
      expect(load.stdout.trim(), load.stderr).toBe(`done ${n}`);
      expect(await t.waitFor(() => t.spansOf(proxy.pid).length === 2 * n, 20_000)).toBe(true);
      const spans = t.spansOf(proxy.pid);
      const entries = entriesById(spans);
      const exits = spans.filter((s) => s.kind === "exit");
      expect(entries.size).toBe(n);
      expect(new Set(spans.map((s) => s.tid)).size).toBe(1); // one thread does all socket I/O
      const linked = exits.filter((x) => x.thread_trace_id !== undefined);
      for (const x of linked) {
        const entry = entries.get(x.thread_trace_id!);
        expect(entry, "linked to an entry of this process").toBeDefined();
        expect(x.http_route, "linked to the request it was made for").toBe(`/b${entry!.http_route}`);
      }
      const stats = t.agent.stats().link;
      const ambiguous = stats.unlinked_ambiguous - before.unlinked_ambiguous;
      const byContext = stats.linked_app_context - before.linked_app_context;
      console.log(`node proxy${forward ? " (traceparent)" : ""}: ${linked.length}/${n} exits linked, ${byContext} by app context, ${ambiguous} left unlinked as ambiguous`);
      expect(linked.length + ambiguous + (stats.unlinked_app_mismatch - before.unlinked_app_mismatch)).toBe(n);
      if (forward) expect(linked.length).toBe(n); // the app context names the entry every time
      else expect(ambiguous).toBeGreaterThan(0); // under concurrency the thread alone cannot tell
    });
  }
});
