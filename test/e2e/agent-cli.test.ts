// The espan-agent command (bin/espan-agent.js → dist/espan-agent.js, built by
// `npm run build:cli`) as a subprocess: NDJSON spans on a piped stdout, the status line, a
// clean stop on SIGINT, and clear errors with exit code 1.
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateESpan, type ESpan } from "../../contract/espan.ts";
import { SELECT_VAR, selectEnv } from "./helpers/agent.ts";
import { curlGated, finishCurl } from "./helpers/curl.ts";
import { sleep, waitUntil } from "./helpers/process.ts";
import { startPythonServer, type Server } from "./helpers/servers.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "espan-agent.js");
const BUNDLE = join(ROOT, "dist", "espan-agent.js");

/** The newest modification time under a directory (the bundle must be newer than its sources). */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

describe("espan-agent CLI", () => {
  beforeAll(() => {
    let built = 0;
    try {
      built = statSync(BUNDLE).mtimeMs;
    } catch {
      // missing
    }
    if (built < newest(join(ROOT, "agent", "src"))) {
      throw new Error("dist/espan-agent.js is missing or older than agent/src: run `npm run build:cli` first");
    }
  });

  describe("running", () => {
    let server: Server;
    let stdout = "";
    let stderr = "";
    let code: number | null = null;
    let curlPid = 0;
    let child: ReturnType<typeof spawn> | undefined;
    let nodeArgs: string[] = [];

    beforeAll(async () => {
      // Run as npx runs it: the file itself, by its #! line (env -S node with the agent's V8 flags).
      child = spawn(BIN, ["--stdout", "--trace-env-list", SELECT_VAR, "--status-interval", "500ms", "--host-name", "cli-host"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
      child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const exited = new Promise<void>((r) => child!.once("exit", (c) => ((code = c), r())));
      expect(await waitUntil(() => stderr.includes("capturing"), 15_000), stderr).toBe(true);
      nodeArgs = readFileSync(`/proc/${child.pid}/cmdline`, "utf8").split("\0");
      // Started after the agent: selected from its exec record before it even listens.
      server = await startPythonServer({ host: "127.0.0.1", keepAlive: true, env: selectEnv });
      await sleep(300);
      const curl = curlGated([server.url("/cli/1"), server.url("/cli/2")]);
      curlPid = curl.pid;
      await finishCurl(curl, 2);
      await waitUntil(() => stdout.split("\n").filter((l) => l.includes('"/cli/')).length >= 2, 10_000);
      await waitUntil(() => /spans\/s/.test(stderr), 3000);
      child.kill("SIGINT");
      await Promise.race([exited, sleep(10_000)]);
    });

    afterAll(async () => {
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await server?.stop();
    });

    it("runs under node with the agent's V8 flags from its #! line", () => {
      expect(nodeArgs[0]).toMatch(/(^|\/)node$/);
      expect(nodeArgs).toContain("--min-semi-space-size=16");
      expect(nodeArgs).toContain(BIN);
    });

    it("prints NDJSON eSpans when stdout is a pipe", () => {
      const spans = stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as ESpan);
      const mine = spans.filter((s) => s.pid === server.pid);
      expect(mine.map((s) => s.http_route)).toEqual(["/cli/1", "/cli/2"]);
      for (const s of mine) {
        expect(validateESpan(s).ok).toBe(true);
        expect(s).toMatchObject({ kind: "entry", host: "cli-host", process_name: "python3", l7_proto: "http" });
      }
      expect(spans.some((s) => s.pid === curlPid)).toBe(false); // curl was not selected
    });

    it("prints a status line on stderr and stops cleanly on SIGINT", () => {
      expect(stderr).toMatch(/espan-agent: [0-9.]+ spans\/s, spans \d+/);
      expect(stderr).toMatch(/unlinked_ambiguous \d+/);
      expect(stderr).toMatch(/SIGINT: flushing and detaching/);
      expect(stderr).toMatch(/espan-agent: stopped: /);
      expect(code).toBe(0);
    });
  });

  it("a configuration error names the key and exits 1", () => {
    const r = spawnSync(process.execPath, [BIN, "--trace-all-process", "--capture-bytes", "99999"], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("capture_bytes (from --capture-bytes): must be ≤ 4096, got 99999");
  });

  it("says clearly when it cannot load BPF programs (not root) and exits 1", () => {
    const r = spawnSync("runuser", ["-u", "nobody", "--", process.execPath, BIN, "--trace-all-process", "--status-interval", "0"], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot start the capture: check root: EPERM: not root/);
  });
});
