// IPv6 on ::1, and IPv4 clients of a dual-stack IPv6 server (v4-mapped addresses).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { byConnection, peerOf, startCapture, summarize, type Session } from "./helpers/capture.ts";
import { curlGated, finishCurl } from "./helpers/curl.ts";
import { startPythonServer, type Server } from "./helpers/servers.ts";

describe("IPv6", () => {
  let session: Session;
  const servers: Server[] = [];

  beforeAll(() => {
    session = startCapture({ strategy: "auto" });
  });

  afterAll(async () => {
    session?.close();
    for (const s of servers) await s.stop();
  });

  async function exchange(server: Server, urls: string[], curlArgs: string[] = []) {
    servers.push(server);
    session.cap.addPid(server.pid);
    const curl = curlGated(urls, curlArgs);
    session.cap.addPid(curl.pid);
    await finishCurl(curl, urls.length);
    await session.waitFor(
      (rs) => rs.filter((r) => r.kind === "data" && (r.pid === curl.pid || r.pid === server.pid)).length >= 4 * urls.length,
    );
    const client = [...byConnection(session.records, curl.pid).values()][0];
    const srv = peerOf(client, byConnection(session.records, server.pid));
    expect(srv, summarize(session.records)).toBeDefined();
    return { client, srv: srv! };
  }

  it("captures ::1 with matching seqs (HTTP/1.0 server)", async () => {
    const server = await startPythonServer({ host: "::1" });
    const { client, srv } = await exchange(server, [server.url("/a.txt")], ["--http1.0"]);
    expect(client.map((r) => r.dir)).toEqual(["send", "recv"]);
    expect(srv.map((r) => r.seq)).toEqual(client.map((r) => r.seq));
    for (const r of [...client, ...srv]) {
      expect(r.family).toBe(6);
      expect(r.localIp).toBe("::1");
      expect(r.remoteIp).toBe("::1");
    }
    expect(client[0].payload.toString("latin1")).toMatch(/^GET \/a\.txt /);
  });

  it("captures IPv4 clients of a dual-stack server as v4-mapped", async () => {
    const server = await startPythonServer({ host: "::", keepAlive: true, dualStack: true });
    const url = (p: string) => `http://127.0.0.1:${server.port}${p}`;
    const { client, srv } = await exchange(server, [url("/x"), url("/y")]);
    expect(srv.map((r) => r.seq)).toEqual(client.map((r) => r.seq));
    expect(client.every((r) => r.family === 4 && r.localIp === "127.0.0.1")).toBe(true);
    for (const r of srv) {
      expect(r.family).toBe(6);
      expect(r.localIp).toBe("::ffff:127.0.0.1");
      expect(r.remoteIp).toBe("::ffff:127.0.0.1");
      expect(r.role).toBe("server");
    }
  });
});
