// The bounded queue: memory first, then the spool directory, drops only when both are full;
// the directory is replayed by the next run.
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { ESpan } from "../../../contract/espan.ts";
import { JsonBatch } from "../../../agent/src/ship/json-batch.ts";
import { Spool } from "../../../agent/src/ship/spool.ts";

const batch = (from: number, n: number): JsonBatch =>
  JsonBatch.of(Array.from({ length: n }, (_, i) => ({ span_id: (from + i + 1).toString(16).padStart(16, "0"), operation: `op ${from + i}` }) as unknown as ESpan));
const dir = () => mkdtempSync(join(tmpdir(), "espan-spool-"));
const files = (d: string) => readdirSync(d).filter((f) => f.endsWith(".json.gz"));

/** Takes every batch out, in order. */
function drain(s: Spool): string[] {
  const out: string[] = [];
  for (let b = s.peek(); b; b = s.peek()) {
    out.push(...b.spans().map((x) => x.operation!));
    s.ack();
  }
  return out;
}

describe("spool", () => {
  it("keeps batches in memory up to the bound, then spills to disk, in FIFO order", () => {
    const d = dir();
    const s = new Spool({ maxMemorySpans: 10, dir: d, maxDiskBytes: 1 << 20 });
    s.push(batch(0, 5));
    s.push(batch(5, 5));
    s.push(batch(10, 5)); // memory full: disk
    s.push(batch(15, 5));
    expect(s.stats).toMatchObject({ memory_spans: 10, disk_spans: 10, dropped: 0 });
    expect(files(d)).toHaveLength(2);
    expect(drain(s)).toEqual(Array.from({ length: 20 }, (_, i) => `op ${i}`));
    expect(files(d)).toEqual([]);
    expect(s.stats).toMatchObject({ memory_spans: 0, disk_spans: 0, disk_bytes: 0 });
  });

  it("drops only when memory and disk are both full, and counts what it drops", () => {
    const d = dir();
    const s = new Spool({ maxMemorySpans: 5, dir: d, maxDiskBytes: 400 });
    s.push(batch(0, 5)); // memory
    s.push(batch(5, 5)); // disk (a gzip of 5 tiny spans is well under 400 bytes)
    expect(s.stats.dropped).toBe(0);
    for (let i = 0; i < 10; i++) s.push(batch(10 + 5 * i, 5));
    const st = s.stats;
    expect(st.dropped).toBeGreaterThan(0);
    expect(st.disk_bytes).toBeLessThanOrEqual(400);
    expect(st.memory_spans + st.disk_spans + st.dropped).toBe(60);
  });

  it("without a directory, drops once memory is full", () => {
    const s = new Spool({ maxMemorySpans: 5, maxDiskBytes: 1 << 20 });
    s.push(batch(0, 5));
    expect(s.stats.dropped).toBe(0);
    s.push(batch(5, 1));
    expect(s.stats.dropped).toBe(1);
  });

  it("survives a restart: a clean stop writes memory to disk, the next run replays all of it", () => {
    const d = dir();
    const first = new Spool({ maxMemorySpans: 6, dir: d, maxDiskBytes: 1 << 20 });
    first.push(batch(0, 3));
    first.push(batch(3, 3));
    first.push(batch(6, 3)); // spilled while running
    expect(first.spillAll()).toBe(0);
    expect(files(d)).toHaveLength(3);
    const second = new Spool({ maxMemorySpans: 6, dir: d, maxDiskBytes: 1 << 20 });
    second.replay();
    expect(second.stats).toMatchObject({ replayed: 9, disk_spans: 9 });
    expect(drain(second).sort()).toEqual(Array.from({ length: 9 }, (_, i) => `op ${i}`).sort());
  });

  it("a batch split (413) or trimmed (400) replaces the head", () => {
    const s = new Spool({ maxMemorySpans: 100, maxDiskBytes: 0 });
    s.push(batch(0, 4));
    s.push(batch(4, 1));
    const head = s.peek()!;
    s.replaceHead([head.slice(0, 2), head.slice(2)]);
    expect(s.length).toBe(3);
    expect(s.stats.memory_spans).toBe(5);
    expect(drain(s)).toEqual(["op 0", "op 1", "op 2", "op 3", "op 4"]);
  });

  it("skips an unreadable spool file, counted as dropped", () => {
    const d = dir();
    writeFileSync(join(d, "1-000000-7.json.gz"), "not gzip");
    const s = new Spool({ maxMemorySpans: 10, dir: d, maxDiskBytes: 1 << 20 });
    s.replay();
    expect(s.peek()).toBeUndefined();
    expect(s.stats.dropped).toBe(7);
  });
});
