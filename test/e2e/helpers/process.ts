// Child processes for the kernel tests. A traced client must be in the pid filter before its
// first syscall, so it starts "gated": `sh -c 'read _; exec CMD'` waits on stdin, the test adds
// the pid (exec keeps it), then release() lets it run.
import { spawn, type ChildProcess } from "node:child_process";

export interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Gated {
  pid: number;
  child: ChildProcess;
  /** Let the command run. */
  release(): void;
  exited: Promise<Exited>;
}

function collect(child: ChildProcess): Promise<Exited> {
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export function spawnGated(cmd: string, args: string[], env?: Record<string, string>): Gated {
  const child = spawn("sh", ["-c", 'read _ && exec "$0" "$@"', cmd, ...args], {
    stdio: ["pipe", "pipe", "pipe"],
    env: env ? { ...process.env, ...env } : undefined,
  });
  if (child.pid === undefined) throw new Error(`spawn ${cmd} failed`);
  return {
    pid: child.pid,
    child,
    release: () => child.stdin!.end("\n"),
    exited: collect(child),
  };
}

/** Runs a command to completion (not gated). */
export function run(cmd: string, args: string[]): Promise<Exited> {
  return collect(spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] }));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls check() until it returns true or the time is up; returns the last result. */
export async function waitUntil(check: () => boolean, timeoutMs = 5000, stepMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() > end) return false;
    await sleep(stepMs);
  }
}
