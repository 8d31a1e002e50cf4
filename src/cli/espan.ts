/** The `espan` command line. */
import { Command, InvalidArgumentError, Option } from "commander";
import { runLink } from "./link.ts";

function rate(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError("must be a number ≥ 0 (1 keeps every trace)");
  return n;
}
function bool(v: string): boolean {
  if (v === "true") return true;
  if (v === "false") return false;
  throw new InvalidArgumentError('must be "true" or "false"');
}
function count(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new InvalidArgumentError("must be an integer from 1 to 1024");
  return n;
}

const program = new Command("espan").description("espan: zero-code distributed tracing from eBPF").showHelpAfterError();

program
  .command("link")
  .description("link eSpans (NDJSON or {\"spans\": [...]}) into traces, offline")
  .option("--sampling-rate <rate>", "share of traces kept; app sampled flags win", rate, 0.1)
  .option("--use-app-trace-id <bool>", "adopt the application's trace id (W3C, Datadog, B3)", bool, true)
  .addOption(new Option("--format <format>", "output format").choices(["ndjson", "otlp-json"]).default("ndjson"))
  .option("--in <file>", "read eSpans from a file (default: stdin)")
  .option("--out <file>", "write to a file (default: stdout)")
  .option("--skip-invalid", "report invalid spans on stderr and link the rest", false)
  .option("--shards <n>", "link with n in-process shards (the output is the same)", count, 1)
  .action(async (opts) => {
    process.exitCode = await runLink(opts);
  });

await program.parseAsync();
