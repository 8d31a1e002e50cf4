import { describe, expect, it } from "vitest";
import type { ESpan } from "../../../contract/espan.ts";
import { SpanBodies, type HeldBatch } from "../../../src/linker/span-bodies.ts";
import { encodeSpans, type BatchText } from "../../../src/linker/span-text.ts";

const spans = (n: number, tag: string) => encodeSpans(Array.from({ length: n }, (_, i) => ({ span_id: `${tag}${i}` }) as unknown as ESpan));
/** A batch's text, given when asked. */
const add = (b: SpanBodies, seq: number, body: BatchText, done: Uint8Array) => b.add(seq, body.bounds.length / 2, () => body, done);
/** A held span, parsed from its text (as an export step does). */
const spanOf = (b: SpanBodies, batch: HeldBatch, i: number) => JSON.parse(b.text(batch, i)) as ESpan;

describe("span bodies by ref", () => {
  it("finds each span of consecutive batches whose sizes are not multiples of 8", () => {
    const b = new SpanBodies();
    const r1 = add(b, 1, spans(5, "a"), new Uint8Array(1));
    const r2 = add(b, 2, spans(3, "b"), new Uint8Array(1));
    const r3 = add(b, 3, spans(9, "c"), new Uint8Array(2));
    for (const [refs, tag] of [[r1, "a"], [r2, "b"], [r3, "c"]] as const) {
      refs.forEach((ref, i) => {
        const f = b.find(ref)!;
        expect(spanOf(b, f.batch, f.index).span_id).toBe(`${tag}${i}`);
      });
    }
    expect(b.find(17)).toBeUndefined();
  });

  it("drops a batch's bodies once every span is done, and keeps done bits from a replayed log", () => {
    const b = new SpanBodies();
    const done = new Uint8Array([0b101]);
    const refs = add(b, 7, spans(3, "x"), done);
    expect(b.held).toBe(1);
    const f = b.find(refs[1])!;
    expect(b.isDone(f.batch, 0)).toBe(true);
    b.markDone(f.batch, 1);
    expect(f.batch.body).toBeNull();
    expect(b.fullyDone(7)).toBe(true);
    expect(b.takeDirty().map((x) => x.seq)).toEqual([7]);
    expect(b.takeDirty()).toEqual([]);
  });

  it("holds nothing of a replayed batch already done, and only what remains of one mostly done", () => {
    const b = new SpanBodies();
    const [r0] = b.add(1, 8, () => {
      throw new Error("the text of a batch already done is not needed");
    }, new Uint8Array([0xff]));
    expect(b.find(r0)!.batch.body).toBeNull();
    const refs = add(b, 2, spans(8, "m"), new Uint8Array([0b11011111])); // span 5 remains
    const batch = b.find(refs[5])!.batch;
    expect(b.chars).toBe(batch.body!.text.length);
    expect(batch.body!.text.length).toBeLessThan(2 + 2 * JSON.stringify({ span_id: "m5" }).length);
    expect(spanOf(b, batch, 5).span_id).toBe("m5");
  });

  it("keeps only the text of the spans not done once half a batch is done", () => {
    const b = new SpanBodies();
    const refs = add(b, 1, spans(100, "s"), new Uint8Array(13));
    const whole = b.find(refs[0])!.batch.body!.text.length;
    const keep = new Set([3, 50, 99]);
    for (let i = 0; i < 100; i++) if (!keep.has(i)) b.markDone(b.find(refs[i])!.batch, i);
    const batch = b.find(refs[3])!.batch;
    expect(batch.body!.text.length).toBeLessThan(whole / 10);
    expect(b.chars).toBe(batch.body!.text.length);
    for (const i of keep) expect(spanOf(b, batch, i).span_id).toBe(`s${i}`);
    b.markDone(batch, 50);
    expect(spanOf(b, batch, 99).span_id).toBe("s99");
    b.markDone(batch, 3);
    b.markDone(batch, 99);
    expect(b.chars).toBe(0);
  });
});
