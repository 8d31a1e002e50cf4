// HTTP/1.1 keep-alive: several requests on one connection (curl with several URLs against a
// ThreadingHTTPServer). Each request and each response is one record on each side, with a
// distinct seq, equal on both sides.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { byConnection, peerOf, startCapture, summarize, type Session } from "./helpers/capture.ts";
import { curlGated, finishCurl } from "./helpers/curl.ts";
import { parseRequests, parseResponses } from "../../agent/src/assemble/http1.ts";
import { startPythonServer, type Server } from "./helpers/servers.ts";

const PATHS = ["/one", "/two", "/three", "/pad/3000", "/five"];

describe("HTTP/1.1 keep-alive (auto strategy)", () => {
  let session: Session;
  let server: Server;
  let clientPid = 0;

  beforeAll(async () => {
    session = startCapture({ strategy: "auto", captureBytes: 256 });
    server = await startPythonServer({ host: "127.0.0.1", keepAlive: true });
    session.cap.addPid(server.pid);
    const curl = curlGated(PATHS.map((p) => server.url(p)));
    clientPid = curl.pid;
    session.cap.addPid(curl.pid);
    await finishCurl(curl, PATHS.length);
    await session.waitFor(
      (rs) => rs.filter((r) => r.kind === "data" && (r.pid === clientPid || r.pid === server.pid)).length >= 4 * PATHS.length,
    );
  });

  afterAll(async () => {
    session?.close();
    await server?.stop();
  });

  it("uses one connection and alternates one record per direction flip", () => {
    const conns = byConnection(session.records, clientPid);
    expect(conns.size, summarize(session.records)).toBe(1);
    const client = [...conns.values()][0];
    expect(client.map((r) => r.dir)).toEqual(PATHS.flatMap(() => ["send", "recv"]));
    const server_ = peerOf(client, byConnection(session.records, server.pid));
    expect(server_, summarize(session.records)).toBeDefined();
    expect(server_!.map((r) => r.dir)).toEqual(PATHS.flatMap(() => ["recv", "send"]));
  });

  it("gives every request and response the same seq on both sides", () => {
    const client = [...byConnection(session.records, clientPid).values()][0];
    const srv = peerOf(client, byConnection(session.records, server.pid))!;
    expect(srv.map((r) => r.seq)).toEqual(client.map((r) => r.seq));
    PATHS.forEach((path, i) => {
      expect(client[2 * i].payload.toString("latin1")).toMatch(new RegExp(`^GET ${path} HTTP/1\\.1\\r\\n`));
      expect(srv[2 * i].payload.toString("latin1")).toMatch(new RegExp(`^GET ${path} HTTP/1\\.1\\r\\n`));
      expect(srv[2 * i + 1].payload.toString("latin1")).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    });
  });

  it("scans each message start's HTTP head while draining: what the JS parser finds in the payload", () => {
    const client = [...byConnection(session.records, clientPid).values()][0];
    const srv = peerOf(client, byConnection(session.records, server.pid))!;
    for (const r of [...client, ...srv]) {
      const scan = session.scans.get(r);
      expect(scan, summarize([r])).toBeDefined();
      const request = (r.dir === "send") === (r.pid === clientPid);
      if (request) {
        const want = parseRequests(r.payload);
        expect(want.length).toBe(1);
        expect(scan!.requests).toEqual(want.map((m) => ({ ...m, head: { ...m.head, headers: new Map() } })));
      } else {
        const want = parseResponses(r.payload, []);
        expect(want.messages.length).toBe(1);
        expect(scan!.responses!.messages.map((m) => [m.offset, m.bytes, m.head.status])).toEqual(want.messages.map((m) => [m.offset, m.bytes, m.head.status]));
        expect(scan!.responses!.nextOffset).toBe(want.nextOffset);
      }
    }
  });

  it("gives keep-alive requests distinct seqs that advance by the bytes of each message", () => {
    const client = [...byConnection(session.records, clientPid).values()][0];
    const reqs = client.filter((r) => r.dir === "send");
    const resps = client.filter((r) => r.dir === "recv");
    expect(new Set(reqs.map((r) => r.seq)).size).toBe(PATHS.length);
    expect(new Set(resps.map((r) => r.seq)).size).toBe(PATHS.length);
    for (let i = 1; i < PATHS.length; i++) {
      // A request is one send here; a flip record carries the byte count of the message it ended.
      expect((reqs[i].seq - reqs[i - 1].seq) >>> 0).toBe(reqs[i - 1].bytes);
      expect((resps[i].seq - resps[i - 1].seq) >>> 0).toBe(reqs[i].prevBytes);
    }
    // The 3000-byte body arrived in more than the first read or not; either way the response
    // that follows starts right after all of it.
    expect(reqs[4].prevBytes).toBeGreaterThan(3000);
  });
});
