// Live process selection: which pids the kernel traces, and each traced process's name and
// service. Processes running at start come from a /proc scan; new ones from the capture's exec
// records (every exec on the host), children of traced processes from fork records (the
// kernel already traces them: PID_INHERIT, so pre-fork servers are traced from their first
// syscall). The agent itself is never traced: its pid is excluded in the kernel and here.
//
// The kernel filter is the first gate; spans are checked again here (lookup) because a process
// can move data between its exec and the moment its exec record is handled, and because with
// trace_all_process the kernel traces a blacklisted process's forked children until we see
// them.
import { decide, serviceName, type SelectionRules } from "./select.ts";
import { listPids, readProcFacts, type ProcFacts } from "./proc.ts";

export interface PidControl {
  addPid(pid: number, flags?: number): void;
  removePid(pid: number): void;
  setTraceAll(on: boolean): void;
}

export interface PidFlags {
  TRACE: number;
  INHERIT: number;
  EXCLUDE: number;
}

export interface ProcessEntry {
  processName: string;
  service: string;
  traced: boolean;
}

export interface DirectoryStats {
  processes_traced: number;
  processes_seen: number;
}

export interface DirectoryOptions {
  selfPid?: number;
  readFacts?: (pid: number) => ProcFacts | undefined;
  listPids?: () => number[];
  /** An exited process's entry is kept this long (its sockets close after its exit record). */
  exitGraceMs?: number;
}

const MAX_ENTRIES = 65_536;

export class ProcessDirectory {
  private readonly entries = new Map<number, ProcessEntry>();
  private readonly exited = new Map<number, number>(); // pid → time of its exit (ms)
  private readonly selfPid: number;
  private readonly read: (pid: number) => ProcFacts | undefined;
  private readonly list: () => number[];
  private readonly exitGraceMs: number;

  constructor(
    private readonly rules: SelectionRules,
    private readonly control: PidControl,
    private readonly flags: PidFlags,
    opts: DirectoryOptions = {},
  ) {
    this.selfPid = opts.selfPid ?? process.pid;
    this.read = opts.readFacts ?? ((pid) => readProcFacts(pid));
    this.list = opts.listPids ?? (() => listPids());
    this.exitGraceMs = opts.exitGraceMs ?? 10_000;
  }

  get stats(): DirectoryStats {
    let traced = 0;
    for (const e of this.entries.values()) if (e.traced) traced++;
    return { processes_traced: traced, processes_seen: this.entries.size };
  }

  /** Excludes the agent, switches trace-all on if asked, selects the running processes. */
  start(): void {
    this.control.addPid(this.selfPid, this.flags.EXCLUDE);
    if (this.rules.trace_all_process) this.control.setTraceAll(true);
    for (const pid of this.list()) this.consider(pid);
  }

  /** The process exec'd: its name and environment may have changed. */
  onExec(pid: number): void {
    this.exited.delete(pid);
    this.consider(pid);
  }

  /** A traced process forked `pid` (the kernel traces it already): same name and env. */
  onFork(pid: number, parentPid: number): void {
    this.exited.delete(pid);
    const parent = this.entries.get(parentPid);
    if (parent) this.remember(pid, { ...parent });
    else this.consider(pid);
  }

  onExit(pid: number, nowMs = Date.now()): void {
    if (this.entries.has(pid)) this.exited.set(pid, nowMs);
  }

  /** Forgets processes that exited more than the grace period ago. */
  sweep(nowMs = Date.now()): void {
    for (const [pid, at] of this.exited) {
      if (nowMs - at < this.exitGraceMs) break; // insertion order is exit order
      this.exited.delete(pid);
      this.entries.delete(pid);
    }
  }

  /** Name, service and verdict of a pid that sent data; read from /proc on first sight. */
  lookup(pid: number, comm: string): ProcessEntry {
    const known = this.entries.get(pid);
    if (known) return known;
    const facts = this.read(pid);
    if (!facts) {
      // Gone before we could look: the kernel traced it (inherited, or trace-all), trust that.
      return { processName: comm, service: comm, traced: pid !== this.selfPid };
    }
    return this.apply(facts, undefined);
  }

  isTraced(pid: number): boolean {
    return this.entries.get(pid)?.traced ?? false;
  }

  private consider(pid: number): void {
    const facts = this.read(pid);
    if (!facts) return;
    this.apply(facts, this.entries.get(pid));
  }

  private apply(facts: ProcFacts, before: ProcessEntry | undefined): ProcessEntry {
    const verdict = decide(facts, this.rules, this.selfPid);
    const entry: ProcessEntry = {
      processName: facts.comm || facts.exe,
      service: serviceName(facts),
      traced: verdict.traced,
    };
    const { TRACE, INHERIT, EXCLUDE } = this.flags;
    try {
      if (this.rules.trace_all_process) {
        if (!verdict.traced) this.control.addPid(facts.pid, EXCLUDE);
        else if (before && !before.traced) this.control.removePid(facts.pid);
      } else if (verdict.traced) {
        this.control.addPid(facts.pid, TRACE | INHERIT);
      } else {
        // Not selected: also covers a traced process (or its inherited child) that exec'd into
        // something else. Removing an absent pid is a no-op in the kernel.
        this.control.removePid(facts.pid);
      }
    } catch {
      // The pid filter map is full (16k entries): the process stays as the kernel has it.
    }
    this.remember(facts.pid, entry);
    return entry;
  }

  private remember(pid: number, entry: ProcessEntry): void {
    this.entries.delete(pid);
    this.entries.set(pid, entry);
    if (this.entries.size > MAX_ENTRIES) {
      const oldest = this.entries.keys().next().value!;
      this.entries.delete(oldest);
      this.exited.delete(oldest);
    }
  }
}
