import { describe, expect, it } from "vitest";
import { compactSpans, encodeSpans, locateSpans, type BatchText } from "../../../src/linker/span-text.ts";

/** The spans' JSON texts, parsed. */
const parsed = (b: BatchText) => Array.from({ length: b.bounds.length / 2 }, (_, i) => JSON.parse(b.text.slice(b.bounds[2 * i], b.bounds[2 * i + 1])));

// Strings that could fool a scanner: quotes, backslashes, brackets, a "spans" key inside a span.
const tricky = [
  { span_id: "a", operation: 'GET /x?q="}{]["', attributes: { nested: { deep: [1, { x: "}" }] } } },
  { span_id: "b", operation: "C:\\path\\", http_route: "\\\"", spans: [{ not: "a span" }] },
  { span_id: "c", operation: "üñí ☃ \u2028 end" },
];

describe("spans located in a batch's text", () => {
  it("finds each span of a JSON document, whatever its strings hold", () => {
    const text = JSON.stringify({ spans: tricky });
    expect(parsed(locateSpans(text, "doc", 3)!)).toEqual(tricky);
  });

  it("takes the last top-level \"spans\" key, as JSON.parse does, and ignores other keys", () => {
    const text = `{"meta": {"spans": [{"x": 1}]}, "spans": [{"first": 1}], "other": [{"y": 2}],\n  "spans" : [ ${JSON.stringify(tricky[0])} ,\n ${JSON.stringify(tricky[2])} ] }`;
    expect(parsed(locateSpans(text, "doc", 2)!)).toEqual([tricky[0], tricky[2]]);
    expect(JSON.parse(text).spans).toEqual([tricky[0], tricky[2]]);
  });

  it("finds each span of a JSON array and of NDJSON (blank lines and CRLF skipped)", () => {
    expect(parsed(locateSpans(JSON.stringify(tricky), "array", 3)!)).toEqual(tricky);
    const nd = `${JSON.stringify(tricky[0])}\r\n\n   \n${JSON.stringify(tricky[1])}\n${JSON.stringify(tricky[2])}`;
    expect(parsed(locateSpans(nd, "ndjson", 3)!)).toEqual(tricky);
  });

  it("does not guess when a top-level key is escaped (it could be \"spans\" to JSON.parse)", () => {
    const text = `{"spans": [{"a": 1}, {"b": 2}], "sp\\u0061ns": [{"c": 3}, {"d": 4}]}`;
    expect(JSON.parse(text).spans).toEqual([{ c: 3 }, { d: 4 }]);
    expect(locateSpans(text, "doc", 2)).toBeUndefined();
  });

  it("answers undefined when the text does not hold as many spans as it should", () => {
    expect(locateSpans(JSON.stringify({ spans: tricky }), "doc", 4)).toBeUndefined();
    expect(locateSpans(JSON.stringify({ spans: tricky }), "doc", 2)).toBeUndefined();
    expect(locateSpans(JSON.stringify({ nospans: tricky }), "doc", 3)).toBeUndefined();
  });

  it("encodes spans into a text of their own, and compacts one to the spans kept", () => {
    const body = encodeSpans(tricky as never);
    expect(JSON.parse(body.text)).toEqual(tricky);
    expect(parsed(body)).toEqual(tricky);
    const kept = compactSpans(body, (i) => i !== 1);
    expect(JSON.parse(kept.text)).toEqual([tricky[0], tricky[2]]);
    const at = (i: number) => JSON.parse(kept.text.slice(kept.bounds[2 * i], kept.bounds[2 * i + 1]));
    expect([at(0), at(2)]).toEqual([tricky[0], tricky[2]]);
    expect([kept.bounds[2], kept.bounds[3]]).toEqual([0, 0]);
  });
});
