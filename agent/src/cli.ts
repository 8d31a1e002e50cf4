// The espan-agent command line → config sources (config.ts merges and validates them).
// Flags are passed to loadConfig as raw strings: one place parses and bounds-checks every
// value, whichever source it came from, and names the key in its errors.
import { Command } from "commander";
import type { ConfigKey, LoadOptions } from "./config.ts";

export interface CommandLine {
  load: LoadOptions;
}

/** Flag (commander's camelCase attribute) → config key. */
const FLAG_KEYS: Record<string, ConfigKey> = {
  traceServer: "trace_server",
  token: "token",
  hostName: "host_name",
  traceAllProcess: "trace_all_process",
  traceNameList: "trace_name_list",
  traceEnvList: "trace_env_list",
  traceNameBlacklist: "trace_name_blacklist",
  traceEnvBlacklist: "trace_env_blacklist",
  captureBytes: "capture_bytes",
  spoolDir: "spool_dir",
  batchSize: "batch_size",
  flushInterval: "flush_interval",
  idleFlush: "idle_flush",
  statusInterval: "status_interval",
  stdout: "stdout",
};

export function buildProgram(): Command {
  return new Command("espan-agent")
    .description(
      "espan host agent: captures one eSpan per request/response of the selected processes (eBPF) and ships them " +
        "to the espan ingest. Needs root and a kernel with BTF.",
    )
    .option("--trace-server <url>", "ingest URL or host:port; spans are POSTed to <url>/v1/bpftracing (none: stdout only)")
    .option("--token <token>", "bearer token for the ingest")
    .option("--config <file>", "TOML file with an [[inputs.ebpf]] table (the seed's shape)")
    .option("--trace-all-process", "trace every process except blacklisted ones")
    .option("--no-trace-all-process", "do not trace every process (overrides the file and the environment)")
    .option("--trace-name-list <names>", "comma-separated process names to trace")
    .option("--trace-env-list <vars>", "trace processes whose environment has one of these variables (names, comma-separated)")
    .option("--trace-name-blacklist <names>", "comma-separated process names never traced")
    .option("--trace-env-blacklist <vars>", "never trace processes with one of these environment variables")
    .option("--host-name <name>", "host name on every span (default: os.hostname())")
    .option("--capture-bytes <n>", "payload bytes captured per message start, 0..4096 (default 4096)")
    .option("--spool-dir <dir>", "disk buffer for unsent batches, replayed at start (\"\" = none)")
    .option("--batch-size <n>", "spans per POST (default 10000)")
    .option("--flush-interval <duration>", "a partial batch leaves after this long (default 1s)")
    .option("--idle-flush <duration>", "export a response whose end is unseen after its connection was idle this long (default 1s)")
    .option("--status-interval <duration>", "status line on stderr every this long; 0 = never (default 10s)")
    .option("--stdout", "print spans on stdout: a summary line on a terminal, NDJSON when piped")
    .addHelpText(
      "after",
      "\nEvery option can also come from the TOML file or from ENV_INPUT_EBPF_<OPTION> (e.g. ENV_INPUT_EBPF_TRACE_SERVER);\n" +
        "flags win over the environment, which wins over the file.",
    )
    .showHelpAfterError();
}

/** Parses argv (as process.argv: node, script, args...). Exits on --help or a usage error. */
export function parseCommandLine(argv: string[], program: Command = buildProgram()): CommandLine {
  program.parse(argv);
  const opts = program.opts<Record<string, unknown>>();
  const flags: Partial<Record<ConfigKey, unknown>> = {};
  for (const [attr, key] of Object.entries(FLAG_KEYS)) {
    if (opts[attr] !== undefined) flags[key] = opts[attr];
  }
  return { load: { flags, configPath: opts.config as string | undefined } };
}
