// The real agent pipeline (agent/src/pipeline.ts) in the test process, collecting its spans.
// The test process is the agent, so it is never traced: test clients that must be traced run
// as child processes. Processes are selected by an environment variable unique to this run
// (trace_env_list), so the agent traces only what the test started, not whatever else runs on
// the machine; the test gives it to the processes it wants traced (`selectEnv`).
import type { ESpan } from "../../../contract/espan.ts";
import { loadConfig, type AgentConfig, type ConfigKey } from "../../../agent/src/config.ts";
import { startAgent, type Agent, type AgentOptions } from "../../../agent/src/pipeline.ts";
import { waitUntil } from "./process.ts";

export const SELECT_VAR = `ESPAN_E2E_TRACE_${process.pid}`;
export const selectEnv: Record<string, string> = { [SELECT_VAR]: "1" };

export interface TestAgent {
  agent: Agent;
  config: AgentConfig;
  spans: ESpan[];
  logs: string[];
  /** Waits until the agent has selected this pid (exec records are handled asynchronously). */
  waitTraced(pid: number, timeoutMs?: number): Promise<void>;
  /** Drains the ring buffer (and the idle sweep) until check() holds or the time is up. */
  waitFor(check: (spans: ESpan[]) => boolean, timeoutMs?: number): Promise<boolean>;
  spansOf(pid: number): ESpan[];
  stop(): Promise<void>;
}

export function startTestAgent(
  overrides: Partial<Record<ConfigKey, unknown>> = {},
  extra: Omit<AgentOptions, "config" | "sinks" | "log"> = {},
): TestAgent {
  const { config } = loadConfig({
    flags: {
      host_name: "e2e-host",
      trace_env_list: [SELECT_VAR],
      spool_dir: "",
      status_interval: 0,
      idle_flush: 1000,
      ...overrides,
    },
  });
  const spans: ESpan[] = [];
  const logs: string[] = [];
  const agent = startAgent({ config, sinks: [{ write: (s) => spans.push(s) }], log: (l) => logs.push(l), ...extra });
  let stopped = false;
  return {
    agent,
    config,
    spans,
    logs,
    async waitTraced(pid, timeoutMs = 5000) {
      const ok = await waitUntil(() => {
        agent.drain();
        return agent.directory.isTraced(pid);
      }, timeoutMs);
      if (!ok) throw new Error(`the agent did not select pid ${pid} within ${timeoutMs} ms`);
    },
    waitFor: (check, timeoutMs = 8000) =>
      waitUntil(() => {
        agent.drain();
        return check(spans);
      }, timeoutMs),
    spansOf: (pid) => spans.filter((s) => s.pid === pid),
    async stop() {
      if (stopped) return;
      stopped = true;
      await agent.stop(2000);
    },
  };
}
