/**
 * eSpans from a stream: NDJSON (one per line) or one JSON document `{"spans": [...]}`, told apart
 * by the first non-empty line. Each span is checked against ESPAN.md; a bad one is reported with
 * its place ("line 7" or "spans[3]") and every bad field.
 */
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { validateESpan, type ESpan, type FieldError } from "../../contract/espan.ts";

export interface Rejected {
  where: string;
  errors: FieldError[];
}

export interface ReadResult {
  spans: ESpan[];
  rejected: Rejected[];
}

export async function readSpans(input: Readable, onProgress?: (read: number) => void): Promise<ReadResult> {
  const spans: ESpan[] = [];
  const rejected: Rejected[] = [];
  const take = (value: unknown, where: string) => {
    const v = validateESpan(value);
    if (v.ok) spans.push(v.span);
    else rejected.push({ where, errors: v.errors });
    if (onProgress && (spans.length + rejected.length) % 50_000 === 0) onProgress(spans.length + rejected.length);
  };

  const lines = createInterface({ input, crlfDelay: Infinity });
  let mode: "unknown" | "ndjson" | "document" = "unknown";
  let doc: string[] = [];
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (mode === "document") {
      doc.push(line);
      continue;
    }
    if (line.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      if (mode === "unknown") {
        mode = "document"; // a pretty-printed document: its first line is not JSON alone
        doc = [line];
        continue;
      }
      rejected.push({ where: `line ${lineNo}`, errors: [{ field: "(line)", reason: `is not JSON: ${(e as Error).message}` }] });
      continue;
    }
    if (mode === "unknown" && isDocument(value)) {
      value.spans.forEach((s, i) => take(s, `spans[${i}]`));
      mode = "document";
      doc = [];
      continue;
    }
    mode = "ndjson";
    take(value, `line ${lineNo}`);
  }
  if (mode === "document" && doc.length > 0) {
    let value: unknown;
    try {
      value = JSON.parse(doc.join("\n"));
    } catch (e) {
      throw new InputError(`input is neither NDJSON nor a JSON document: ${(e as Error).message}`);
    }
    if (!isDocument(value)) throw new InputError('a JSON document must be an object with a "spans" array');
    value.spans.forEach((s, i) => take(s, `spans[${i}]`));
  }
  return { spans, rejected };
}

function isDocument(v: unknown): v is { spans: unknown[] } {
  return typeof v === "object" && v !== null && Array.isArray((v as { spans?: unknown }).spans);
}

/** Input that cannot be read at all (as opposed to single bad spans). */
export class InputError extends Error {}
