// In-process linking: which entry an exit was made for (DESIGN.md "Linking semantics", thread
// group). The agent gives each entry a fresh thread_trace_id; an exit carries the id of the
// entry it was made for, or none.
//
// An entry is open on the thread that read its request, from that read until its response's
// first byte is written (or it ends without one). An exit whose request is written on a thread
// gets the id of the entry open there:
//
//  - no entry open: none (a background call, or one made after the response was written: the
//    seed let an answered request adopt later calls for 10 minutes, reference/datakit.md §3).
//  - exactly one open: that one, unless both carry app trace ids and they differ (then the app
//    says it is another trace's call).
//  - several open (an event loop: Node and nginx do all socket I/O on one thread; under
//    concurrency 0/14 calls could be told apart by thread and time, reference/bpf.md §5): only
//    the one entry whose app trace id the outgoing request carries (the app propagated the
//    incoming context). Otherwise the exit stays unlinked and is counted: never a guess.
//
// Records reach the agent in ring-buffer order, which is program order for one thread, so the
// set of open entries seen when an exit's request record arrives is the set at that moment.
import type { ESpan } from "../../../contract/espan.ts";
import type { Exchange, ExchangeSink } from "../assemble/exchange.ts";
import { lastId, randomId64 } from "../ids.ts";

/** Where finished spans go next (shipping, stdout). */
export interface SpanSink {
  write(span: ESpan): void;
  /** Writes out what it holds (at stop). */
  flush?(): void;
}

export interface LinkStats {
  entries: number;
  exits: number;
  /** Exits linked because exactly one entry was open on their thread. */
  linked_thread: number;
  /** Exits linked by the app trace id among several open entries. */
  linked_app_context: number;
  /** Exits made with no entry open on their thread. */
  unlinked_no_entry: number;
  /** Exits made while several entries were open and the app context did not single one out. */
  unlinked_ambiguous: number;
  /** One entry open, but the app trace ids of the two requests differ. */
  unlinked_app_mismatch: number;
}

const threadKey = (pid: number, tid: number) => pid * 4_294_967_296 + tid; // exact below 2^53

/** The entries open on one thread. */
interface OpenList {
  head: Exchange | undefined;
  size: number;
}

/** Threads whose (possibly empty) set of open entries is kept before empty ones are pruned. */
const MAX_THREADS = 4096;

export class ThreadLinker implements ExchangeSink {
  readonly stats: LinkStats = {
    entries: 0, exits: 0, linked_thread: 0, linked_app_context: 0,
    unlinked_no_entry: 0, unlinked_ambiguous: 0, unlinked_app_mismatch: 0,
  };
  /** Open entries by thread, a list through Exchange.openPrev/openNext (no hashing of
   * exchanges, O(1) removal). A thread's list stays when it empties (an event loop opens and
   * closes an entry per request: no Map churn); empty ones are pruned past MAX_THREADS. */
  private readonly open = new Map<number, OpenList>();
  private openCount = 0;

  constructor(private readonly next: SpanSink) {}

  /** Entries open now (bounds, tests). */
  get openEntries(): number {
    return this.openCount;
  }

  requestStarted(x: Exchange): void {
    const key = threadKey(x.pid, x.tid);
    if (x.kind === "entry") {
      x.threadTraceId = randomId64();
      x.threadIdHi = lastId.hi;
      x.threadIdLo = lastId.lo;
      let list = this.open.get(key);
      if (!list) {
        if (this.open.size >= MAX_THREADS) this.pruneEmpty();
        this.open.set(key, (list = { head: undefined, size: 0 }));
      }
      x.openNext = list.head;
      if (list.head) list.head.openPrev = x;
      list.head = x;
      list.size++;
      x.openOn = key;
      this.openCount++;
      return;
    }
    const entry = this.pick(this.open.get(key), x);
    if (entry) {
      x.threadTraceId = entry.threadTraceId;
      x.threadIdHi = entry.threadIdHi;
      x.threadIdLo = entry.threadIdLo;
    }
  }

  responseStarted(x: Exchange): void {
    if (x.kind === "entry") this.close(x);
  }

  ended(x: Exchange, span: ESpan | null): void {
    if (x.kind === "entry") this.close(x);
    if (!span) return;
    if (x.kind === "entry") this.stats.entries++;
    else this.stats.exits++;
    if (x.threadTraceId !== undefined) span.thread_trace_id = x.threadTraceId;
    this.next.write(span);
  }

  private pick(candidates: OpenList | undefined, exit: Exchange): Exchange | undefined {
    if (!candidates || candidates.size === 0) {
      this.stats.unlinked_no_entry++;
      return undefined;
    }
    const appId = exit.app?.app_trace_id;
    if (candidates.size === 1) {
      const only = candidates.head!;
      const entryAppId = only.app?.app_trace_id;
      if (appId !== undefined && entryAppId !== undefined && appId !== entryAppId) {
        this.stats.unlinked_app_mismatch++;
        return undefined;
      }
      this.stats.linked_thread++;
      return only;
    }
    if (appId !== undefined) {
      let match: Exchange | undefined;
      let n = 0;
      for (let e = candidates.head; e !== undefined; e = e.openNext) {
        if (e.app?.app_trace_id === appId) {
          match = e;
          n++;
        }
      }
      if (n === 1) {
        this.stats.linked_app_context++;
        return match;
      }
    }
    this.stats.unlinked_ambiguous++;
    return undefined;
  }

  private close(entry: Exchange): void {
    const key = entry.openOn;
    if (key < 0) return;
    entry.openOn = -1;
    this.openCount--;
    const list = this.open.get(key)!;
    if (entry.openPrev) entry.openPrev.openNext = entry.openNext;
    else list.head = entry.openNext;
    if (entry.openNext) entry.openNext.openPrev = entry.openPrev;
    entry.openPrev = entry.openNext = undefined;
    list.size--;
  }

  /** Forgets the threads with no entry open. */
  private pruneEmpty(): void {
    for (const [key, list] of this.open) if (list.size === 0) this.open.delete(key);
  }
}
