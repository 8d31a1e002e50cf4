// Process selection in the kernel: only pids in the filter map (or every process with
// traceAll, minus excluded pids and the agent itself) produce records.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { layout } from "../../agent/native/index.js";
import { dataOf, startCapture, type Session } from "./helpers/capture.ts";
import { curlGated, finishCurl } from "./helpers/curl.ts";
import { sleep } from "./helpers/process.ts";
import { startPythonServer, type Server } from "./helpers/servers.ts";

describe("pid filter", () => {
  let session: Session;
  let server: Server;
  const { TRACE, EXCLUDE } = layout().pidFlags;

  beforeAll(async () => {
    session = startCapture({ strategy: "auto" });
    server = await startPythonServer({ host: "127.0.0.1", keepAlive: true });
  });

  afterAll(async () => {
    session?.close();
    await server?.stop();
  });

  it("gives no records for processes that are not traced", async () => {
    const curl = curlGated([server.url("/untraced"), server.url("/untraced2")]);
    await finishCurl(curl, 2);
    await sleep(100);
    session.cap.flush();
    // exec/exit records are sent for every process (the agent selects new ones from them).
    const socketRecords = session.records.filter((r) => r.kind === "data" || r.kind === "close");
    expect(socketRecords.filter((r) => r.pid === curl.pid || r.pid === server.pid)).toEqual([]);
  });

  it("stops tracing a removed pid", async () => {
    session.cap.addPid(server.pid);
    session.cap.removePid(server.pid);
    const curl = curlGated([server.url("/removed")]);
    session.cap.addPid(curl.pid);
    await finishCurl(curl, 1);
    await session.waitFor((rs) => dataOf(rs, curl.pid).length === 2);
    expect(dataOf(session.records, curl.pid).map((r) => r.dir)).toEqual(["send", "recv"]);
    expect(dataOf(session.records, server.pid)).toEqual([]);
    session.cap.removePid(curl.pid); // gone already: the kernel dropped it at exit; no error
  });

  it("traces every process with traceAll, except excluded pids and itself", async () => {
    session.cap.addPid(server.pid, TRACE | EXCLUDE);
    session.cap.setTraceAll(true);
    try {
      const curl = curlGated([server.url("/all")]);
      await finishCurl(curl, 1);
      const res = await fetch(server.url("/self")); // from the agent's own process
      expect(res.status).toBe(200);
      await res.text();
      await session.waitFor((rs) => dataOf(rs, curl.pid).length === 2);
      expect(dataOf(session.records, curl.pid).map((r) => r.dir)).toEqual(["send", "recv"]);
      await sleep(100);
      session.cap.flush();
      expect(dataOf(session.records, server.pid)).toEqual([]);
      expect(dataOf(session.records, process.pid)).toEqual([]);
    } finally {
      session.cap.setTraceAll(false);
    }
  });
});
