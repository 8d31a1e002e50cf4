/** OTLP/HTTP request bodies (ExportTraceServiceRequest) from linked spans, by the official serializers. */
import { JsonTraceSerializer, ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import type { LinkedSpan } from "../../contract/espan.ts";
import { ResourceCache, toReadableSpan } from "./otlp-span.ts";

export type OtlpProtocol = "http/json" | "http/protobuf";

export const CONTENT_TYPE: Record<OtlpProtocol, string> = {
  "http/json": "application/json",
  "http/protobuf": "application/x-protobuf",
};

export function encodeOtlp(spans: readonly LinkedSpan[], protocol: OtlpProtocol): Uint8Array {
  const resources = new ResourceCache();
  // The serializers read the ReadableSpan fields our objects have; their type wants the SDK class.
  const readable = spans.map((s) => toReadableSpan(s, resources)) as unknown as Parameters<typeof JsonTraceSerializer.serializeRequest>[0];
  const bytes = protocol === "http/json" ? JsonTraceSerializer.serializeRequest(readable) : ProtobufTraceSerializer.serializeRequest(readable);
  if (!bytes) throw new Error("OTLP serializer returned nothing");
  return bytes;
}
