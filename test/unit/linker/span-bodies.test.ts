import { describe, expect, it } from "vitest";
import type { ESpan } from "../../../contract/espan.ts";
import { DEFAULT_LINK_CONFIG } from "../../../src/linker/config.ts";
import { LinkerEngine } from "../../../src/linker/engine.ts";
import { loadEngineModule } from "../../../src/linker/load-node.ts";
import { SpanBodies as Bodies } from "../../../src/linker/span-bodies.ts";
import { spansText } from "../../../src/linker/span-text.ts";

const engine = new LinkerEngine(loadEngineModule(), DEFAULT_LINK_CONFIG);
/** Bodies located by the engine's scan, as a shard makes them. */
class SpanBodies extends Bodies {
  constructor() {
    super((bytes, format, n) => engine.locateSpans(bytes, format, n));
  }
}

const spans = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ span_id: `${tag}${i}` }) as unknown as ESpan);
/** A batch as a shard logs it when not as it came: a JSON array. */
const add = (b: SpanBodies, seq: number, s: ESpan[], done: Uint8Array) => b.add(seq, spansText(s), "array", s, done);

describe("span bodies by ref", () => {
  it("finds each span of consecutive batches whose sizes are not multiples of 8", () => {
    const b = new SpanBodies();
    const r1 = add(b, 1, spans(5, "a"), new Uint8Array(1));
    const r2 = add(b, 2, spans(3, "b"), new Uint8Array(1));
    const r3 = add(b, 3, spans(9, "c"), new Uint8Array(2));
    for (const [refs, tag] of [[r1, "a"], [r2, "b"], [r3, "c"]] as const) {
      refs.forEach((ref, i) => {
        const f = b.find(ref)!;
        expect(b.span(f.batch, f.index).span_id).toBe(`${tag}${i}`);
      });
    }
    expect(b.find(17)).toBeUndefined();
  });

  it("holds a body as it came when its spans can be located in it, else as the spans encoded again", () => {
    const b = new SpanBodies();
    const s = spans(2, "d");
    const doc = `{ "spans" : [ ${JSON.stringify(s[0])} , ${JSON.stringify(s[1])} ] }`;
    const [r0] = b.add(1, doc, "doc", s, new Uint8Array(1));
    expect(b.text(b.find(r0)!.batch, 0)).toBe(JSON.stringify(s[0]));
    // Escaped keys are not located: the spans are encoded again, and still found.
    const escaped = `{"sp\\u0061ns": [${JSON.stringify(s[0])}, ${JSON.stringify(s[1])}]}`;
    const [, r1] = b.add(2, escaped, "doc", s, new Uint8Array(1));
    expect(b.span(b.find(r1)!.batch, 1)).toEqual(s[1]);
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
    const [r0] = add(b, 1, spans(8, "d"), new Uint8Array([0xff]));
    expect(b.find(r0)!.batch.body).toBeNull();
    const refs = add(b, 2, spans(8, "m"), new Uint8Array([0b11011111])); // span 5 remains
    const batch = b.find(refs[5])!.batch;
    expect(batch.body!.bytes.length).toBe(JSON.stringify({ span_id: "m5" }).length);
    expect(b.span(batch, 5).span_id).toBe("m5");
  });

  it("keeps only the bytes of the spans not done once most of a batch is done", () => {
    const b = new SpanBodies();
    const refs = add(b, 1, spans(100, "s"), new Uint8Array(13));
    const whole = b.find(refs[0])!.batch.body!.bytes.length;
    const keep = new Set([3, 50, 99]);
    for (let i = 0; i < 100; i++) if (!keep.has(i)) b.markDone(b.find(refs[i])!.batch, i);
    const batch = b.find(refs[3])!.batch;
    expect(batch.body!.bytes.length).toBeLessThan(whole / 10);
    expect(b.bytes).toBe(batch.body!.bytes.length);
    for (const i of keep) expect(b.span(batch, i).span_id).toBe(`s${i}`);
    b.markDone(batch, 50);
    expect(b.span(batch, 99).span_id).toBe("s99");
    b.markDone(batch, 3);
    b.markDone(batch, 99);
    expect(b.bytes).toBe(0);
  });
});
