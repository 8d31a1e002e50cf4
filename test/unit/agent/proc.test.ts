// readProcFacts on real processes: a live one, and one that has exited but is still in /proc (a
// zombie: its parent has not reaped it), whose empty environment must not be taken as its own.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { readProcFacts } from "../../../agent/src/process/proc.ts";

/** `sh` starts a short sleep in the background and execs a long one, which never reaps it: the
 * short one (ending after the exec, so that sh cannot reap it first) stays a zombie. */
async function sleepWithZombieChild(): Promise<{ zombie: number; sleep: number; stop: () => void }> {
  const child = spawn("sh", ["-c", "sleep 0.3 & echo $!; exec sleep 5"], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, ESPAN_PROC_TEST: "1" },
  });
  const zombie: number = await new Promise((resolve) => child.stdout!.once("data", (d) => resolve(Number(String(d).trim()))));
  return { zombie, sleep: child.pid!, stop: () => child.kill() };
}

/** The process's state letter from /proc/<pid>/stat ("Z": exited, not reaped). */
const state = (pid: number) => readFileSync(`/proc/${pid}/stat`, "latin1").split(") ")[1][0];

async function until(check: () => boolean): Promise<boolean> {
  for (let i = 0; i < 300; i++) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

describe("readProcFacts", () => {
  it("reads a live process's name, executable and environment", async () => {
    const p = await sleepWithZombieChild();
    try {
      expect(await until(() => readProcFacts(p.sleep)?.comm === "sleep")).toBe(true);
      const facts = readProcFacts(p.sleep);
      expect(facts).toMatchObject({ pid: p.sleep, comm: "sleep", exe: "sleep" });
      expect(facts!.env.get("ESPAN_PROC_TEST")).toBe("1");
    } finally {
      p.stop();
    }
  });

  it("knows nothing of a process that has exited, even while it is still in /proc", async () => {
    const p = await sleepWithZombieChild();
    try {
      expect(await until(() => state(p.zombie) === "Z")).toBe(true);
      expect(readProcFacts(p.zombie)).toBeUndefined();
    } finally {
      p.stop();
    }
  });
});
