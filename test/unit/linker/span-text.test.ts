import { describe, expect, it } from "vitest";
import { DEFAULT_LINK_CONFIG } from "../../../src/linker/config.ts";
import { LinkerEngine } from "../../../src/linker/engine.ts";
import { loadEngineModule } from "../../../src/linker/load-node.ts";
import { ByteArena, spansText, spanText, type BatchFormat } from "../../../src/linker/span-text.ts";

// The engine's scan (assembly/span-text.ts), as a shard calls it.
const engine = new LinkerEngine(loadEngineModule({ debug: true }), DEFAULT_LINK_CONFIG);
const locateSpans = (bytes: Uint8Array, format: BatchFormat, n: number) => engine.locateSpans(bytes, format, n);

/** Each span of `text` as located, parsed. */
function located(text: string, format: BatchFormat, n: number): unknown[] | undefined {
  const bytes = new ByteArena().encode(text);
  const bounds = locateSpans(bytes, format, n);
  return bounds && Array.from({ length: n }, (_, i) => JSON.parse(spanText({ bytes, bounds }, i)));
}

// Strings that could fool a scanner: quotes, backslashes, brackets, a "spans" key inside a span,
// characters of two, three and four UTF-8 bytes.
const tricky = [
  { span_id: "a", operation: 'GET /x?q="}{]["', attributes: { nested: { deep: [1, { x: "}" }] } } },
  { span_id: "b", operation: "C:\\path\\", http_route: "\\\"", spans: [{ not: "a span" }] },
  { span_id: "c", operation: "üñí ☃ \u2028 😀 end" },
];

describe("spans located in a batch's bytes", () => {
  it("finds each span of a JSON document, whatever its strings hold", () => {
    expect(located(JSON.stringify({ spans: tricky }), "doc", 3)).toEqual(tricky);
  });

  it("takes the last top-level \"spans\" key, as JSON.parse does, and ignores other keys", () => {
    const text = `{"meta": {"spans": [{"x": 1}]}, "spans": [{"first": 1}], "other": [{"y": 2}],\n  "spans" : [ ${JSON.stringify(tricky[0])} ,\n ${JSON.stringify(tricky[2])} ] }`;
    expect(JSON.parse(text).spans).toEqual([tricky[0], tricky[2]]);
    expect(located(text, "doc", 2)).toEqual([tricky[0], tricky[2]]);
  });

  it("does not guess when a top-level key is escaped (it could be \"spans\" to JSON.parse)", () => {
    const text = `{"spans": [{"a": 1}, {"b": 2}], "sp\\u0061ns": [{"c": 3}, {"d": 4}]}`;
    expect(JSON.parse(text).spans).toEqual([{ c: 3 }, { d: 4 }]);
    expect(located(text, "doc", 2)).toBeUndefined();
  });

  it("finds each span of a JSON array and of NDJSON (blank lines and CRLF skipped)", () => {
    expect(located(JSON.stringify(tricky), "array", 3)).toEqual(tricky);
    const nd = `${JSON.stringify(tricky[0])}\r\n\n   \n${JSON.stringify(tricky[1])}\n${JSON.stringify(tricky[2])}`;
    expect(located(nd, "ndjson", 3)).toEqual(tricky);
    expect(located(spansText(tricky as never), "array", 3)).toEqual(tricky);
  });

  it("locates the spans of a big batch, text longer than the engine's buffers so far", () => {
    const many = Array.from({ length: 3000 }, (_, i) => ({ ...tricky[i % 3], i }));
    expect(located(JSON.stringify({ spans: many }), "doc", 3000)).toEqual(many);
    expect(located(many.map((s) => JSON.stringify(s)).join("\n"), "ndjson", 3000)).toEqual(many);
  });

  it("answers undefined when the text does not hold as many spans as it should", () => {
    expect(located(JSON.stringify({ spans: tricky }), "doc", 4)).toBeUndefined();
    expect(located(JSON.stringify({ spans: tricky }), "doc", 2)).toBeUndefined();
    expect(located(JSON.stringify({ nospans: tricky }), "doc", 3)).toBeUndefined();
  });
});

describe("byte arena", () => {
  it("encodes texts of any size side by side, and compacts a batch to the spans kept", () => {
    const arena = new ByteArena();
    const big = "x".repeat(5 << 20); // over a chunk
    const texts = ["héllo 😀", big, "[1,2]", JSON.stringify(tricky)];
    const encoded = texts.map((t) => arena.encode(t));
    expect(encoded.map((b) => new TextDecoder().decode(b))).toEqual(texts);
    const bytes = encoded[3];
    const body = { bytes, bounds: locateSpans(bytes, "array", 3)! };
    const kept = arena.compact(body, (i) => i !== 1);
    expect(kept.bytes.length).toBe(bytes.length - 2 - JSON.stringify(tricky[1]).length - 2); // brackets, one span, commas
    expect([0, 2].map((i) => JSON.parse(spanText(kept, i)))).toEqual([tricky[0], tricky[2]]);
    expect(spanText(kept, 1)).toBe("");
  });
});
