// What /proc says about a process: its name, executable and environment.
//
// /proc/<pid>/environ is the environment the process was exec'd with (later setenv calls are
// not seen): that is what the seed read too, and what an operator sets in a unit file or a
// container spec. A process may exit between the event and the read: undefined then.
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
  let exe = "";
  try {
    const target = readlinkSync(`${procRoot}/${pid}/exe`).replace(/ \(deleted\)$/, "");
    exe = target.slice(target.lastIndexOf("/") + 1);
  } catch {
    // kernel thread, or no permission: the name is enough
  }
  const env = new Map<string, string>();
  try {
    const raw = readFileSync(`${procRoot}/${pid}/environ`, "latin1");
    for (const kv of raw.split("\0")) {
      const eq = kv.indexOf("=");
      if (eq > 0) env.set(kv.slice(0, eq), kv.slice(eq + 1));
    }
  } catch {
    // gone, or a kernel thread: no environment
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
