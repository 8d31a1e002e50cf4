// Both seq strategies attached at once, on the same traffic: tp_btf/sock_*_length (kernel
// >= 6.3) and the fd -> sock lookup at sys_enter (older kernels). They must agree on every
// message start, including HTTP/1.0 responses whose read consumed the FIN.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CaptureRecord } from "../../agent/src/record.ts";
import { startCapture, summarize, type Session } from "./helpers/capture.ts";
import { curlGated, finishCurl } from "./helpers/curl.ts";
import { spawnGated } from "./helpers/process.ts";
import { helperPath, startPythonServer, type Server } from "./helpers/servers.ts";

const key = (r: CaptureRecord) => `${r.pid} ${r.role} ${r.dir} ${r.localPort}->${r.remotePort} seq=${r.seq} bytes=${r.bytes}`;

describe("tp_btf and fd_lookup on the same traffic", () => {
  let btf: Session;
  let fd: Session;
  let http10: Server;
  let keepAlive: Server;
  const pids: number[] = [];
  let slowPid = 0;
  let iovPid = 0;

  beforeAll(async () => {
    btf = startCapture({ strategy: "tp_btf" });
    fd = startCapture({ strategy: "fd_lookup" });
    http10 = await startPythonServer({ host: "127.0.0.1" });
    keepAlive = await startPythonServer({ host: "127.0.0.1", keepAlive: true });
    pids.push(http10.pid, keepAlive.pid);
    const runs = [
      { urls: [keepAlive.url("/a"), keepAlive.url("/b"), keepAlive.url("/pad/5000")], args: [] as string[] },
      { urls: [http10.url("/a.txt")], args: ["--http1.0"] },
      { urls: [http10.url("/b.txt")], args: ["--http1.0"] },
    ];
    for (const s of [btf, fd]) for (const p of pids) s.cap.addPid(p);
    for (const run of runs) {
      const curl = curlGated(run.urls, run.args);
      pids.push(curl.pid);
      btf.cap.addPid(curl.pid);
      fd.cap.addPid(curl.pid);
      await finishCurl(curl, run.urls.length);
    }
    /** A Python client from helpers/, traced by both sessions from its first syscall. */
    const runTraced = async (script: string, args: string[]) => {
      const g = spawnGated("python3", [helperPath(script), ...args]);
      pids.push(g.pid);
      btf.cap.addPid(g.pid);
      fd.cap.addPid(g.pid);
      g.release();
      return { pid: g.pid, out: await g.exited };
    };
    // sendmsg/recvmsg, then writev/readv: the payload is the first iovec's.
    const iov = await runTraced("iov_client.py", ["127.0.0.1", String(keepAlive.port)]);
    iovPid = iov.pid;
    if (iov.out.stdout !== "HTTP/1.1 200 OK\nHTTP/1.1 200 OK\n") throw new Error(`iov_client: ${iov.out.stdout} ${iov.out.stderr}`);
    // One late, whole read (after a MSG_PEEK): it consumes the FIN with the response.
    const slow = await runTraced("slow_client.py", ["127.0.0.1", String(http10.port), "/a.txt", "300"]);
    slowPid = slow.pid;
    if (!slow.out.stdout.startsWith("HTTP/1.0 200")) throw new Error(`slow_client: ${slow.out.stdout} ${slow.out.stderr}`);
    const expected = 4 * 3 + 4 + 4 + 4 * 2 + 4; // data records over both sides
    const enough = (rs: CaptureRecord[]) => rs.filter((r) => r.kind === "data" && pids.includes(r.pid)).length >= expected;
    await btf.waitFor(enough);
    await fd.waitFor(enough);
  });

  afterAll(async () => {
    btf?.close();
    fd?.close();
    await http10?.stop();
    await keepAlive?.stop();
  });

  it("reports which strategy is loaded", () => {
    expect(btf.cap.strategy()).toBe("tp_btf");
    expect(fd.cap.strategy()).toBe("fd_lookup");
  });

  it("gives identical message starts and seqs", () => {
    const starts = (s: Session) => s.records.filter((r) => r.kind === "data" && pids.includes(r.pid)).map(key).sort();
    const a = starts(btf);
    const b = starts(fd);
    expect(a.length).toBe(32);
    expect(b, `tp_btf:\n${a.join("\n")}\nfd_lookup:\n${b.join("\n")}`).toEqual(a);
  });

  it("gives identical payloads and marks the fd_lookup records", () => {
    const FD = (r: CaptureRecord) => (r.flags & 0x10) !== 0;
    const dataA = btf.records.filter((r) => r.kind === "data" && pids.includes(r.pid));
    const dataB = fd.records.filter((r) => r.kind === "data" && pids.includes(r.pid));
    expect(dataA.some(FD)).toBe(false);
    expect(dataB.every(FD)).toBe(true);
    const payloads = (rs: CaptureRecord[]) => rs.map((r) => `${key(r)} ${r.payload.toString("latin1")}`).sort();
    expect(payloads(dataB)).toEqual(payloads(dataA));
  });

  it("takes a vectored call's payload from its first iovec", () => {
    const IOV = (r: CaptureRecord) => (r.flags & 0x20) !== 0;
    for (const s of [btf, fd]) {
      const client = s.records.filter((r) => r.kind === "data" && r.pid === iovPid);
      expect(client.map((r) => r.dir), summarize(client)).toEqual(["send", "recv", "send", "recv"]);
      expect(client.every(IOV), summarize(client)).toBe(true);
      expect(client[0].payload.toString("latin1")).toBe("GET /iov/sendmsg HTTP/1.1\r\n");
      expect(client[2].payload.toString("latin1")).toBe("GET /iov/writev HTTP/1.1\r\n");
      for (const resp of [client[1], client[3]]) expect(resp.payload.toString("latin1")).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    }
  });

  it("skips MSG_PEEK and corrects the seq of a read that consumed the FIN", () => {
    for (const s of [btf, fd]) {
      const client = s.records.filter((r) => r.kind === "data" && r.pid === slowPid);
      expect(client.map((r) => r.dir), summarize(client)).toEqual(["send", "recv"]);
      const resp = client[1];
      // Only tp_btf computes copied_seq - ret after the read, so only it sees the FIN.
      expect(resp.fin, summarize([resp])).toBe(s === btf);
      expect(resp.payload.toString("latin1")).toMatch(/^HTTP\/1\.0 200 /);
      const serverResp = s.records.find(
        (r) => r.kind === "data" && r.pid === http10.pid && r.dir === "send" && r.remotePort === resp.localPort,
      );
      expect(serverResp?.seq).toBe(resp.seq);
    }
  });
});
