import { describe, expect, it } from "vitest";
import { ProcessDirectory } from "../../../agent/src/process/directory.ts";
import type { ProcFacts } from "../../../agent/src/process/proc.ts";
import { decide, serviceName, type SelectionRules } from "../../../agent/src/process/select.ts";

const NONE: SelectionRules = { trace_all_process: false, trace_name_list: [], trace_name_blacklist: [], trace_env_list: [], trace_env_blacklist: [] };
const proc = (pid: number, comm: string, env: Record<string, string> = {}, exe = comm): ProcFacts => ({ pid, comm, exe, env: new Map(Object.entries(env)) });
const SELF = 1;

describe("selection rules", () => {
  it("the agent itself is never traced, even by name or with trace_all_process", () => {
    expect(decide(proc(SELF, "node"), { ...NONE, trace_all_process: true, trace_name_list: ["node"] }, SELF)).toEqual({ traced: false, rule: "self" });
  });

  it("name list: exact task name or executable basename", () => {
    const rules = { ...NONE, trace_name_list: ["python3"] };
    expect(decide(proc(2, "python3", {}, "python3.11"), rules, SELF).traced).toBe(true);
    expect(decide(proc(3, "gunicorn", {}, "python3"), rules, SELF).traced).toBe(true);
    expect(decide(proc(4, "python", {}, "python"), rules, SELF).traced).toBe(false);
  });

  it("the name list wins over the env blacklist; the blacklists beat the env list", () => {
    const rules = { ...NONE, trace_name_list: ["api"], trace_env_list: ["TRACE_ME"], trace_env_blacklist: ["NO_TRACE"], trace_name_blacklist: ["sshd"] };
    expect(decide(proc(2, "api", { NO_TRACE: "1" }), rules, SELF)).toEqual({ traced: true, rule: "name_list" });
    expect(decide(proc(3, "worker", { TRACE_ME: "", NO_TRACE: "1" }), rules, SELF)).toEqual({ traced: false, rule: "env_blacklist" });
    expect(decide(proc(4, "sshd", { TRACE_ME: "1" }), rules, SELF)).toEqual({ traced: false, rule: "name_blacklist" });
    expect(decide(proc(5, "worker", { TRACE_ME: "" }), rules, SELF)).toEqual({ traced: true, rule: "env_list" }); // present, even empty
    expect(decide(proc(6, "worker", {}), rules, SELF)).toEqual({ traced: false, rule: "none" });
  });

  it("trace_all_process traces the rest, and the env blacklist is live (dead in the seed)", () => {
    const rules = { ...NONE, trace_all_process: true, trace_env_blacklist: ["NO_TRACE"] };
    expect(decide(proc(2, "anything"), rules, SELF).traced).toBe(true);
    expect(decide(proc(3, "anything", { NO_TRACE: "x" }), rules, SELF)).toEqual({ traced: false, rule: "env_blacklist" });
  });

  it("service: DK_BPFTRACE_SERVICE, DD_SERVICE, OTEL_SERVICE_NAME, then the process name", () => {
    expect(serviceName(proc(2, "app", { OTEL_SERVICE_NAME: "o", DD_SERVICE: "d", DK_BPFTRACE_SERVICE: "k" }))).toBe("k");
    expect(serviceName(proc(2, "app", { OTEL_SERVICE_NAME: "o", DD_SERVICE: "d" }))).toBe("d");
    expect(serviceName(proc(2, "app", { OTEL_SERVICE_NAME: "o", DK_BPFTRACE_SERVICE: " " }))).toBe("o");
    expect(serviceName(proc(2, "app"))).toBe("app");
  });
});

describe("live directory", () => {
  function setup(rules: SelectionRules, facts: Record<number, ProcFacts>) {
    const calls: string[] = [];
    const control = {
      addPid: (pid: number, flags = 1) => void calls.push(`add ${pid} ${flags}`),
      removePid: (pid: number) => void calls.push(`remove ${pid}`),
      setTraceAll: (on: boolean) => void calls.push(`all ${on}`),
    };
    const dir = new ProcessDirectory(rules, control, { TRACE: 1, INHERIT: 2, EXCLUDE: 4 }, {
      selfPid: SELF,
      readFacts: (pid) => facts[pid],
      listPids: () => Object.keys(facts).map(Number),
    });
    return { dir, calls, facts };
  }

  it("scans at start: excludes itself, traces selected pids and their children", () => {
    const { dir, calls } = setup({ ...NONE, trace_name_list: ["api"] }, { [SELF]: proc(SELF, "node"), 20: proc(20, "api", { DD_SERVICE: "payments" }), 21: proc(21, "bash") });
    dir.start();
    expect(calls).toEqual([`add ${SELF} 4`, `remove ${SELF}`, "add 20 3", "remove 21"]);
    expect(dir.lookup(20, "api")).toEqual({ processName: "api", service: "payments", traced: true });
    expect(dir.isTraced(21)).toBe(false);
  });

  it("exec: a new process is selected; a traced one that exec'd into something else is dropped", () => {
    const { dir, calls, facts } = setup({ ...NONE, trace_env_list: ["TRACE_ME"] }, {});
    facts[30] = proc(30, "curl", { TRACE_ME: "1" });
    dir.onExec(30);
    expect(calls).toEqual(["add 30 3"]);
    dir.onFork(31, 30);
    expect(dir.isTraced(31)).toBe(true);
    facts[31] = proc(31, "sh", {});
    dir.onExec(31);
    expect(calls.at(-1)).toBe("remove 31");
    expect(dir.isTraced(31)).toBe(false);
  });

  it("trace_all_process: switches the kernel to trace-all and excludes blacklisted pids", () => {
    const { dir, calls, facts } = setup({ ...NONE, trace_all_process: true, trace_name_blacklist: ["sshd"] }, { 40: proc(40, "sshd"), 41: proc(41, "api") });
    dir.start();
    expect(calls).toEqual([`add ${SELF} 4`, "all true", "add 40 4"]);
    facts[40] = proc(40, "api");
    dir.onExec(40); // sshd exec'd into api: no longer excluded
    expect(calls.at(-1)).toBe("remove 40");
  });

  it("keeps an exited process for a grace period (its sockets close after its exit record)", () => {
    const { dir, facts } = setup({ ...NONE, trace_name_list: ["api"] }, { 50: proc(50, "api", { OTEL_SERVICE_NAME: "svc" }) });
    dir.start();
    dir.onExit(50, 1000);
    delete facts[50]; // gone from /proc
    dir.sweep(5000);
    expect(dir.lookup(50, "api").service).toBe("svc");
    dir.sweep(20_000);
    expect(dir.lookup(50, "gone").service).toBe("gone"); // unreadable now: the record's comm
  });

  it("a pid first seen in data is read from /proc then (and filtered if not selected)", () => {
    const { dir } = setup({ ...NONE, trace_name_list: ["api"] }, { 60: proc(60, "other") });
    expect(dir.lookup(60, "other").traced).toBe(false);
  });
});
