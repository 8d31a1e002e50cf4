/** OTLP/HTTP request bodies (ExportTraceServiceRequest) from linked spans, by the official serializers. */
import { JsonTraceSerializer, ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import type { ESpan, LinkedSpan } from "../../contract/espan.ts";
import { readableOf, ResourceCache } from "./otlp-span.ts";

export type OtlpProtocol = "http/json" | "http/protobuf";

export const CONTENT_TYPE: Record<OtlpProtocol, string> = {
  "http/json": "application/json",
  "http/protobuf": "application/x-protobuf",
};

/** A decided span to export: the eSpan as accepted, and its place in its trace ("" parent: a root). */
export interface ExportSpan {
  span: ESpan;
  traceId: string;
  parentId: string;
}

type Readable = Parameters<typeof JsonTraceSerializer.serializeRequest>[0];

export function encodeOtlp(spans: readonly LinkedSpan[], protocol: OtlpProtocol, resources = new ResourceCache()): Uint8Array {
  return serialize(spans.map((s) => readableOf(s, s.trace_id, s.parent_id, resources)), protocol);
}

/** The same from export items (no LinkedSpan copies); `resources` may be kept between calls. */
export function encodeExportSpans(items: readonly ExportSpan[], protocol: OtlpProtocol, resources = new ResourceCache()): Uint8Array {
  const readable = new Array(items.length);
  for (let i = 0; i < items.length; i++) readable[i] = readableOf(items[i].span, items[i].traceId, items[i].parentId, resources);
  return serialize(readable, protocol);
}

function serialize(readable: unknown[], protocol: OtlpProtocol): Uint8Array {
  // The serializers read the ReadableSpan fields our objects have; their type wants the SDK class.
  const spans = readable as unknown as Readable;
  const bytes = protocol === "http/json" ? JsonTraceSerializer.serializeRequest(spans) : ProtobufTraceSerializer.serializeRequest(spans);
  if (!bytes) throw new Error("OTLP serializer returned nothing");
  return bytes;
}
