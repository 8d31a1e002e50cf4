// Loopback HTTP servers for the kernel tests: python3's http.server (HTTP/1.0, closes after
// each response) and ka_server.py (HTTP/1.1 keep-alive). Each binds port 0, so the kernel picks
// a free port, and reports it once listening: no probe connection is needed before tracing.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** Absolute path of a script in this folder. */
export const helperPath = (name: string) => join(here, name);

export interface Server {
  pid: number;
  host: string;
  port: number;
  /** http://host:port/path with brackets around IPv6 hosts. */
  url(path: string): string;
  stop(): Promise<void>;
}

export interface ServerOptions {
  /** Loopback address to bind: "127.0.0.1", "::1", or "::" (with dualStack). */
  host?: string;
  /** HTTP/1.1 keep-alive (ka_server.py) instead of http.server's HTTP/1.0. */
  keepAlive?: boolean;
  /** IPv6 socket that also accepts IPv4 as v4-mapped (keepAlive only). */
  dualStack?: boolean;
  /** Extra environment variables for the server process. */
  env?: Record<string, string>;
}

/** A directory with a.txt and b.txt for http.server to serve. */
export function makeDocroot(): string {
  const dir = mkdtempSync(join(tmpdir(), "espan-e2e-"));
  writeFileSync(join(dir, "a.txt"), "alpha\n".repeat(20));
  writeFileSync(join(dir, "b.txt"), "bravo\n".repeat(40));
  return dir;
}

export function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => done(new Error(`no ${pattern} within ${timeoutMs} ms; output: ${out}`)), timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = out.match(pattern);
      if (m) done(null, m);
    };
    const onExit = (code: number | null) => done(new Error(`server exited (${code}) before listening: ${out}`));
    function done(err: Error | null, m?: RegExpMatchArray) {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      if (err) reject(err);
      else resolve(m!);
    }
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
  });
}

export async function startPythonServer(opts: ServerOptions = {}): Promise<Server> {
  const host = opts.host ?? "127.0.0.1";
  const args = opts.keepAlive
    ? ["-u", join(here, "ka_server.py"), host, "0", ...(opts.dualStack ? ["--dual-stack"] : [])]
    : ["-u", "-m", "http.server", "--bind", host, "--directory", makeDocroot(), "0"];
  const child = spawn("python3", args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
  if (child.pid === undefined) throw new Error("spawn python3 failed");
  // http.server: "Serving HTTP on 127.0.0.1 port 41234 (...)"; ka_server.py: "PORT 41234".
  const m = await waitForLine(child, /(?:PORT|port) (\d+)/, 15_000);
  const port = Number(m[1]);
  child.stdout?.resume();
  child.stderr?.resume();
  const urlHost = host.includes(":") ? `[${host === "::" ? "::1" : host}]` : host;
  return {
    pid: child.pid,
    host,
    port,
    url: (path) => `http://${urlHost}:${port}${path}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** Resolves once something accepts on host:port (each try is a real connection: call it
 * before the process is traced). */
export async function waitForPort(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port });
      s.once("connect", () => { s.destroy(); resolve(true); });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
