// The testbed leaves nothing behind, and a crashed run does not break the next: the demo
// (`npm run demo`) is killed with SIGKILL mid-traffic, leaving its namespaces, agents, services
// and ingest; the next testbed removes them first, runs, and on stop() removes everything it
// created. Also: the hosts can reach nothing outside 10.77.0.0/24.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startTestbed, ROOT, type Testbed } from "../../testbed/testbed.ts";
import { HOST_NAMES, HOSTS, NET } from "../../testbed/topology.ts";
import { defaultPlan } from "../../testbed/workload.ts";

/** Pids of processes started by a testbed (ESPAN_TESTBED_RUN in their environment), by run. */
function marked(): Map<number, string> {
  const out = new Map<number, string>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const env = readFileSync(`/proc/${d}/environ`, "latin1").split("\0");
      const v = env.find((kv) => kv.startsWith("ESPAN_TESTBED_RUN="));
      if (v) out.set(Number(d), v.slice("ESPAN_TESTBED_RUN=".length));
    } catch {
      /* gone */
    }
  }
  return out;
}

const netnsList = () => execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
const ours = (list: string) => list.split("\n").filter((l) => l.startsWith("estb-")).map((l) => l.split(" ")[0]).sort();
const linkExists = (name: string) => {
  try {
    execFileSync("ip", ["link", "show", name], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};

describe("testbed: cleanup", () => {
  let tb: Testbed | undefined;
  afterAll(async () => {
    await tb?.stop();
  });

  it("recovers from a run killed mid-traffic, keeps traffic inside its network, and removes everything on stop", async () => {
    const runDirs = () => readdirSync(tmpdir()).filter((d) => d.startsWith("espan-testbed-") && !existsSync(join(tmpdir(), d, "KEEP")));
    // 1. A demo, killed with SIGKILL once its traffic has started.
    const demo = spawn(process.execPath, [join(ROOT, "scripts", "demo.mjs"), "--keep", "60s"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    demo.stdout!.on("data", (d) => (out += d));
    demo.stderr!.on("data", (d) => (out += d));
    const deadline = Date.now() + 120_000;
    while (!out.includes("demo: traffic:")) {
      if (demo.exitCode !== null || Date.now() > deadline) throw new Error(`the demo did not start its traffic:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1000));
    demo.kill("SIGKILL");
    await new Promise((r) => demo.once("exit", r));

    const left = marked();
    expect(left.size, "the killed run left its processes").toBeGreaterThan(5);
    expect(ours(netnsList())).toEqual(["estb-h1", "estb-h2", "estb-h3", "estb-sw"]);
    expect(existsSync("/run/espan-testbed.lock")).toBe(true); // held by a dead process
    const leftDirs = runDirs();
    expect(leftDirs.length).toBeGreaterThan(0);

    // 2. The next testbed removes the leftovers first, and works.
    tb = await startTestbed({ lockWaitMs: 5000 });
    const now = marked();
    for (const pid of left.keys()) expect(now.has(pid), `leftover pid ${pid} still running`).toBe(false);
    expect(new Set(now.values())).toEqual(new Set([tb.runId]));
    expect(runDirs()).toEqual([tb.runDir.slice(tmpdir().length + 1)]);
    const phase = { ...defaultPlan()[0], ids: ["again-0", "again-1", "again-2"] };
    const results = await tb.runPhase(phase);
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);

    // Nothing routes out of the hosts: their only route is the testbed's /24, and the VIP is a
    // DNAT rule inside each of them. The root namespace has one veth on that /24, nothing else.
    for (const h of HOST_NAMES) {
      const routes = execFileSync("ip", ["-n", HOSTS[h].netns, "-4", "route", "show"], { encoding: "utf8" }).trim().split("\n");
      expect(routes).toEqual([`10.77.0.0/24 dev eth0 proto kernel scope link src ${HOSTS[h].addr}`]);
      const nat = execFileSync("ip", ["netns", "exec", HOSTS[h].netns, "iptables", "-w", "-t", "nat", "-S", "OUTPUT"], { encoding: "utf8" });
      expect(nat).toContain(`-A OUTPUT -d ${NET.vip}/32 -p tcp -m tcp --dport ${NET.vipPort} -j DNAT --to-destination 10.77.0.12:8080`);
    }
    expect(execFileSync("ip", ["-4", "route", "show", "dev", NET.rootIf], { encoding: "utf8" }).trim()).toBe(
      `10.77.0.0/24 proto kernel scope link src ${NET.rootAddr}`,
    );

    // 3. stop(): no namespace, link, process, lock or file of the run is left.
    const runDir = tb.runDir;
    await tb.stop();
    tb = undefined;
    expect(ours(netnsList())).toEqual([]);
    expect(linkExists(NET.rootIf)).toBe(false);
    expect(marked().size).toBe(0);
    expect(existsSync("/run/espan-testbed.lock")).toBe(false);
    expect(existsSync(runDir)).toBe(false);
  }, 240_000);
});
