/**
 * OTLP/protobuf request bodies (ExportTraceServiceRequest) written straight from eSpans in one
 * pass: the bytes the official serializer (@opentelemetry/otlp-transformer's
 * ProtobufTraceSerializer over otlp-span.ts's ReadableSpan shape) writes, byte for byte
 * (test/unit/export checks it), at a fraction of its cost. That serializer walks every span
 * twice (a size estimate, then the write), through a ReadableSpan and an attributes object per
 * span, and writes each attribute key afresh; under the ingest bench at sampling rate 1 it was a
 * fifth of workerd's thread. Here attribute keys, tags and each resource are encoded once.
 */
import type { ESpan } from "../../contract/espan.ts";
import { ESPAN_FIELDS } from "../../contract/espan.ts";
import type { ExportSpan } from "./otlp-encode.ts";
import { hrTimeOf, resourceAttributes, SCOPE, SKIP, spanAttributes, statusCode } from "./otlp-span.ts";

const NS_PER_S = 1_000_000_000;
const utf8 = new TextEncoder();

const varintSize = (v: number): number => (v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5);

/** A growing byte buffer with the protobuf primitives (as the official ProtobufWriter encodes them). */
class Writer {
  buf: Uint8Array;
  pos = 0;

  /** `size`: the starting capacity (a request body's writer starts at 64 KiB; a key's, small). */
  constructor(size = 1 << 16) {
    this.buf = new Uint8Array(size);
  }

