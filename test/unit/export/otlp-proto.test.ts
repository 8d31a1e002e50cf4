/**
 * The one-pass protobuf encoder (src/export/otlp-proto.ts) writes the bytes the official
 * serializer writes from otlp-span.ts's ReadableSpan shape: byte for byte, for generated traffic
 * and for spans with every unusual field shape the contract lets through.
 */
import { describe, expect, it } from "vitest";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import type { ESpan } from "../../../contract/espan.ts";
import type { ExportSpan } from "../../../src/export/otlp-encode.ts";
import { OtlpProtoEncoder, ProtoResources } from "../../../src/export/otlp-proto.ts";
import { readableOf, ResourceCache } from "../../../src/export/otlp-span.ts";
import { generateTraffic } from "../../gen/traffic.ts";
import { loadScenarios } from "../../scenarios.case.ts";

function official(items: ExportSpan[]): Uint8Array {
  const resources = new ResourceCache();
  const readable = items.map((it) => readableOf(it.span, it.traceId, it.parentId, resources));
  return ProtobufTraceSerializer.serializeRequest(readable as never)!;
}

const hex = (n: number, digits: number) => n.toString(16).padStart(digits, "0");

function linked(spans: ESpan[]): ExportSpan[] {
  // Parents: the span before in the list, every third span a root; trace ids of any case.
  return spans.map((span, i) => ({
    span,
    traceId: i % 5 === 0 ? `ABCDEF${hex(i + 1, 26)}` : `abcdef${hex((i >> 2) + 1, 26)}`,
    parentId: i % 3 === 0 ? "" : spans[i - 1].span_id,
  }));
}

describe("OTLP protobuf encoding", () => {
  it("equals the official serializer's bytes for generated traffic, in steps of 250", () => {
    const { spans } = generateTraffic({ seed: 7, traces: 400, clientRootFraction: 0.5, untracedCallerFraction: 0.1, dbCallFraction: 0.3, natFraction: 0.2, appInstrumentedFraction: 0.5 });
    const items = linked(spans);
    const enc = new OtlpProtoEncoder();
    expect(items.length).toBeGreaterThan(1000);
    for (let i = 0; i < items.length; i += 250) {
      const step = items.slice(i, i + 250);
      expect(Buffer.from(enc.encode(step)).equals(Buffer.from(official(step)))).toBe(true);
    }
  });

  it("equals them for the scenarios' spans", () => {
    const enc = new OtlpProtoEncoder();
    for (const s of loadScenarios()) {
      const items = linked(s.spans as ESpan[]);
      expect(Buffer.from(enc.encode(items)).equals(Buffer.from(official(items))), s.name).toBe(true);
    }
  });

  it("equals them for unusual spans: attributes, unknown and integer-like fields, non-ASCII, big, negative and fractional numbers", () => {
    const base = generateTraffic({ seed: 3, traces: 5 }).spans[0];
    const variants: ESpan[] = [
      { ...base, attributes: { "thread.id": "x", "db.system": "postgresql", n: 3, b: true, f: 1.5 } },
      { ...base, custom: "kept", "7": "first", "server.port": 1, nested: { a: 1 }, nothing: null },
      { ...base, operation: "GET /caf\u00e9 \u{1F600}", service: "s\u00e9rvice", http_route: "/\u00fc", host: "h\u00f6st" },
      { ...base, bytes_read: 2 ** 40, bytes_written: 0, extra_neg: -5, extra_big: 2 ** 60, extra_frac: 0.25, extra_bool: false },
      { ...base, kind: "entry", http_status_code: 503, status: "error", operation: "" },
      { ...base, kind: "exit", http_status_code: 404, http_version: "1.1", http_method: "POST", thread_trace_id: null },
      { ...base, app_trace_id: "0af7651916cd43dd8448eb211c80319c", app_parent_id: "B7AD6B7169203331", app_sampled: true },
      { ...base, start_ns: "999", duration_ns: 5_000_000_001 },
      { ...base, start_ns: "18446744073709551615", duration_ns: 0, http_route: "x".repeat(20_000) },
      { ...base, attributes: { long: "y".repeat(300), list: [1, "a", true] as unknown as string, e: "\u00e9".repeat(100) } },
      { ...base, pid: 4294967295, tid: 0, process_name: "" },
    ];
    const items = linked(variants);
    const enc = new OtlpProtoEncoder();
    expect(Buffer.from(enc.encode(items)).equals(Buffer.from(official(items)))).toBe(true);
    for (const it of items) expect(Buffer.from(enc.encode([it])).equals(Buffer.from(official([it])))).toBe(true);
  });

  it("groups spans by process in the order processes first appear, across a bounded resource cache", () => {
    const { spans } = generateTraffic({ seed: 11, traces: 100 });
    const items = linked(spans);
    const enc = new OtlpProtoEncoder(new ProtoResources(3));
    // The cache (3 processes) is cleared again and again within the step: its groups stay by process.
    expect(Buffer.from(enc.encode(items)).equals(Buffer.from(official(items)))).toBe(true);
    expect(enc.encode([]).length).toBe(official([]).length);
  });
});
