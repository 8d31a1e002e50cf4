// The agent's stages, wired one way (as the OpenTelemetry Collector's receiver → processor →
// exporter; each is handed the next and never calls back up):
//
//   capture (native ring buffer → decoded records; exec/fork/exit → process directory)
//     → assemble (records → exchanges → eSpans)
//     → link (thread_trace_id)
//     → ship (batches → spool → POST) and/or stdout
//
// startAgent() is what main.ts runs, and what a test runs in-process to drive the real
// pipeline on the real kernel.
import { open, layout, tuneMalloc, type Capture, type CaptureStats, type OpenOptions } from "../native/index.js";
import { Assembler, type AssemblerStats } from "./assemble/assembler.ts";
import { createMonoClock } from "./clock.ts";
import { ingestUrl, type AgentConfig } from "./config.ts";
import { ThreadLinker, type LinkStats, type SpanSink } from "./link/thread.ts";
import { ProcessDirectory, type DirectoryStats } from "./process/directory.ts";
import { createDecoder, type CaptureRecord } from "./record.ts";
import { createSender, type Sender } from "./ship/sender.ts";
import { Shipper, type ShipperStats } from "./ship/shipper.ts";
import { Spool, type SpoolStats } from "./ship/spool.ts";
import { createStdoutSink, teeSink } from "./ship/stdout.ts";

export interface AgentOptions {
  config: AgentConfig;
  /** More places for finished spans (a test collects them here). */
  sinks?: SpanSink[];
  /** Diagnostics (stderr in the CLI). */
  log?: (line: string) => void;
  /** Native capture options beyond the config (the seq strategy). */
  capture?: Pick<OpenOptions, "strategy" | "ringBytes" | "wakeupBytes">;
  /** Replaces the HTTP sender (tests). */
  sender?: Sender;
  /** Drain period of the ring buffer, ms (default DRAIN_MS). */
  drainMs?: number;
}

export interface AgentStats {
  capture: Pick<CaptureStats, "strategy" | "strategyFallback" | "records" | "drops" | "ringUsed" | "ringSize">;
  decode_errors: number;
  /** Exceptions caught in assembly or the sweep (bugs): logged, counted, survived. */
  pipeline_errors: number;
  assemble: AssemblerStats;
  link: LinkStats;
  processes: DirectoryStats;
  ship?: ShipperStats & SpoolStats;
}

export interface Agent {
  readonly capture: Capture;
  readonly directory: ProcessDirectory;
  stats(): AgentStats;
  /** Drains the ring buffer and runs the idle sweep now (tests; the timers do it otherwise). */
  drain(): void;
  /** Flushes, detaches, ships what it can within `deadlineMs`, spools the rest. */
  stop(deadlineMs?: number): Promise<void>;
}

const SWEEP_MS = 1000;
/**
 * The ring buffer is drained when the kernel wakes the agent (wakeupBytes pending, 1 MiB by
 * default: a busy host; and at once for an exec or fork record, so that a new process is
 * selected before it talks) and at least this often. Socket records are held back by the
 * addon until 1 MiB or 250 ms of them have come (agent/native/src/addon.cc), so a shorter
 * period would only wake the process for nothing: a wake-up of this Node process costs ~150 µs
 * of CPU on our VMs, and the 10 ms period this had was 1.5% of a core on its own
 * (bpf/capture.bpf.c, PROCESS_WAKEUP). Spans reach the shipper up to ~250 ms later than they
 * did with 100 ms; its batches are cut by size or flush_interval after that.
 */
const DRAIN_MS = 250;

