/**
 * The ingest's fast path against the full parser it stands in for (JSON.parse, the fatal UTF-8
 * decoder and the contract's validator): whatever it accepts, the full parser accepts too, with
 * the same spans, none of them normalised, and the engine records the engine glue would encode;
 * on generated traffic it accepts everything. Adversarial bodies (escapes, unicode, big numbers,
 * duplicate keys, whitespace, nulls, byte flips) must never be accepted when the full parser
 * would refuse or change them.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { validateESpan, type ESpan } from "../../../contract/espan.ts";
import { IngestError } from "../../../src/errors.ts";
import { parseBatch, utf8 } from "../../../src/ingest/decode.ts";
import { checkRecords, encodeForParse, SpanParser, type BatchFormat } from "../../../src/ingest/span-parser.ts";
import { DEFAULT_LINK_CONFIG } from "../../../src/linker/config.ts";
import { LinkerEngine } from "../../../src/linker/engine.ts";
import { loadEngineModule } from "../../../src/linker/load-node.ts";
import { generateTraffic } from "../../gen/traffic.ts";
import { Rng } from "../../gen/rng.ts";

const ROOT = join(__dirname, "..", "..", "..");
const parser = new SpanParser(new WebAssembly.Module(readFileSync(join(ROOT, "build", "ingest.debug.wasm"))));
const engine = new LinkerEngine(loadEngineModule({ debug: true }), DEFAULT_LINK_CONFIG);
const enc = new TextEncoder();

const ARRIVAL = 1_764_000_000_123;
const FIRST_REF = 1000;

function bodyOf(spans: unknown[], format: Exclude<BatchFormat, "packed">): string {
  if (format === "doc") return JSON.stringify({ spans });
  if (format === "array") return JSON.stringify(spans);
  return spans.map((s) => JSON.stringify(s)).join("\n");
}

/** What the full parser makes of a body: its spans and whether any was normalised, or its error. */
function fullParse(bytes: Uint8Array, format: Exclude<BatchFormat, "packed">): { spans: ESpan[]; normalised: boolean } | { error: string } {
  try {
    const text = utf8(bytes);
    if (format === "array") {
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch (e) {
        return { error: `malformed: ${(e as Error).message}` };
      }
      if (!Array.isArray(doc)) return { error: "not an array" };
      return fullParse(enc.encode(JSON.stringify({ spans: doc })), "doc");
    }
    const { spans } = parseBatch(text, format === "ndjson");
    // The raw values again, to see whether the validator changed any.
    const raw = format === "doc" ? (JSON.parse(text) as { spans: unknown[] }).spans : text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
    const normalised = raw.some((v) => {
      const r = validateESpan(v);
      return !r.ok || r.span !== v;
    });
    return { spans, normalised };
  } catch (e) {
    if (e instanceof IngestError) return { error: e.message };
    throw e;
  }
}

/**
 * The invariant: a batch the fast path accepts, the full parser accepts unchanged, and the
 * records and span texts agree with it. Returns whether the fast path accepted.
 */
function agrees(bytes: Uint8Array, format: Exclude<BatchFormat, "packed">): boolean {
  const n = parser.parse(bytes, format, "strict", FIRST_REF, ARRIVAL);
  if (typeof n !== "number") return false;
  const full = fullParse(bytes, format);
  const where = `${format} body ${JSON.stringify(new TextDecoder().decode(bytes)).slice(0, 400)}`;
  if ("error" in full) throw new Error(`fast path accepted what the full parser refuses (${full.error}): ${where}`);
  if (full.normalised) throw new Error(`fast path accepted spans the validator normalises: ${where}`);
  if (full.spans.length !== n) throw new Error(`fast path read ${n} spans, the full parser ${full.spans.length}: ${where}`);
  if (n === 0) return true;
  const want = engine.encode(full.spans, ARRIVAL, full.spans.map((_, i) => FIRST_REF + i));
  expect([...parser.records(0, n)], `records of ${where}`).toEqual([...want]);
  const block = parser.hold(0, n);
  try {
    for (let i = 0; i < n; i++) {
      const text = parser.spanJson(block, i);
      // The same object, keys in the same order (the store serves it, the exporter parses it).
      expect(JSON.stringify(JSON.parse(text)), where).toBe(JSON.stringify(full.spans[i]));
    }
  } finally {
    parser.release(block);
  }
  return true;
}

