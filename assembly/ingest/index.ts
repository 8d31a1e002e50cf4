// The ingest's fast path for span batches, for its host (src/ingest/span-parser.ts): bytes in,
// engine records, packed spans and their bounds out; and the blocks a shard holds spans in.
//
//   inputBuffer(len) → ptr       room for a body; then parse(len, format, mode, firstRef, arrival)
//   parse(...) → n | -reason     n spans: packed at packedPtr(), bounds at boundsPtr(), records at recordsPtr()
//   hold(first, count) → block   spans of the last parse kept in a block (blockBytes* for the log)
//   compact(block, bits), release(block), spanJson(block, i) → len at textPtr()
import "./abort";
import { fieldsInit } from "./fields";
import { literalsInit } from "./parse";
import * as S from "./scratch";
import * as L from "../layout";

export { parse, packedLength, declinedAt, FORMAT_DOC, FORMAT_ARRAY, FORMAT_NDJSON, FORMAT_PACKED, MODE_STRICT, MODE_TRUSTED } from "./parse";
export { hold, compact, spanJson, release, byteLength as blockByteLength, blockSize } from "./held";
import { bytesOf } from "./held";

/** The engine input record's size this module writes (the host checks it against the engine's). */
export const RECORD_SIZE: u32 = L.IN_SIZE;
/** Where a record keeps req_seq and resp_seq (the host splits batches by them). */
export const RECORD_KEY: u32 = L.IN_KEY;

export function init(): void {
  fieldsInit();
  literalsInit();
}

export function inputBuffer(len: usize): usize {
  S.ensureInput(len);
  return S.inBase;
}

export function packedPtr(): usize {
  return S.outBase;
}

export function boundsPtr(): usize {
  return S.boundsBase;
}

export function recordsPtr(): usize {
  return S.recBase;
}

export function textPtr(): usize {
  return S.textBase;
}

export function blockBytes(block: usize): usize {
  return bytesOf(block);
}

/** Room for a bitmap of `bytes` bytes (compact's argument); reuses the text buffer. */
export function bitsBuffer(bytes: usize): usize {
  S.ensureText(bytes);
  return S.textBase;
}
