// Capture size is a runtime knob up to 4096 bytes: a JWT or a long URL pushes traceparent
// past byte 256 (reference/bpf.md section 5), so request starts need 1-4 KB.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataOf, startCapture, type Session } from "./helpers/capture.ts";
import { curlGated, finishCurl } from "./helpers/curl.ts";
import { startPythonServer, type Server } from "./helpers/servers.ts";

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const PAD = "p".repeat(2900);

describe("capture size", () => {
  let session: Session;
  let server: Server;

  beforeAll(async () => {
    session = startCapture({ strategy: "auto", captureBytes: 4096 });
    server = await startPythonServer({ host: "127.0.0.1", keepAlive: true });
    session.cap.addPid(server.pid);
  });

  afterAll(async () => {
    session?.close();
    await server?.stop();
  });

  async function request(): Promise<{ client: ReturnType<typeof dataOf>; server: ReturnType<typeof dataOf> }> {
    const curl = curlGated([server.url("/big")], ["-H", `X-Pad: ${PAD}`, "-H", `traceparent: ${TRACEPARENT}`]);
    session.cap.addPid(curl.pid);
    await finishCurl(curl, 1);
    const mine = (rs: typeof session.records) =>
      dataOf(rs, server.pid).filter((r) => r.remotePort === dataOf(rs, curl.pid)[0]?.localPort);
    await session.waitFor((rs) => dataOf(rs, curl.pid).length === 2 && mine(rs).length === 2);
    return { client: dataOf(session.records, curl.pid), server: mine(session.records) };
  }

  it("captures a header at byte ~3000 with 4096 bytes", async () => {
    const { client, server: srv } = await request();
    for (const req of [client[0], srv[0]]) {
      const text = req.payload.toString("latin1");
      const at = text.indexOf(`traceparent: ${TRACEPARENT}`);
      expect(at).toBeGreaterThan(2900);
      expect(req.payload.length).toBe(req.bytes); // the whole request: < 4096 bytes
      expect(req.truncated).toBe(false);
    }
    expect(srv[0].seq).toBe(client[0].seq);
  });

  it("cuts at the runtime size and says so", async () => {
    expect(session.cap.setCaptureBytes(256)).toBe(256);
    try {
      const { client } = await request();
      expect(client[0].payload.length).toBe(256);
      expect(client[0].bytes).toBeGreaterThan(2900);
      expect(client[0].truncated).toBe(true);
      expect(client[0].payload.toString("latin1")).toMatch(/^GET \/big HTTP\/1\.1\r\n/);
    } finally {
      session.cap.setCaptureBytes(4096);
    }
    expect(session.cap.setCaptureBytes(100_000)).toBe(4096); // clamped to the kernel's buffer
  });
});
