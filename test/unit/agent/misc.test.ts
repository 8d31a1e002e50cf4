// Span ids, the clock conversion, the stdout forms and the status line.
import { describe, expect, it } from "vitest";
import type { ESpan } from "../../../contract/espan.ts";
import { createMonoClock } from "../../../agent/src/clock.ts";
import { randomId64 } from "../../../agent/src/ids.ts";
import { createStdoutSink, summarize } from "../../../agent/src/ship/stdout.ts";
import { createStatusLine } from "../../../agent/src/status.ts";
import type { AgentStats } from "../../../agent/src/pipeline.ts";

const SPAN: ESpan = {
  span_id: "0123456789abcdef", kind: "exit", req_seq: 10, resp_seq: 20, start_ns: "1700000000000000000", duration_ns: 1_500_000,
  host: "h", pid: 42, tid: 43, process_name: "curl", service: "web", src_ip: "127.0.0.1", dst_ip: "127.0.0.1", src_port: 5000,
  dst_port: 80, l7_proto: "http", operation: "GET /a", http_status_code: 200, thread_trace_id: "aaaaaaaaaaaaaaaa",
  app_trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", app_sampled: false,
};

describe("ids", () => {
  it("16 lower-case hex digits, never all zero, no repeats across many draws", () => {
    const ids = Array.from({ length: 20_000 }, randomId64);
    for (const id of ids.slice(0, 1000)) expect(id).toMatch(/^(?!0{16})[0-9a-f]{16}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("clock", () => {
  it("maps CLOCK_MONOTONIC (process.hrtime) to unix ns within a few ms", () => {
    const clock = createMonoClock();
    const wall = clock.toUnixNs(process.hrtime.bigint());
    expect(Number(wall / 1_000_000n - BigInt(Date.now()))).toBeLessThan(5);
    expect(Number(BigInt(Date.now()) - wall / 1_000_000n)).toBeLessThan(5);
  });
});

describe("stdout", () => {
  it("NDJSON when piped, a summary line on a terminal", () => {
    let out = "";
    let writes = 0;
    const pipe = createStdoutSink({ write: (c) => ((out += c), writes++), isTTY: false });
    pipe.write(SPAN);
    pipe.write({ ...SPAN, span_id: "1111111111111111" });
    expect(out).toBe(""); // gathered, written once per event-loop turn
    pipe.flush!();
    expect(writes).toBe(1);
    expect(out.trim().split("\n").map((l) => JSON.parse(l))).toEqual([SPAN, { ...SPAN, span_id: "1111111111111111" }]);
    out = "";
    const tty = createStdoutSink({ write: (c) => (out += c), isTTY: true });
    tty.write(SPAN);
    tty.flush!();
    expect(out).toBe(`${summarize(SPAN)}\n`);
    expect(summarize(SPAN)).toBe(
      "exit  web curl/42:43 GET /a → 200 1.50ms 127.0.0.1:5000→127.0.0.1:80 seq=10/20 thread=aaaaaaaaaaaaaaaa app=4bf92f3577b34da6a3ce929d0e0e4736(not sampled)",
    );
  });
});

describe("status line", () => {
  it("rate since the last line, queue, drops, unlinked", () => {
    const stats = (spans: number): AgentStats => ({
      capture: { strategy: "tp_btf", strategyFallback: null, records: 0, drops: 3, ringUsed: 0, ringSize: 0 },
      decode_errors: 0,
      pipeline_errors: 0,
      assemble: { records: 0, conns: 2, spans, orphan_responses: 0, no_response: 0, idle_flushed: 0, conns_evicted: 0, spans_filtered: 0 },
      link: { entries: spans, exits: 0, linked_thread: 0, linked_app_context: 0, unlinked_no_entry: 0, unlinked_ambiguous: 7, unlinked_app_mismatch: 0 },
      processes: { processes_traced: 1, processes_seen: 1 },
      ship: { sent: 5, rejected: 0, retries: 1, batches: 1, pending: 2, memory_spans: 10, disk_spans: 4, disk_bytes: 100, dropped: 0, replayed: 0 },
    });
    const line = createStatusLine();
    const t0 = Date.now();
    line(stats(0), t0);
    const text = line(stats(20), t0 + 2000);
    expect(text).toBe(
      "10.0 spans/s, spans 20 (entry 20, exit 0), conns 2, traced processes 1, sent 5, queue 12 mem / 4 disk, dropped 0, rejected 0, retries 1, unlinked_ambiguous 7, capture drops 3",
    );
  });
});
