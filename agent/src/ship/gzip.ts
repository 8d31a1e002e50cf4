// How batch bodies are gzipped (the POST body, Content-Encoding: gzip, and the spool's files).
import { gzipSync } from "node:zlib";
import { gzip as addonGzip } from "../../native/index.js";

/**
 * Level 1: batches of eSpans are repetitive JSON, and level 1 packs them to ~51 B a span
 * against ~46 B at the default level 6, for a quarter of the CPU (measured on 500-span
 * batches: 1.6 against 5.8 µs a span, as much as everything else the agent does per span).
 * Compressed on the event loop: ~0.3 ms a 500-span batch, and less CPU in all than handing it
 * to libuv's pool (measured ~0.6 against ~0.85 µs a span: the stream machinery and the thread
 * hand-off), which on a busy host runs on the same cores anyway.
 */
export const GZIP_OPTIONS = { level: 1 } as const;

let nativeGzip: typeof addonGzip | undefined = addonGzip;

/**
 * `body` gzipped at GZIP_OPTIONS' level: by the addon's ISA-L (igzip) or libdeflate when the
 * system has them (the same format: a 10,000-span batch took 0.49 µs a span with igzip, 1.25
 * with libdeflate, about twice that with zlib; agent/native/src/addon.cc), else by node:zlib.
 */
export function gzipBody(body: Uint8Array): Buffer {
  if (nativeGzip) {
    try {
      const gz = nativeGzip(body, GZIP_OPTIONS.level);
      if (gz) return gz;
    } catch {
      // the addon is not built or cannot load here: zlib from now on
    }
    nativeGzip = undefined;
  }
  return gzipSync(body, GZIP_OPTIONS);
}
