// Process selection on the real kernel: by name and by environment variable, blacklists, the
// processes running at start (/proc scan) and those started later (exec records), service
// names from DK_BPFTRACE_SERVICE / DD_SERVICE / OTEL_SERVICE_NAME, and never the agent itself.
import { mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SELECT_VAR, startTestAgent, type TestAgent } from "./helpers/agent.ts";
import { startApp, type App } from "./helpers/apps.ts";
import { curlGated, finishCurl } from "./helpers/curl.ts";
import { sleep } from "./helpers/process.ts";
import { helperPath } from "./helpers/servers.ts";

// A python3 whose task name is unique to this run: exec through a symlink named so.
const NAME = `espan-e2e-${process.pid % 100000}`;
const BLOCK_VAR = `ESPAN_E2E_BLOCK_${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), "espan-sel-"));
const namedPython = join(dir, NAME);
symlinkSync("/usr/bin/python3", namedPython);

const kaServer = (python: string, env: Record<string, string>) => startApp(python, ["-u", helperPath("ka_server.py"), "127.0.0.1", "0"], env);

describe("agent: process selection and service names", () => {
  let t: TestAgent;
  const servers: Record<string, App> = {};

  beforeAll(async () => {
    // Running before the agent starts: found by the /proc scan.
    servers.byName = await kaServer(namedPython, {});
    servers.byEnvDd = await kaServer("python3", { [SELECT_VAR]: "1", DD_SERVICE: "svc-dd" });
    servers.unselected = await kaServer("python3", {});
    t = startTestAgent({ trace_name_list: [NAME], trace_env_list: [SELECT_VAR], trace_env_blacklist: [BLOCK_VAR] });
    // Started after: selected from their exec records.
    servers.byEnvOtel = await kaServer("python3", { [SELECT_VAR]: "1", OTEL_SERVICE_NAME: "svc-otel" });
    servers.blacklisted = await kaServer("python3", { [SELECT_VAR]: "1", [BLOCK_VAR]: "1" });
    servers.nameWins = await kaServer(namedPython, { [BLOCK_VAR]: "1", DK_BPFTRACE_SERVICE: "svc-dk", DD_SERVICE: "not-this", OTEL_SERVICE_NAME: "nor-this" });
    for (const k of ["byName", "byEnvDd", "byEnvOtel", "nameWins"]) await t.waitTraced(servers[k].pid);
    const all = Object.values(servers);
    const curl = curlGated(all.map((s) => s.url("/sel")));
    await finishCurl(curl, all.length);
    // The agent's own request to a traced server.
    const res = await fetch(servers.byEnvOtel.url("/from-the-agent"));
    expect(res.status).toBe(200);
    await res.text();
    // undici keeps the agent's connection open: that entry ends by the idle flush (1 s here).
    await t.waitFor(
      () =>
        ["byName", "byEnvDd", "byEnvOtel", "nameWins"].every((k) => t.spansOf(servers[k].pid).length >= 1) &&
        t.spansOf(servers.byEnvOtel.pid).some((s) => s.http_route === "/from-the-agent"),
    );
    await sleep(300);
    t.agent.drain();
  });

  afterAll(async () => {
    await t?.stop();
    for (const s of Object.values(servers)) await s.stop();
  });

  it("traces by exact name (at start and later) and by environment variable (at start and later)", () => {
    for (const k of ["byName", "byEnvDd", "byEnvOtel", "nameWins"]) {
      const entries = t.spansOf(servers[k].pid).filter((s) => s.http_route === "/sel");
      expect(entries, k).toHaveLength(1);
      expect(entries[0].kind).toBe("entry");
    }
    expect(t.spansOf(servers.byName.pid)[0].process_name).toBe(NAME);
  });

  it("does not trace unselected or blacklisted processes (the env blacklist is live)", () => {
    expect(t.spansOf(servers.unselected.pid)).toEqual([]);
    expect(t.spansOf(servers.blacklisted.pid)).toEqual([]);
    expect(t.agent.directory.isTraced(servers.blacklisted.pid)).toBe(false);
  });

  it("names services from DK_BPFTRACE_SERVICE, DD_SERVICE, OTEL_SERVICE_NAME, else the process name", () => {
    const service = (k: string) => t.spansOf(servers[k].pid)[0].service;
    expect(service("nameWins")).toBe("svc-dk");
    expect(service("byEnvDd")).toBe("svc-dd");
    expect(service("byEnvOtel")).toBe("svc-otel");
    expect(service("byName")).toBe(NAME);
  });

  it("never traces the agent itself", () => {
    expect(t.spans.filter((s) => s.pid === process.pid)).toEqual([]);
    // Its request was seen from the server side only.
    expect(t.spansOf(servers.byEnvOtel.pid).some((s) => s.http_route === "/from-the-agent")).toBe(true);
  });
});
