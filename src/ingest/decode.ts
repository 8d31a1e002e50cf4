/**
 * A request body → validated eSpans (ESPAN.md "Request"): JSON `{"spans": [...]}` or NDJSON,
 * optionally gzip, within a size limit. A bad span is named by its index and field; a batch with
 * any bad span is rejected whole (nothing stored), the answer listing every one.
 */
import { validateESpan, type ESpan } from "../../contract/espan.ts";
import { IngestError, type RejectedSpan } from "../errors.ts";

/** A decompressed body may be this many times the wire limit (and no more: a zip bomb). */
const INFLATE_FACTOR = 8;

export async function decodeBatch(req: Request, maxBody: number): Promise<ESpan[]> {
  const body = await readBody(req, maxBody);
  return parseBatch(body.text, body.ndjson).spans;
}

/** A request body as text (checked, decompressed), and whether it is NDJSON. */
export interface BatchBody {
  text: string;
  ndjson: boolean;
}

/** A request body as bytes (checked, decompressed; UTF-8 not checked yet), and whether it is NDJSON. */
export interface BatchBytes {
  bytes: Uint8Array;
  ndjson: boolean;
}

/** Reads a request body within the limits (415, 413, 400 as IngestError); no parsing yet. */
export async function readBody(req: Request, maxBody: number): Promise<BatchBody> {
  const body = await readBodyBytes(req, maxBody);
  return { text: utf8(body.bytes), ndjson: body.ndjson };
}

/** The same as bytes: the fast path (span-parser.ts) reads bytes, and checks UTF-8 itself. */
export async function readBodyBytes(req: Request, maxBody: number): Promise<BatchBytes> {
  const type = (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  const ndjson = type === "application/x-ndjson" || type === "application/ndjson";
  if (type !== "application/json" && !ndjson) {
    throw new IngestError(415, `content-type must be application/json or application/x-ndjson, not "${type || "(none)"}"`);
  }
  const length = Number(req.headers.get("content-length") ?? "0");
  if (length > maxBody) throw new IngestError(413, `body of ${length} bytes is over the limit of ${maxBody} (ESPAN_MAX_BODY)`);
  const encoding = (req.headers.get("content-encoding") ?? "identity").trim().toLowerCase();
  if (encoding !== "gzip" && encoding !== "identity") {
    throw new IngestError(415, `content-encoding must be gzip or identity, not "${encoding}"`);
  }
  return { bytes: await readBytes(req, maxBody, encoding === "gzip"), ndjson };
}

/** The validated (and normalised) eSpans of a body; a 400 IngestError naming every bad one. */
export function parseBatch(text: string, ndjson: boolean): { spans: ESpan[] } {
  return ndjson ? decodeNdjson(text) : decodeJson(text);
}

/**
 * The spans of a body logged as it came by an earlier version (valid, and unchanged by the
 * validator: no validation again), read as JSON.parse reads them.
 */
export function spansOfText(text: string, ndjson: boolean): ESpan[] {
  if (!ndjson) return (JSON.parse(text) as { spans: ESpan[] }).spans;
  const spans: ESpan[] = [];
  for (const line of text.split("\n")) if (line.trim() !== "") spans.push(JSON.parse(line) as ESpan);
  return spans;
}

async function readBytes(req: Request, maxBody: number, gzip: boolean): Promise<Uint8Array> {
  if (!req.body) return new Uint8Array(0);
  const length = req.headers.get("content-length");
  if (!gzip && length !== null) {
    // The length is known and within the limit (checked above): the runtime reads it in one piece,
    // without a stream step in JS per chunk.
    let bytes: ArrayBuffer;
    try {
      bytes = await req.arrayBuffer();
    } catch (e) {
      throw new IngestError(400, `body could not be read: ${(e as Error).message}`);
    }
    if (bytes.byteLength > maxBody) throw new IngestError(413, `body is over the limit of ${maxBody} bytes (ESPAN_MAX_BODY)`);
    return new Uint8Array(bytes);
  }
  let wire = 0;
  const counted = req.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        wire += chunk.byteLength;
        if (wire > maxBody) ctl.error(new IngestError(413, `body is over the limit of ${maxBody} bytes (ESPAN_MAX_BODY)`));
        else ctl.enqueue(chunk);
      },
    }),
  );
  // (Node's and workerd's typings of DecompressionStream differ; both take and give bytes.)
  const stream = gzip ? counted.pipeThrough(new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>) : counted;
  const limit = gzip ? maxBody * INFLATE_FACTOR : maxBody;
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > limit) throw new IngestError(413, `decompressed body is over ${limit} bytes (${INFLATE_FACTOR} × ESPAN_MAX_BODY)`);
      chunks.push(chunk);
    }
  } catch (e) {
    if (e instanceof IngestError) throw e;
    throw new IngestError(400, gzip ? `body is not valid gzip: ${(e as Error).message}` : `body could not be read: ${(e as Error).message}`);
  }
  if (chunks.length === 1) return chunks[0];
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return all;
}

/** A body's text, or a 400 when it is not UTF-8 (a BOM is dropped, as the WHATWG decoder does). */
export function utf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new IngestError(400, "body is not UTF-8");
  }
}

function decodeJson(text: string): { spans: ESpan[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new IngestError(400, `malformed JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || !Array.isArray((doc as { spans?: unknown }).spans)) {
    throw new IngestError(400, 'a JSON body must be an object with a "spans" array');
  }
  return validateAll((doc as { spans: unknown[] }).spans);
}

function decodeNdjson(text: string): { spans: ESpan[] } {
  const values: unknown[] = [];
  const rejected: RejectedSpan[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      values.push(JSON.parse(line));
    } catch (e) {
      rejected.push({ index: values.length, field: "(line)", reason: `is not JSON: ${(e as Error).message}` });
      values.push(undefined);
    }
  }
  return validateAll(values, rejected);
}

function validateAll(values: unknown[], rejected: RejectedSpan[] = []): { spans: ESpan[] } {
  const spans: ESpan[] = [];
  values.forEach((v, index) => {
    if (v === undefined && rejected.some((r) => r.index === index)) return;
    const r = validateESpan(v);
    if (r.ok) spans.push(r.span);
    else for (const e of r.errors) rejected.push({ index, ...e });
  });
  if (rejected.length > 0) {
    rejected.sort((a, b) => a.index - b.index);
    const first = rejected[0];
    throw new IngestError(400, `${new Set(rejected.map((r) => r.index)).size} invalid span(s); the batch was not accepted (first: span ${first.index}: ${first.field} ${first.reason})`, { rejected });
  }
  return { spans };
}
