// HTTP/1.0 on loopback: python3 -m http.server (closes after each response) and curl, both
// traced. The client's and the server's seqs of each message start must be equal: that is the
// net-group key of the linker (DESIGN.md, "Linking semantics").
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { byConnection, closesOf, peerOf, startCapture, summarize, type Session } from "./helpers/capture.ts";
import { curlGated, finishCurl } from "./helpers/curl.ts";
import { startPythonServer, type Server } from "./helpers/servers.ts";

describe("HTTP/1.0, server closes (tp_btf)", () => {
  let session: Session;
  let server: Server;
  const clients: number[] = [];

  beforeAll(async () => {
    session = startCapture({ strategy: "tp_btf", captureBytes: 512 });
    server = await startPythonServer({ host: "127.0.0.1" });
    session.cap.addPid(server.pid);
    for (const path of ["/a.txt", "/b.txt", "/a.txt"]) {
      const curl = curlGated([server.url(path)], ["--http1.0"]);
      session.cap.addPid(curl.pid);
      clients.push(curl.pid);
      await finishCurl(curl, 1);
    }
    // Each curl: request + response on the client, the same on the server, and both closes.
    await session.waitFor(
      (rs) => clients.every((pid) => closesOf(rs, pid).length === 1) && closesOf(rs, server.pid).length === 3,
    );
  });

  afterAll(async () => {
    session?.close();
    await server?.stop();
  });

  it("gives one record per direction flip on each side", () => {
    const serverConns = byConnection(session.records, server.pid);
    expect(serverConns.size).toBe(3);
    for (const pid of clients) {
      const conns = byConnection(session.records, pid);
      expect(conns.size, summarize(session.records)).toBe(1);
      const client = [...conns.values()][0];
      expect(client.map((r) => r.dir)).toEqual(["send", "recv"]);
      expect(client.every((r) => r.role === "client")).toBe(true);
      const peer = peerOf(client, serverConns);
      expect(peer, summarize(session.records)).toBeDefined();
      expect(peer!.map((r) => r.dir)).toEqual(["recv", "send"]);
      expect(peer!.every((r) => r.role === "server")).toBe(true);
    }
  });

  it("matches the request seq and the response seq across client and server", () => {
    const serverConns = byConnection(session.records, server.pid);
    for (const pid of clients) {
      const client = [...byConnection(session.records, pid).values()][0];
      const peer = peerOf(client, serverConns)!;
      expect(peer[0].seq, "request start").toBe(client[0].seq);
      expect(peer[1].seq, "response start").toBe(client[1].seq);
      expect(peer[0].bytes).toBe(client[0].bytes); // one request, sent and read whole
    }
  });

  it("captures the payload and the tuple", () => {
    for (const pid of clients) {
      const [req, resp] = [...byConnection(session.records, pid).values()][0];
      expect(req.payload.toString("latin1")).toMatch(/^GET \/[ab]\.txt HTTP\/1\.0\r\n/);
      expect(resp.payload.toString("latin1")).toMatch(/^HTTP\/1\.0 200 /);
      expect(req.family).toBe(4);
      expect(req.localIp).toBe("127.0.0.1");
      expect(req.remoteIp).toBe("127.0.0.1");
      expect(req.remotePort).toBe(server.port);
      expect(req.comm).toBe("curl");
      expect(req.payload.length).toBe(Math.min(req.bytes, 512));
    }
  });

  it("sends a close record with the ports and the last message", () => {
    for (const pid of clients) {
      const [close] = closesOf(session.records, pid);
      const [req, resp] = [...byConnection(session.records, pid).values()][0];
      expect(close.connId).toBe(req.connId);
      expect(close.localPort).toBe(req.localPort); // the kernel's port is 0 by then
      expect(close.remotePort).toBe(server.port);
      expect(close.dir).toBe("recv");
      expect(close.prevFirstNs).toBe(resp.tsNs);
      expect(close.prevBytes).toBeGreaterThanOrEqual(resp.bytes);
    }
  });
});
