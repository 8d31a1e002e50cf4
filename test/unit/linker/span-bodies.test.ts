import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { ESpan } from "../../../contract/espan.ts";
import { encodeForParse, SpanParser } from "../../../src/ingest/span-parser.ts";
import { SpanBodies, type HeldBatch } from "../../../src/linker/span-bodies.ts";

const parser = new SpanParser(new WebAssembly.Module(readFileSync(join(__dirname, "..", "..", "..", "build", "ingest.debug.wasm"))));

const span = (id: string): ESpan => ({
  span_id: id, kind: "exit", req_seq: 1, resp_seq: 2, start_ns: "1", duration_ns: 1, host: "h", pid: 1, tid: 1,
  process_name: "p", service: "s", src_ip: "a", dst_ip: "b", src_port: 1, dst_port: 2, l7_proto: "http",
});
/** `n` spans with ids tag·i (16 hex digits), parsed: a block of them when asked. */
function batch(n: number, tag: number): { count: number; block: () => number } {
  const spans = Array.from({ length: n }, (_, i) => span(idOf(tag, i)));
  expect(parser.parse(encodeForParse(spans), "array", "trusted", 0, 0)).toBe(n);
  return { count: n, block: () => parser.hold(0, n) };
}
const idOf = (tag: number, i: number) => (tag * 0x10000 + i + 1).toString(16).padStart(16, "0");
const add = (b: SpanBodies, seq: number, x: { count: number; block: () => number }, done: Uint8Array) => {
  const first = b.add(seq, x.count, x.block, done);
  return Array.from({ length: x.count }, (_, i) => first + i);
};
/** The seqs whose done bits a persist writes. */
const written = (b: SpanBodies) => {
  const seqs: number[] = [];
  b.persistDirty((x) => seqs.push(x.seq));
  return seqs;
};
/** A held span, parsed from its text (as an export step does). */
const spanOf = (b: SpanBodies, batch: HeldBatch, i: number) => JSON.parse(b.text(batch, i)) as ESpan;

describe("span bodies by ref", () => {
  it("finds each span of consecutive batches whose sizes are not multiples of 8", () => {
    const b = new SpanBodies(parser);
    const r1 = add(b, 1, batch(5, 1), new Uint8Array(1));
    const r2 = add(b, 2, batch(3, 2), new Uint8Array(1));
    const r3 = add(b, 3, batch(9, 3), new Uint8Array(2));
    for (const [refs, tag] of [[r1, 1], [r2, 2], [r3, 3]] as const) {
      refs.forEach((ref, i) => {
        const f = b.find(ref)!;
        expect(spanOf(b, f.batch, f.index)).toEqual(span(idOf(tag, i)));
      });
    }
    expect(b.find(17)).toBeUndefined();
    expect(b.nextRef).toBe(17);
  });

  it("drops a batch's block once every span is done, and keeps done bits from a replayed log", () => {
    const b = new SpanBodies(parser);
    const done = new Uint8Array([0b101]);
    const refs = add(b, 7, batch(3, 7), done);
    expect(b.held).toBe(1);
    const f = b.find(refs[1])!;
    expect(b.isDone(f.batch, 0)).toBe(true);
    b.markDone(f.batch, 1);
    expect(f.batch.block).toBe(0);
    expect(b.bytes).toBe(0);
    expect(b.fullyDone(7)).toBe(true);
    expect(written(b)).toEqual([7]);
    expect(written(b)).toEqual([]);
  });

  it("holds nothing of a replayed batch already done, and only what remains of one mostly done", () => {
    const b = new SpanBodies(parser);
    const first = b.add(1, 8, () => {
      throw new Error("the block of a batch already done is not needed");
    }, new Uint8Array([0xff]));
    expect(b.find(first)!.batch.block).toBe(0);
    const whole = batch(8, 2);
    const full = parser.blockSize(whole.block());
    const refs = add(b, 2, batch(8, 2), new Uint8Array([0b11011111])); // span 5 remains
    const held = b.find(refs[5])!.batch;
    expect(b.bytes).toBe(parser.blockSize(held.block));
    expect(b.bytes).toBeLessThan(full / 3);
    expect(spanOf(b, held, 5)).toEqual(span(idOf(2, 5)));
  });

  it("keeps only the spans not done once half a batch is done, and frees the rest", () => {
    const b = new SpanBodies(parser);
    const refs = add(b, 1, batch(100, 1), new Uint8Array(13));
    const whole = b.bytes;
    const keep = new Set([3, 50, 99]);
    for (let i = 0; i < 100; i++) if (!keep.has(i)) b.markDone(b.find(refs[i])!.batch, i);
    const held = b.find(refs[3])!.batch;
    expect(b.bytes).toBeLessThan(whole / 5);
    expect(b.bytes).toBe(parser.blockSize(held.block));
    for (const i of keep) expect(spanOf(b, held, i)).toEqual(span(idOf(1, i)));
    b.markDone(held, 50);
    expect(spanOf(b, held, 99)).toEqual(span(idOf(1, 99)));
    b.markDone(held, 3);
    b.markDone(held, 99);
    expect(b.bytes).toBe(0);
  });

  it("reuses freed blocks: holding and dropping batches for ever does not grow memory", () => {
    const b = new SpanBodies(parser);
    let seq = 0;
    const cycle = () => {
      for (let k = 0; k < 50; k++) {
        const refs = add(b, ++seq, batch(200, seq % 1000), new Uint8Array(25));
        const f = b.find(refs[0])!;
        for (let i = 0; i < 200; i++) b.markDone(f.batch, i);
      }
      b.forget(() => false);
    };
    cycle();
    const size = parser.memoryBytes;
    for (let r = 0; r < 5; r++) cycle();
    expect(parser.memoryBytes).toBe(size);
  });

  it("a done-bits write that fails keeps that batch and the rest dirty for the next persist", () => {
    const b = new SpanBodies(parser);
    const refs = [1, 2, 3].map((seq) => add(b, seq, batch(4, seq), new Uint8Array(1)));
    for (const r of refs) {
      const f = b.find(r[0])!;
      b.markDone(f.batch, f.index);
    }
    const tried: number[] = [];
    expect(() => b.persistDirty((x) => {
      tried.push(x.seq);
      if (x.seq === 2) throw new Error("disk full");
    })).toThrow("disk full");
    expect(tried).toEqual([1, 2]);
    expect(written(b)).toEqual([2, 3]);
    expect(written(b)).toEqual([]);
  });
});