  room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A varint of a length or a small unsigned value (< 2^32); the caller made room (5 bytes). */
  uvarint(v: number): void {
    const buf = this.buf;
    while (v > 0x7f) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  /** Any integer as the official writeVarint encodes it (negative: two's complement, 10 bytes). */
  varint(value: number): void {
    this.room(10);
    if (value >= 0 && value <= 0xffffffff) return this.uvarint(value >>> 0);
    let low: number;
    let high: number;
    if (value >= 0) {
      low = value >>> 0;
      high = (value / 0x100000000) >>> 0;
    } else {
      const abs = Math.abs(value);
      low = ~(abs >>> 0) >>> 0;
      high = ~((abs / 0x100000000) >>> 0) >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    while (high > 0 || low > 0x7f) {
      this.buf[this.pos++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    this.buf[this.pos++] = low & 0x7f;
  }

  double(v: number): void {
    this.room(8);
    new DataView(this.buf.buffer).setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  /** An HrTime as fixed64 unix nanoseconds (the official writeHrTimeAsFixed64's arithmetic). */
  hrTime(seconds: number, nanos: number): void {
    const lowerNs = (seconds & 0xffff) * NS_PER_S;
    const upperNs = ((seconds / 0x10000) >>> 0) * NS_PER_S;
    const low32WithCarry = (lowerNs >>> 0) + ((((upperNs & 0xffff) * 0x10000) >>> 0)) + nanos;
    const low = low32WithCarry >>> 0;
    const high = (Math.floor(lowerNs / 0x100000000) + ((upperNs / 0x10000) >>> 0) + Math.floor(low32WithCarry / 0x100000000)) >>> 0;
    this.room(8);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = low & 0xff;
    buf[p++] = (low >>> 8) & 0xff;
    buf[p++] = (low >>> 16) & 0xff;
    buf[p++] = low >>> 24;
    buf[p++] = high & 0xff;
    buf[p++] = (high >>> 8) & 0xff;
    buf[p++] = (high >>> 16) & 0xff;
    buf[p++] = high >>> 24;
    this.pos = p;
  }

  /** Hex digits as bytes (the official hexToBinary: any case), with their length first. */
  hex(s: string): void {
    const n = s.length >> 1;
    this.room(5 + n);
    this.uvarint(n);
    const buf = this.buf;
    for (let i = 0; i < s.length; i += 2) buf[this.pos++] = (hexValue(s.charCodeAt(i)) << 4) | hexValue(s.charCodeAt(i + 1));
  }

  /** A length-delimited field whose length is not known yet: reserves one byte, returns where it starts. */
  open(): number {
    this.room(1);
    return this.pos++;
  }

  /** Closes open(): the length in the fewest bytes, the body moved up when it needs more than one. */
  close(at: number): void {
    const len = this.pos - at - 1;
    const size = varintSize(len);
    if (size > 1) {
      this.room(size - 1);
      this.buf.copyWithin(at + size, at + 1, this.pos);
      this.pos += size - 1;
    }
    const end = this.pos;
    this.pos = at;
    this.uvarint(len);
    this.pos = end;
  }

  take(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    return out;
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  return c - 55;
}

/** True when `s` is all ASCII (its UTF-8 is its char codes). */
function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 127) return false;
  return true;
}

/** Bytes of a KeyValue's key part (field 1: tag, length, key), by key. */
const keyParts = new Map<string, Uint8Array>();
function keyPart(key: string): Uint8Array {
  let b = keyParts.get(key);
  if (!b) {
    const w = new Writer(key.length * 3 + 6);
    w.byte(0x0a);
    writeString(w, key);
    b = w.take();
    if (keyParts.size < 4096) keyParts.set(key, b);
  }
  return b;
}

/** A KeyValue's head, up to its value's field tag: its tag, its length `kv`, the key part, 0x12. The caller made room. */
function kvHead(w: Writer, tag: number, key: Uint8Array, kv: number): void {
  w.buf[w.pos++] = tag;
  w.uvarint(kv);
  w.buf.set(key, w.pos);
  w.pos += key.length;
  w.buf[w.pos++] = 0x12;
}

/** One attribute (`tag`: the tag byte of its repeated KeyValue field): KeyValue{key, value: AnyValue}. */
function writeAttr(w: Writer, tag: number, key: Uint8Array, value: unknown): void {
  if (typeof value === "number" && value >= 0 && value <= 0xffffffff && Number.isInteger(value)) {
    const any = 1 + varintSize(value);
    const kv = key.length + 2 + any;
    w.room(8 + kv);
    kvHead(w, tag, key, kv);
    w.buf[w.pos++] = any;
    w.buf[w.pos++] = 0x18;
    w.uvarint(value);
    return;
  }
  if (typeof value === "string" && value.length < 0x3f00 && isAscii(value)) {
    // The common case, sized up front: no length to patch.
    const n = value.length;
    const any = 1 + varintSize(n) + n;
    const kv = key.length + 1 + varintSize(any) + any;
    w.room(11 + kv);
    kvHead(w, tag, key, kv);
    const buf = w.buf;
    w.uvarint(any);
    buf[w.pos++] = 0x0a;
    w.uvarint(n);
    for (let i = 0; i < n; i++) buf[w.pos++] = value.charCodeAt(i);
    return;
  }
  w.byte(tag);
  const kv = w.open();
  w.bytes(key);
  w.byte(0x12);
  const any = w.open();
  writeAnyValue(w, value);
  w.close(any);
  w.close(kv);
}

const MIN_I64 = -(2 ** 63);
const MAX_I64 = 2 ** 63;

/** An AnyValue's fields (the official writeAnyValue). */
function writeAnyValue(w: Writer, value: unknown): void {
  const t = typeof value;
  if (t === "string") {
    w.byte(0x0a);
    writeString(w, value as string);
  } else if (t === "boolean") {
    w.byte(0x10);
    w.byte(value ? 1 : 0);
  } else if (t === "number") {
    const v = value as number;
    if (Number.isInteger(v) && v >= MIN_I64 && v < MAX_I64) {
      w.byte(0x18);
      w.varint(v);
    } else {
      w.byte(0x21);
      w.double(v);
    }
  } else if (value instanceof Uint8Array) {
    w.byte(0x3a);
    w.room(5);
    w.uvarint(value.length);
    w.bytes(value);
  } else if (Array.isArray(value)) {
    w.byte(0x2a);
    const arr = w.open();
    for (const item of value) {
      w.byte(0x0a);
      const at = w.open();
      writeAnyValue(w, item);
      w.close(at);
    }
    w.close(arr);
  } else if (t === "object" && value != null) {
    w.byte(0x32);
    const list = w.open();
    const obj = value as Record<string, unknown>;
    for (const k in obj) {
      if (!Object.prototype.hasOwnProperty.call(obj, k)) continue;
      writeAttr(w, 0x0a, keyPart(k), obj[k]);
    }
    w.close(list);
  }
}

function writeString(w: Writer, s: string): void {
  if (isAscii(s)) {
    w.room(5 + s.length);
    w.uvarint(s.length);
    const buf = w.buf;
    for (let i = 0; i < s.length; i++) buf[w.pos++] = s.charCodeAt(i);
  } else {
    const b = utf8.encode(s);
    w.room(5);
    w.uvarint(b.length);
    w.bytes(b);
  }
}

/** Every attribute of an object (`tag`: the field's tag byte), in its key order. */
function writeAttributes(w: Writer, tag: number, attrs: Record<string, unknown>): void {
  for (const k in attrs) {
    if (!Object.prototype.hasOwnProperty.call(attrs, k)) continue;
    writeAttr(w, tag, keyPart(k), attrs[k]);
  }
}

// Span attributes (field 9: tag 0x4a), in spanAttributes' order.
const A = 0x4a;
const K = {
  transport: keyPart("network.transport"),
  protoName: keyPart("network.protocol.name"),
  localAddr: keyPart("network.local.address"),
  localPort: keyPart("network.local.port"),
  peerAddr: keyPart("network.peer.address"),
  peerPort: keyPart("network.peer.port"),
  serverAddr: keyPart("server.address"),
  serverPort: keyPart("server.port"),
  threadId: keyPart("thread.id"),
  reqSeq: keyPart("espan.req_seq"),
  respSeq: keyPart("espan.resp_seq"),
  clientAddr: keyPart("client.address"),
  clientPort: keyPart("client.port"),
  method: keyPart("http.request.method"),
  route: keyPart("http.route"),
  urlPath: keyPart("url.path"),
  statusCode: keyPart("http.response.status_code"),
  protoVersion: keyPart("network.protocol.version"),
  threadTrace: keyPart("espan.thread_trace_id"),
};
/** What spanAttributes writes for the remaining top-level fields: known ones get `espan.` (SKIP: none). */
const ESPAN_KEYS = new Map<string, Uint8Array>(ESPAN_FIELDS.filter((f) => !SKIP.has(f)).map((f) => [f, keyPart(`espan.${f}`)]));

/**
 * A span's attributes (spanAttributes), written from the span's fields. A span with an
 * `attributes` object or a field the contract does not name may repeat a key written before
 * (the object keeps its first place, the last value) or order its keys otherwise (integer-like
 * keys first): those go through spanAttributes' object.
 */
function writeSpanAttributes(w: Writer, s: ESpan): void {
  let plain = s.attributes === undefined;
  if (plain) {
    for (const k in s) {
      if (!SKIP.has(k) && !ESPAN_KEYS.has(k)) {
        plain = false;
        break;
      }
    }
  }
  if (!plain) return writeAttributes(w, A, spanAttributes(s));
  const server = s.kind === "entry";
  writeAttr(w, A, K.transport, "tcp");
  writeAttr(w, A, K.protoName, s.l7_proto);
  writeAttr(w, A, K.localAddr, s.src_ip);
  writeAttr(w, A, K.localPort, s.src_port);
  writeAttr(w, A, K.peerAddr, s.dst_ip);
  writeAttr(w, A, K.peerPort, s.dst_port);
  writeAttr(w, A, K.serverAddr, server ? s.src_ip : s.dst_ip);
  writeAttr(w, A, K.serverPort, server ? s.src_port : s.dst_port);
  writeAttr(w, A, K.threadId, s.tid);
  writeAttr(w, A, K.reqSeq, s.req_seq);
  writeAttr(w, A, K.respSeq, s.resp_seq);
  if (server) {
    writeAttr(w, A, K.clientAddr, s.dst_ip);
    writeAttr(w, A, K.clientPort, s.dst_port);
  }
  if (s.http_method !== undefined) writeAttr(w, A, K.method, s.http_method);
  if (s.http_route !== undefined && server) writeAttr(w, A, K.route, s.http_route);
  if (s.http_route !== undefined) writeAttr(w, A, K.urlPath, s.http_route);
  if (s.http_status_code !== undefined) writeAttr(w, A, K.statusCode, s.http_status_code);
  if (s.http_version !== undefined) writeAttr(w, A, K.protoVersion, s.http_version);
  if (s.thread_trace_id) writeAttr(w, A, K.threadTrace, s.thread_trace_id);
  for (const k in s) {
    const key = ESPAN_KEYS.get(k);
    if (key === undefined) continue;
    const v = s[k];
    if (v === undefined || v === null || typeof v === "object") continue;
    writeAttr(w, A, key, v);
  }
}

/** The Resource message of a span's process (field 1 of ResourceSpans, tag included), by process. */
export class ProtoResources {
  private readonly byKey = new Map<string, Uint8Array>();
  constructor(private readonly max = 10_000) {}

  get(s: ESpan): { key: string; bytes: Uint8Array } {
    const key = `${s.service}\u0000${s.host}\u0000${s.pid}\u0000${s.process_name}`;
    let bytes = this.byKey.get(key);
    if (!bytes) {
      if (this.byKey.size >= this.max) this.byKey.clear();
      const w = new Writer(256);
      w.byte(0x0a);
      const at = w.open();
      // The attributes otlp-span.ts's ResourceCache gives the resource, in its order (a null or
      // undefined value is left out, as the Resource's attributes leave it out).
      const attrs: Record<string, unknown> = resourceAttributes(s);
      for (const k in attrs) if (attrs[k] != null) writeAttr(w, 0x0a, keyPart(k), attrs[k]);
      w.byte(0x10); // dropped_attributes_count
      w.byte(0);
      w.close(at);
      bytes = w.take();
      this.byKey.set(key, bytes);
    }
    return { key, bytes };
  }
}

/** ScopeSpans.scope (field 1, tag included): the InstrumentationScope {name, version}. */
const SCOPE_BYTES = (() => {
  const w = new Writer();
  w.byte(0x0a);
  const at = w.open();
  w.byte(0x0a);
  writeString(w, SCOPE.name);
  if (SCOPE.version) {
    w.byte(0x12);
    writeString(w, SCOPE.version);
  }
  w.close(at);
  return w.take();
})();

const KIND_SERVER = 1;
const KIND_CLIENT = 2;

/** One Span message (tag included: ScopeSpans field 2). */
function writeSpan(w: Writer, it: ExportSpan): void {
  const s = it.span;
  const server = s.kind === "entry";
  w.byte(0x12);
  const at = w.open();
  w.byte(0x0a);
  w.hex(it.traceId);
  w.byte(0x12);
  w.hex(s.span_id);
  if (it.parentId) {
    w.byte(0x22);
    w.hex(it.parentId);
  }
  w.byte(0x2a);
  writeString(w, s.operation || `${s.l7_proto} ${server ? "server" : "client"}`);
  w.byte(0x30);
  w.byte((server ? KIND_SERVER : KIND_CLIENT) + 1); // the API's kind + 1
  const [secs, nanos] = hrTimeOf(s.start_ns);
  w.byte(0x39);
  w.hrTime(secs, nanos);
  const [endSecs, endNanos] = hrTimeOf(s.start_ns, s.duration_ns);
  w.byte(0x41);
  w.hrTime(endSecs, endNanos);
  writeSpanAttributes(w, s);
  w.room(16);
  const buf = w.buf;
  // dropped attributes, events, links: 0; status {code}; flags (sampled, has-is-remote, is-remote).
  buf[w.pos++] = 0x50;
  buf[w.pos++] = 0;
  buf[w.pos++] = 0x60;
  buf[w.pos++] = 0;
  buf[w.pos++] = 0x70;
  buf[w.pos++] = 0;
  buf[w.pos++] = 0x7a;
  buf[w.pos++] = 2;
  buf[w.pos++] = 0x18;
  buf[w.pos++] = statusCode(s);
  buf[w.pos++] = 0x85;
  buf[w.pos++] = 0x01;
  buf[w.pos++] = 0x01;
  buf[w.pos++] = it.parentId && server ? 0x03 : 0x01;
  buf[w.pos++] = 0;
  buf[w.pos++] = 0;
  w.close(at);
}

/** Encodes ExportTraceServiceRequests; one instance reuses its buffer and resources between calls. */
export class OtlpProtoEncoder {
  private readonly w = new Writer();
  constructor(private readonly resources = new ProtoResources()) {}

  encode(items: readonly ExportSpan[]): Uint8Array {
    // Spans by resource, resources in the order they first appear (as the official serializer groups them).
    const groups = new Map<string, { bytes: Uint8Array; spans: ExportSpan[] }>();
    for (const it of items) {
      const r = this.resources.get(it.span);
      const g = groups.get(r.key);
      if (g) g.spans.push(it);
      else groups.set(r.key, { bytes: r.bytes, spans: [it] });
    }
    const w = this.w;
    w.pos = 0;
    for (const g of groups.values()) {
      w.byte(0x0a); // ExportTraceServiceRequest.resource_spans
      const rs = w.open();
      w.bytes(g.bytes);
      w.byte(0x12); // ResourceSpans.scope_spans
      const ss = w.open();
      w.bytes(SCOPE_BYTES);
      for (const it of g.spans) writeSpan(w, it);
      w.close(ss);
      w.close(rs);
    }
    return w.take();
  }
}
