import { describe, expect, it } from "vitest";
import type { ESpan } from "../../../contract/espan.ts";
import { SpanBodies } from "../../../src/linker/span-bodies.ts";

const spans = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ span_id: `${tag}${i}` }) as unknown as ESpan);

describe("span bodies by ref", () => {
  it("finds each span of consecutive batches whose sizes are not multiples of 8", () => {
    const b = new SpanBodies();
    const r1 = b.add(1, spans(5, "a"), new Uint8Array(1));
    const r2 = b.add(2, spans(3, "b"), new Uint8Array(1));
    const r3 = b.add(3, spans(9, "c"), new Uint8Array(2));
    for (const [refs, tag] of [[r1, "a"], [r2, "b"], [r3, "c"]] as const) {
      refs.forEach((ref, i) => {
        const f = b.find(ref)!;
        expect(f.batch.spans![f.index].span_id).toBe(`${tag}${i}`);
      });
    }
    expect(b.find(17)).toBeUndefined();
  });

  it("drops a batch's bodies once every span is done, and keeps done bits from a replayed log", () => {
    const b = new SpanBodies();
    const done = new Uint8Array([0b101]);
    const refs = b.add(7, spans(3, "x"), done);
    expect(b.held).toBe(1);
    const f = b.find(refs[1])!;
    expect(b.isDone(f.batch, 0)).toBe(true);
    b.markDone(f.batch, 1);
    expect(f.batch.spans).toBeNull();
    expect(b.fullyDone(7)).toBe(true);
    expect(b.takeDirty().map((x) => x.seq)).toEqual([7]);
    expect(b.takeDirty()).toEqual([]);
  });
});
