// Process events: exec and exit of every process (so the agent can select new ones live), and
// children that inherit tracing from a parent added with PID_INHERIT.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { layout } from "../../agent/native/index.js";
import { dataOf, startCapture, type Session } from "./helpers/capture.ts";
import { spawnGated } from "./helpers/process.ts";
import { startPythonServer, type Server } from "./helpers/servers.ts";

describe("process events", () => {
  let session: Session;
  let server: Server;

  beforeAll(async () => {
    session = startCapture({ strategy: "auto" });
    server = await startPythonServer({ host: "127.0.0.1", keepAlive: true });
  });

  afterAll(async () => {
    session?.close();
    await server?.stop();
  });

  it("reports exec with the path and parent, and exit with the code", async () => {
    const sh = spawnGated("sh", ["-c", "exit 3"]);
    sh.release();
    expect((await sh.exited).code).toBe(3);
    await session.waitFor((rs) => rs.some((x) => x.kind === "exit" && x.pid === sh.pid));
    const exit = session.records.find((x) => x.kind === "exit" && x.pid === sh.pid)!;
    expect(exit.aux).toBe(3 << 8); // the raw wait status
    const execs = session.records.filter((x) => x.kind === "exec" && x.pid === sh.pid);
    expect(execs.length).toBeGreaterThan(0); // the gate's sh, then its exec of the command
    for (const exec of execs) {
      expect(exec.payload.toString()).toMatch(/\/sh$/);
      expect(exec.aux).toBe(process.pid); // forked by this Node process
      expect(exec.tsNs).toBeLessThan(exit.tsNs);
    }
  });

  it("traces the children of a process added with INHERIT", async () => {
    const { TRACE, INHERIT } = layout().pidFlags;
    // sh forks curl (the `; exit 0` keeps sh from exec'ing it in place).
    const sh = spawnGated("sh", ["-c", `curl -sS -o /dev/null ${server.url("/child")}; exit 0`]);
    session.cap.addPid(sh.pid, TRACE | INHERIT);
    sh.release();
    expect((await sh.exited).code).toBe(0);
    await session.waitFor((rs) => rs.some((x) => x.kind === "fork" && x.aux === sh.pid && dataOf(rs, x.pid).length === 2));
    const fork = session.records.find((x) => x.kind === "fork" && x.aux === sh.pid)!;
    expect(fork.pid).not.toBe(sh.pid);
    const data = dataOf(session.records, fork.pid);
    expect(data.map((x) => x.dir)).toEqual(["send", "recv"]);
    expect(data[0].comm).toBe("curl");
    expect(data[0].payload.toString("latin1")).toMatch(/^GET \/child /);
  });
});