const traffic = generateTraffic({ seed: 7, traces: 300, appInstrumentedFraction: 0.5, clientRootFraction: 0.3, natFraction: 0.2 });
const sample = traffic.spans.slice(0, 40);

/** A few spans with every optional field, attributes and an unknown field. */
const rich: Record<string, unknown>[] = sample.slice(0, 3).map((s, i) => ({
  ...s,
  operation: "GET /x",
  http_method: "GET",
  http_route: "/x/:id",
  http_status_code: 200,
  http_version: "1.1",
  bytes_read: 10,
  bytes_written: 20,
  status: "ok",
  app_trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
  app_parent_id: "00f067aa0ba902b7",
  app_sampled: i % 2 === 0,
  attributes: { "k.str": "v", "k.num": 1.5, "k.bool": true },
  extra_field: { nested: [1, "two", null, { deep: false }] },
}));

describe("the fast path on generated traffic", () => {
  for (const format of ["doc", "array", "ndjson"] as const) {
    it(`accepts every span as ${format}, with the engine's records and the spans' own JSON`, () => {
      for (let i = 0; i < traffic.spans.length; i += 500) {
        expect(agrees(enc.encode(bodyOf(traffic.spans.slice(i, i + 500), format)), format)).toBe(true);
      }
      expect(agrees(enc.encode(bodyOf(rich, format)), format)).toBe(true);
    });
  }

  it("accepts empty batches (no spans) and whitespace the full parser allows", () => {
    expect(parser.parse(enc.encode(' \r\n\t{ "spans" : [ ] } \n'), "doc", "strict", 0, 0)).toBe(0);
    expect(parser.parse(enc.encode("\n\r\n  \n"), "ndjson", "strict", 0, 0)).toBe(0);
    const spaced = JSON.stringify({ spans: sample.slice(0, 3) }, null, 2).replace(/\n/g, "\r\n\t");
    expect(agrees(enc.encode(spaced), "doc")).toBe(true);
    const lines = sample.slice(0, 3).map((s) => ` \t${JSON.stringify(s, null, 0)} \r`).join("\n\n");
    expect(agrees(enc.encode(lines), "ndjson")).toBe(true);
  });

  it("reads its packed spans back (a shard's log) into the same records and texts", () => {
    const n = parser.parse(enc.encode(bodyOf(rich, "doc")), "doc", "strict", FIRST_REF, ARRIVAL) as number;
    const records = [...parser.records(0, n)];
    const packed = parser.packedCopy(Array.from({ length: n }, (_, i) => i));
    expect(packed.length).toBeLessThan(0.75 * enc.encode(bodyOf(rich, "doc")).length);
    expect(parser.parse(packed, "packed", "trusted", FIRST_REF, ARRIVAL)).toBe(n);
    expect([...parser.records(0, n)]).toEqual(records);
    expect(parser.packedCopy(Array.from({ length: n }, (_, i) => i))).toEqual(packed);
  });

  it("reads spans the validator normalised, encoded again, in TRUSTED mode", () => {
    const odd = sample.slice(0, 6).map((s, i) => ({
      ...s,
      thread_trace_id: s.thread_trace_id?.toUpperCase(),
      start_ns: i % 2 ? Number(s.start_ns.slice(0, 15)) : `00${s.start_ns.slice(0, 17)}`,
      operation: null,
      duration_ns: 1e21,
    }));
    const { spans } = parseBatch(JSON.stringify({ spans: odd }), false);
    expect(parser.parse(enc.encode(JSON.stringify({ spans: odd })), "doc", "strict", 0, 0)).toBe("normalised");
    expect(parser.parse(encodeForParse(spans), "array", "trusted", FIRST_REF, ARRIVAL)).toBe(spans.length);
    expect([...parser.records(0, spans.length)]).toEqual([...engine.encode(spans, ARRIVAL, spans.map((_, i) => FIRST_REF + i))]);
  });

  it("writes records laid out as the engine glue's (the start-up check passes)", () => {
    expect(() => checkRecords(parser, (s, at, refs) => engine.encode(s, at, refs))).not.toThrow();
    expect(() => checkRecords(parser, (s, at, refs) => engine.encode(s, at + 1, refs))).toThrow(/differ/);
  });
});

