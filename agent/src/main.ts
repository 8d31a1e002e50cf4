// espan-agent: the CLI. Reads the configuration, starts the pipeline (pipeline.ts), prints a
// status line now and then, and stops cleanly on SIGINT/SIGTERM: drain the ring buffer, detach,
// export what has a response, ship what it can, spool the rest.
import { parseCommandLine } from "./cli.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { startAgent, type Agent } from "./pipeline.ts";
import { createStatusLine } from "./status.ts";

const log = (line: string) => process.stderr.write(`espan-agent: ${line}\n`);

/** The addon's errors carry the failed step and errno name (agent/native/index.d.ts). */
function describeStartError(e: unknown): string {
  const err = e as Error & { code?: string; step?: string };
  if (err.code === "ESPAN_NATIVE_LOAD") return err.message;
  if (err.step) {
    // The addon's message names its step already ("check root: EPERM: not root ...").
    const msg = err.message.startsWith(err.step) ? err.message : `${err.step}: ${err.message}`;
    return `cannot start the capture: ${msg}`;
  }
  return err.stack ?? String(e);
}

function main(): void {
  const cli = parseCommandLine(process.argv);
  let loaded;
  try {
    loaded = loadConfig({ ...cli.load, env: process.env });
  } catch (e) {
    if (e instanceof ConfigError) {
      log(e.message);
      process.exit(1);
    }
    throw e;
  }
  const { config, warnings } = loaded;
  for (const w of warnings) log(`warning: ${w}`);

  let agent: Agent;
  try {
    agent = startAgent({ config, log });
  } catch (e) {
    log(describeStartError(e));
    process.exit(1);
  }
  const s = agent.stats();
  log(
    `capturing (seq strategy ${s.capture.strategy}${s.capture.strategyFallback ? ` because tp_btf did not load: ${s.capture.strategyFallback}` : ""}, ${s.processes.processes_traced} processes selected now` +
      `${config.trace_all_process ? ", trace_all_process" : ""}); ` +
      (config.trace_server ? `shipping to ${config.trace_server}` : "printing spans on stdout"),
  );

  const statusLine = createStatusLine();
  const status = config.status_interval > 0 ? setInterval(() => log(statusLine(agent.stats())), config.status_interval) : undefined;

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      log(`${signal} again: exiting now`);
      process.exit(130);
    }
    stopping = true;
    if (status) clearInterval(status);
    log(`${signal}: flushing and detaching`);
    try {
      await agent.stop();
      log(`stopped: ${statusLine(agent.stats())}`);
      process.exit(0);
    } catch (e) {
      log(`error while stopping: ${(e as Error).message}`);
      process.exit(1);
    }
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main();