export function startAgent(opts: AgentOptions): Agent {
  const { config } = opts;
  const log = opts.log ?? ((line: string) => process.stderr.write(`espan-agent: ${line}\n`));

  // ship (last stage first: each stage is handed the next)
  const sinks: SpanSink[] = [...(opts.sinks ?? [])];
  if (config.stdout || (config.trace_server === "" && opts.sinks === undefined)) sinks.push(createStdoutSink());
  let shipper: Shipper | undefined;
  let spool: Spool | undefined;
  if (config.trace_server !== "") {
    spool = new Spool({
      maxMemorySpans: config.queue_max_spans,
      dir: config.spool_dir,
      maxDiskBytes: config.spool_max_bytes,
      log,
    });
    spool.replay();
    if (spool.stats.replayed > 0) log(`spool: replaying ${spool.stats.replayed} spans from ${config.spool_dir}`);
    const sender = opts.sender ?? createSender({ url: ingestUrl(config), token: config.token || undefined });
    shipper = new Shipper(sender, spool, { batchSize: config.batch_size, flushIntervalMs: config.flush_interval, log });
    sinks.push(shipper);
  }

  // link
  const output = teeSink(sinks);
  const linker = new ThreadLinker(output);

  // capture: open (checks root, BTF, tracefs; loads), then the process directory can set pids
  const cap = open({ captureBytes: config.capture_bytes, strategy: "auto", ...opts.capture });
  // Memory the agent frees is reused, not faulted in again per batch (the addon says why).
  tuneMalloc();
  const lay = layout();
  const directory = new ProcessDirectory(config, cap, lay.pidFlags);
  const clock = createMonoClock();

  // assemble
  const assembler = new Assembler(linker, {
    host: config.host_name,
    processes: directory,
    toUnixNs: clock.toUnixNs,
    idleFlushNs: BigInt(config.idle_flush) * 1_000_000n,
  });

  const decoder = createDecoder(lay);
  let decodeErrors = 0;
  let pipelineErrors = 0;
  // An exception must not unwind into the addon's callback (it would end the process): a bug
  // is logged (the first few) and counted, and the agent goes on.
  const guarded = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (e) {
      if (pipelineErrors++ < 10) log(`${what}: ${(e as Error).stack ?? e}`);
    }
  };
  // In record order: a process's data before its exec belongs to its old program. The record
  // is the decoder's reused cursor (valid during the call only): nothing here keeps it. A bug
  // met on one record costs that record, not the rest of its batch.
  const route = (r: CaptureRecord) => {
    try {
      const kind = r.kind;
      if (kind === "data" || kind === "close") assembler.record(r);
      else if (kind === "exec") directory.onExec(r.pid);
      else if (kind === "fork") directory.onFork(r.pid, r.aux);
      else if (kind === "exit") directory.onExit(r.pid);
    } catch (e) {
      if (pipelineErrors++ < 10) log(`assemble: ${(e as Error).stack ?? e}`);
    }
  };

  try {
    cap.attach();
    cap.start((arena, used) => {
      try {
        decoder.forEachRecord(arena, used, route);
      } catch (e) {
        // A malformed frame: the records before it were routed, the rest of the batch is lost.
        decodeErrors++;
        log(`decode: ${(e as Error).message}`);
      }
    }, opts.drainMs ?? DRAIN_MS);
    // After attach: a process exec'd during the scan is seen by the scan or by its exec record.
    directory.start();
  } catch (e) {
    cap.close();
    throw e;
  }
  shipper?.start();
  const strategy = cap.strategy();
  const strategyFallback = cap.stats().strategyFallback;

  const sweep = () =>
    guarded("sweep", () => {
      assembler.sweep(clock.nowMono());
      directory.sweep();
    });
  // Records not handed over yet (in the ring, or held by the addon for up to 250 ms) would make
  // their connections look idle: the sweep sees them first.
  const sweeper = setInterval(() => {
    guarded("drain", () => void cap.flush());
    sweep();
  }, SWEEP_MS);
  sweeper.unref();

  let stopped = false;
  return {
    capture: cap,
    directory,
    stats() {
      const c = stopped ? undefined : cap.stats();
      return {
        capture: {
          strategy,
          strategyFallback,
          records: c?.records ?? 0,
          drops: c?.drops ?? 0,
          ringUsed: c?.ringUsed ?? 0,
          ringSize: c?.ringSize ?? 0,
        },
        decode_errors: decodeErrors,
        pipeline_errors: pipelineErrors,
        assemble: { ...assembler.stats },
        link: { ...linker.stats },
        processes: directory.stats,
        ship: shipper && spool ? { ...shipper.stats, ...spool.stats } : undefined,
      };
    },
    drain() {
      if (stopped) return;
      cap.flush();
      sweep();
    },
    async stop(deadlineMs = 3000) {
      if (stopped) return;
      clearInterval(sweeper);
      cap.flush();
      stopped = true;
      cap.stop();
      cap.close();
      assembler.flushAll();
      output.flush?.();
      await shipper?.stop(deadlineMs);
    },
  };
}
