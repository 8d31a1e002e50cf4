// A batch of eSpans as the ingest takes it: the body `{"spans":[...]}` in UTF-8 (exactly
// JSON.stringify's bytes) plus where each span's JSON lies in it. What the shipper queues,
// sends, splits (413), trims (400) and spills to disk; it holds no span objects.
//
// Why bytes, written as each span is made: spans held as objects until their batch was sent
// outlived V8's young generation (a batch waits behind the one in flight), so every span was
// copied by the scavenger and promoted, and its JSON was written after its fields had gone
// cold in the cache. Written at once, a span's object dies young and its JSON is written from
// a hot cache line; the batch is ~500 bytes a span where the objects were several times that,
// and is kept gzipped (~60 bytes a span) from the moment it is cut: what is POSTed and spooled.
import type { ESpan } from "../../../contract/espan.ts";
import { gunzipSync } from "node:zlib";
import { gzipBody } from "./gzip.ts";
import { SpanJsonWriter } from "./span-json.ts";

const OPEN = Buffer.from('{"spans":[');
const CLOSE = Buffer.from("]}");
const COMMA = 0x2c;

export class JsonBatch {
  private plain: Buffer | undefined;
  private gz: Buffer | undefined;

  /** `starts[i]`..`ends[i]`: span i's JSON in the body. The body is given as is, or gzipped
   * (`gz`, with `body` undefined); either is made from the other when first asked for. Built
   * by JsonBatchBuilder, of() and fromBody(). */
  constructor(
    body: Buffer | undefined,
    private readonly starts: Uint32Array,
    private readonly ends: Uint32Array,
    gz?: Buffer,
  ) {
    if (body === undefined && gz === undefined) throw new Error("JsonBatch: a body or its gzip");
    this.plain = body;
    this.gz = gz;
  }

  /** The body, `{"spans":[...]}` in UTF-8. */
  get body(): Buffer {
    return (this.plain ??= gunzipSync(this.gz!));
  }

  /** The body gzipped (gzip.ts), as POSTed and spooled. */
  gzipped(): Buffer {
    return (this.gz ??= gzipBody(this.plain!));
  }

  /** The batch of these spans (tests, spans read back from the spool). */
  static of(spans: readonly ESpan[]): JsonBatch {
    const b = new JsonBatchBuilder();
    for (const s of spans) b.add(s);
    return b.take();
  }

  /** A body as sent (a spool file's content, gunzipped; `gz`, that file's bytes): its spans
   * are located by encoding them again, which gives the same bytes. Throws on anything but
   * `{"spans":[...]}`. */
  static fromBody(body: Buffer, gz?: Buffer): JsonBatch {
    const parsed = JSON.parse(body.toString("utf8")) as { spans?: unknown };
    if (!Array.isArray(parsed.spans)) throw new Error('not a batch: no "spans" array');
    const b = new JsonBatchBuilder();
    for (const s of parsed.spans as ESpan[]) b.add(s);
    return b.takePlain(gz);
  }

  get length(): number {
    return this.starts.length;
  }

  /** A batch of the spans at these indexes, in this order. */
  pick(indexes: readonly number[]): JsonBatch {
    let bytes = OPEN.length + CLOSE.length + Math.max(0, indexes.length - 1);
    for (const i of indexes) bytes += this.ends[i] - this.starts[i];
    const body = Buffer.allocUnsafe(bytes);
    const starts = new Uint32Array(indexes.length);
    const ends = new Uint32Array(indexes.length);
    let n = OPEN.copy(body, 0);
    for (let k = 0; k < indexes.length; k++) {
      if (k > 0) body[n++] = COMMA;
      const i = indexes[k];
      starts[k] = n;
      n += this.body.copy(body, n, this.starts[i], this.ends[i]);
      ends[k] = n;
    }
    CLOSE.copy(body, n);
    return new JsonBatch(body, starts, ends);
  }

  /** The spans from..to (exclusive) as a batch. */
  slice(from: number, to = this.length): JsonBatch {
    const indexes: number[] = [];
    for (let i = from; i < Math.min(to, this.length); i++) indexes.push(i);
    return this.pick(indexes);
  }

  /** The spans as objects (tests, diagnostics). */
  spans(): ESpan[] {
    return (JSON.parse(this.body.toString("utf8")) as { spans: ESpan[] }).spans;
  }
}

/** Spans in, batches out: each span is written when it is added, into a buffer kept from batch
 * to batch (the writer also remembers runs of fields that repeat: span-json.ts). */
export class JsonBatchBuilder {
  private readonly w = new SpanJsonWriter();

  constructor() {
    this.w.bytes(OPEN);
  }

  /** Spans added since the last take(). */
  get length(): number {
    return this.w.starts.length;
  }

  add(span: ESpan): void {
    this.w.item(span);
  }

  /**
   * The spans added since the last take(), as a batch (possibly empty), gzipped now from the
   * writer's buffer: no copy of the body (~1 MB a batch) is made, and a queued batch holds
   * ~60 bytes a span instead of ~500.
   */
  take(): JsonBatch {
    const w = this.w;
    w.bytes(CLOSE);
    const batch = new JsonBatch(undefined, Uint32Array.from(w.starts), Uint32Array.from(w.ends), gzipBody(w.buf.subarray(0, w.n)));
    this.reset();
    return batch;
  }

  /** take() with a copy of the body instead (and its gzip when known). */
  takePlain(gz?: Buffer): JsonBatch {
    const w = this.w;
    w.bytes(CLOSE);
    const body = Buffer.allocUnsafe(w.n);
    w.buf.copy(body, 0, 0, w.n);
    const batch = new JsonBatch(body, Uint32Array.from(w.starts), Uint32Array.from(w.ends), gz);
    this.reset();
    return batch;
  }

  private reset(): void {
    const w = this.w;
    w.n = 0;
    w.bytes(OPEN);
    w.clearItems();
  }
}
