// Which processes are traced, and under which service name: the seed's options
// (reference/datakit.md §2.4, §7), evaluated per process in this order:
//
//   1. the agent itself: never (the kernel side excludes its pid too);
//   2. its name is in trace_name_list: traced, whatever its environment (the name list wins
//      over the env lists, as in the seed);
//   3. its name is in trace_name_blacklist: not traced;
//   4. its environment has a variable named in trace_env_blacklist: not traced;
//   5. its environment has a variable named in trace_env_list: traced;
//   6. trace_all_process: traced; otherwise not.
//
// Unlike the seed, every list is evaluated: its built-in name blacklist made
// trace_env_blacklist dead (a switch where only the first non-empty rule ran), and with both
// allow-lists set the env list was ignored; here the two allow-lists add up.
//
// A name matches the kernel's task name (/proc/<pid>/comm, ≤15 bytes) or the executable's
// basename, exactly.
import type { ProcFacts } from "./proc.ts";

export interface SelectionRules {
  trace_all_process: boolean;
  trace_name_list: readonly string[];
  trace_name_blacklist: readonly string[];
  trace_env_list: readonly string[];
  trace_env_blacklist: readonly string[];
}

export type Verdict = { traced: boolean; rule: "self" | "name_list" | "name_blacklist" | "env_blacklist" | "env_list" | "all" | "none" };

/** The service name: DK_BPFTRACE_SERVICE, DD_SERVICE, OTEL_SERVICE_NAME, else the process name. */
export const SERVICE_ENV = ["DK_BPFTRACE_SERVICE", "DD_SERVICE", "OTEL_SERVICE_NAME"] as const;

export function serviceName(p: ProcFacts): string {
  for (const key of SERVICE_ENV) {
    const v = p.env.get(key)?.trim();
    if (v) return v;
  }
  return p.comm || p.exe || `pid-${p.pid}`;
}

const named = (p: ProcFacts, list: readonly string[]) => list.some((n) => n === p.comm || (p.exe !== "" && n === p.exe));
const hasEnv = (p: ProcFacts, list: readonly string[]) => list.some((k) => p.env.has(k));

export function decide(p: ProcFacts, rules: SelectionRules, selfPid: number): Verdict {
  if (p.pid === selfPid) return { traced: false, rule: "self" };
  if (named(p, rules.trace_name_list)) return { traced: true, rule: "name_list" };
  if (named(p, rules.trace_name_blacklist)) return { traced: false, rule: "name_blacklist" };
  if (hasEnv(p, rules.trace_env_blacklist)) return { traced: false, rule: "env_blacklist" };
  if (hasEnv(p, rules.trace_env_list)) return { traced: true, rule: "env_list" };
  if (rules.trace_all_process) return { traced: true, rule: "all" };
  return { traced: false, rule: "none" };
}