/** Each field set to each of these raw JSON values (and removed). */
const VALUES = [
  "null", '""', '" "', "0", "-0", "-1", "1", "1.0", "1.5", "1e3", "1E3", "01", "4294967295", "4294967296", "65535", "65536", "999", "1000",
  "999999999999999", "1000000000000000", "12345678901234567890", "1e400", "true", "false", "[]", "{}", '{"a":1}', '{"a":null}', '{"a":[1]}', '{"a":{}}',
  '"entry"', '"exit"', '"Entry"', '"\\u0065ntry"', '"ok"', '"error"', '"OK"', '"0123456789abcdef"', '"0123456789ABCDEF"', '"0123456789abcdeg"',
  '"0000000000000000"', '"0123456789abcde"', '"0123456789abcdef0"', '"4bf92f3577b34da6a3ce929d0e0e4736"', '"4BF92F3577B34DA6A3CE929D0E0E4736"',
  '"00000000000000000000000000000000"', '"0"', '"00"', '"1760000000000000000"', '"01760000000000000000"', '"18446744073709551615"',
  '"18446744073709551616"', '"99999999999999999999"', '"184467440737095516150"', '"1e5"', '"-1"', '"h\\u00e9llo"', '"héllo"', '"😀"',
  '"\\ud83d\\ude00"', '"\\ud800"', '"a\\"b"', '"a\\\\b"', '"a\\/b\\b\\f\\n\\r\\t"', '"\\x41"', '"\\u00"', '"tab\there"', '"nl\nhere"',
  "tru", "nul", '"unterminated',
];

function withField(span: Record<string, unknown>, field: string, raw: string | undefined): string {
  const parts = Object.entries(span).map(([k, v]) => (k === field ? (raw === undefined ? undefined : `"${k}":${raw}`) : `"${k}":${JSON.stringify(v)}`));
  if (!(field in span) && raw !== undefined) parts.push(`"${field}":${raw}`);
  return `{${parts.filter((p) => p !== undefined).join(",")}}`;
}

