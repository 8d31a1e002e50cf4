// What /proc says about a process: its name, executable and environment.
//
// /proc/<pid>/environ is the environment the process was exec'd with (later setenv calls are
// not seen): that is what the seed read too, and what an operator sets in a unit file or a
// container spec. A process may exit between the event and the read: undefined then, also
// when it is still in /proc as a zombie (readProcFacts says why).
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export interface ProcFacts {
  pid: number;
  /** /proc/<pid>/comm: the kernel's task name, at most 15 bytes. */
  comm: string;
  /** Basename of /proc/<pid>/exe ("" when unreadable: kernel threads, gone). */
  exe: string;
  env: Map<string, string>;
}

export function readProcFacts(pid: number, procRoot = "/proc"): ProcFacts | undefined {
  let comm: string;
  try {
    comm = readFileSync(`${procRoot}/${pid}/comm`, "utf8").replace(/\n$/, "");
  } catch {
    return undefined;
  }
  const env = new Map<string, string>();
  let raw = "";
  try {
    raw = readFileSync(`${procRoot}/${pid}/environ`, "latin1");
  } catch {
    // no permission: no environment
  }
  for (const kv of raw.split("\0")) {
    const eq = kv.indexOf("=");
    if (eq > 0) env.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  let exe = "";
  try {
    const target = readlinkSync(`${procRoot}/${pid}/exe`).replace(/ \(deleted\)$/, "");
    exe = target.slice(target.lastIndexOf("/") + 1);
  } catch {
    // Read after the environment on purpose: a process that has exited (a zombie, still in
    // /proc) has no memory left, so its environ reads as empty, and no exe. Judged on that
    // empty environment, a short-lived traced process (curl) whose exec record the agent
    // reached only after it exited was deselected and its spans dropped (seen in the
    // agent-ingest e2e test on a loaded machine). Nothing is known about it: say so. A
    // kernel thread (no memory either) is never selected by its environment anyway.
    if (raw.length === 0) return undefined;
  }
  return { pid, comm, exe, env };
}

/** Every process id in /proc now. */
export function listPids(procRoot = "/proc"): number[] {
  const out: number[] = [];
  for (const name of readdirSync(procRoot)) {
    if (/^[0-9]+$/.test(name)) out.push(Number(name));
  }
  return out;
}
