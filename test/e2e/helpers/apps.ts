// Test applications for the agent's kernel tests, each a child process that prints "PORT <n>"
// once listening: a threaded Python proxy, a Node proxy, and clients (see the scripts).
import { spawn, type ChildProcess } from "node:child_process";
import { helperPath, waitForLine } from "./servers.ts";

export interface App {
  pid: number;
  port: number;
  child: ChildProcess;
  url(path: string): string;
  stop(): Promise<void>;
}

export async function startApp(cmd: string, args: string[], env: Record<string, string> = {}): Promise<App> {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  if (child.pid === undefined) throw new Error(`spawn ${cmd} failed`);
  const m = await waitForLine(child, /PORT (\d+)/, 15_000);
  child.stdout?.resume();
  child.stderr?.resume();
  const port = Number(m[1]);
  return {
    pid: child.pid,
    port,
    child,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** proxy.py: ThreadingHTTPServer; each GET calls the backend on the handler thread. */
export const startPyProxy = (backendPort: number, flags: string[] = [], env: Record<string, string> = {}) =>
  startApp("python3", ["-u", helperPath("proxy.py"), String(backendPort), ...flags], env);

/** node_proxy.mjs: one Node event loop serving requests and calling the backend. */
export const startNodeProxy = (backendPort: number, flags: string[] = [], env: Record<string, string> = {}) =>
  startApp(process.execPath, [helperPath("node_proxy.mjs"), String(backendPort), ...flags], env);