describe("the fast path on adversarial bodies never accepts what the full parser would refuse or change", () => {
  const fields = [...Object.keys(rich[0]), "unknown_key"];
  for (const format of ["doc", "ndjson"] as const) {
    it(`each field set to each odd value, and removed (${format})`, () => {
      let accepted = 0;
      for (const field of fields) {
        for (const raw of [...VALUES, undefined]) {
          const spans = [withField(rich[0], field, raw), JSON.stringify(rich[1])];
          const body = format === "doc" ? `{"spans":[${spans.join(",")}]}` : spans.join("\n");
          if (agrees(enc.encode(body), format)) accepted++;
        }
      }
      expect(accepted).toBeGreaterThan(fields.length); // the plain values pass
    });
  }

  it("duplicate keys, escaped keys, other top-level keys, a BOM, deep nesting", () => {
    const base = JSON.stringify(rich[0]).slice(1, -1);
    const cases: [string, Exclude<BatchFormat, "packed">][] = [
      [`{"spans":[{${base},"span_id":"1111111111111111"}]}`, "doc"],
      [`{"spans":[{${base},"extra_field":2}]}`, "doc"],
      [`{"spans":[{${base.replace('"span_id"', '"span\\u005fid"')}}]}`, "doc"],
      [`{"spans":[{${base},"\\u0073pan_id":"1111111111111111"}]}`, "doc"],
      [`{"spans":[{${base}}],"spans":[]}`, "doc"],
      [`{"other":1,"spans":[{${base}}]}`, "doc"],
      [`{"spans":[{${base}}],"other":{"spans":[]}}`, "doc"],
      [`{"\\u0073pans":[{${base}}]}`, "doc"],
      [`\ufeff{"spans":[{${base}}]}`, "doc"],
      [`\ufeff{${base}}`, "ndjson"],
      [`{"spans":[{${base},"deep":${"[".repeat(100)}${"]".repeat(100)}}]}`, "doc"],
      [`{"spans":[{${base},"deep":${"[".repeat(30)}${"]".repeat(30)}}]}`, "doc"],
      [`{"spans":[{${base}},]}`, "doc"],
      [`{"spans":[{${base}}]} x`, "doc"],
      [`{"spans":[{${base}}]`, "doc"],
      [`{"spans":{${base}}}`, "doc"],
      [`{"spans":[{${base}}, 1]}`, "doc"],
      [`[{${base}}]`, "doc"],
      [`{${base}}\u00a0\n{${base}}`, "ndjson"],
      [`{${base}}\n\u00a0\n`, "ndjson"],
      [`{${base}}\v\n`, "ndjson"],
      [`{${base}} {${base}}`, "ndjson"],
      [`{${base},\n"x":1}`, "ndjson"],
      [`[{${base}}]`, "ndjson"],
      [`{"spans":[{${base},"attributes":{"a":"x","a":1}}]}`, "doc"],
      [`{"spans":[{${base},"attributes":{"a":null}}]}`, "doc"],
      [`{"spans":[{${base},"attributes":{"a":[1]}}]}`, "doc"],
      [`{"spans":[{${base},"attributes":[]}]}`, "doc"],
      [`{"spans":[{${base},"__proto__":{"x":1}}]}`, "doc"],
      [`{"spans":[{${base},"constructor":1}]}`, "doc"],
    ];
    for (const [body, format] of cases) agrees(enc.encode(body), format);
  });

  it("keys in another order from span to span, keys that begin like a known one, a body cut inside a key", () => {
    const rng = new Rng(3);
    const shuffled = rich.map((span) => {
      const entries = Object.entries(span);
      for (let i = entries.length - 1; i > 0; i--) {
        const j = rng.int(0, i);
        [entries[i], entries[j]] = [entries[j], entries[i]];
      }
      return Object.fromEntries(entries);
    });
    // Predicted keys come from the span before: each span here breaks the prediction somewhere.
    expect(agrees(enc.encode(bodyOf([...rich, ...shuffled, ...rich], "doc")), "doc")).toBe(true);
    const base = JSON.stringify(rich[0]).slice(1, -1);
    for (const body of [
      `{"spans":[{${base}},{${base.replace('"span_id":', '"span_id2":')},"span_id":"1111111111111111"}]}`,
      `{"spans":[{${base}},{${base.replace('"kind":', '"kind" :')}}]}`,
      `{"spans":[{${base}},{${base.replace('"host":', '"hos":1,"host":')}}]}`,
      `{"spans":[{${base}},{${base.replace('"service":', '"service\u0000":1,"service":')}}]}`,
      `{"spans":[{${base}},{"span_`,
      `{"spans":[{${base}},{"span_id":`,
      `{"spans":[{${base}},{"span_id"`,
    ]) agrees(enc.encode(body), "doc");
  });

  it("random byte flips, insertions and deletions", () => {
    const rng = new Rng(11);
    const bytes = [0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x20, 0x0a, 0x0d, 0x09, 0x30, 0x39, 0x61, 0x41, 0x65, 0x2e, 0x2d, 0x6e, 0x75, 0x00, 0x01, 0x1f, 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xe0, 0xed, 0xf0, 0xf4, 0xf5, 0xff];
    let accepted = 0;
    for (const format of ["doc", "ndjson"] as const) {
      const base = enc.encode(bodyOf(rich.slice(0, 2), format));
      for (let k = 0; k < 6000; k++) {
        const at = rng.int(0, base.length - 1);
        const b = rng.pick(bytes);
        const op = rng.int(0, 2);
        const mutated =
          op === 0 ? Uint8Array.from(base, (x, i) => (i === at ? b : x))
          : op === 1 ? new Uint8Array([...base.subarray(0, at), b, ...base.subarray(at)])
          : new Uint8Array([...base.subarray(0, at), ...base.subarray(at + 1)]);
        if (agrees(mutated, format)) accepted++;
      }
    }
    expect(accepted).toBeGreaterThan(100); // some flips land in free text and stay valid
  });

  it("random UTF-8 in a string: accepted only when the fatal decoder takes it", () => {
    const rng = new Rng(5);
    for (let k = 0; k < 3000; k++) {
      const junk = Array.from({ length: rng.int(1, 6) }, () => (rng.chance(0.25) ? 0x41 : rng.int(0x80, 0xff)));
      const head = enc.encode(`{"spans":[{${JSON.stringify(rich[0]).slice(1, -1)},"x":"`);
      const tail = enc.encode('"}]}');
      agrees(new Uint8Array([...head, ...junk, ...tail]), "doc");
    }
  });
});
