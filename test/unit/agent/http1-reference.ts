// The regex-and-string HTTP head parser the agent used before it parsed on bytes (agent/src/
// assemble/http1.ts at 75c979f), kept as the reference the byte parser is checked against
// (http1.test.ts): same heads, same headers, for generated and odd inputs.
import { pathOf, type HttpHead } from "../../../agent/src/assemble/http1.ts";

const REQUEST_LINE = /^([A-Z][A-Z0-9_-]{1,19}) (\S+) HTTP\/1\.([01])\r?$/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9][0-9]{2})(?: .*)?\r?$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const MAX_HEAD = 64 * 1024;
const LF_CRLF = Buffer.from("\n\r\n", "latin1");
const LF_LF = Buffer.from("\n\n", "latin1");

function headEnd(b: Buffer, at: number, limit: number): number {
  const crlf = b.indexOf(LF_CRLF, at);
  const lf = b.indexOf(LF_LF, at);
  let end = limit;
  if (crlf >= 0) end = Math.min(end, crlf + 3);
  if (lf >= 0) end = Math.min(end, lf + 2);
  return end;
}

/**
 * Parses the head of a message starting at `at`. Returns null when no valid start line is
 * there (not HTTP/1.x, or cut before the end of the start line).
 */
export function referenceParseHead(buf: Uint8Array, at = 0): HttpHead | null {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const end = headEnd(b, at, Math.min(b.length, at + MAX_HEAD));
  const text = b.toString("latin1", at, end);
  const firstNl = text.indexOf("\n");
  if (firstNl < 0) return cutRequestLine(text, end === b.length);
  const startLine = text.slice(0, firstNl);
  let head: HttpHead;
  const req = REQUEST_LINE.exec(startLine);
  if (req) {
    head = {
      kind: "request",
      version: req[3] === "0" ? "1.0" : "1.1",
      method: req[1],
      target: req[2],
      path: pathOf(req[1], req[2]),
      headers: new Map(),
      headComplete: false,
    };
  } else {
    const resp = STATUS_LINE.exec(startLine);
    if (!resp) return null;
    head = {
      kind: "response",
      version: resp[1] === "0" ? "1.0" : "1.1",
      status: Number(resp[2]),
      headers: new Map(),
      headComplete: false,
    };
  }
  let pos = firstNl + 1;
  let last: string | undefined;
  for (;;) {
    const nl = text.indexOf("\n", pos);
    if (nl < 0) break; // cut inside this line: keep what came before it
    const line = text.charCodeAt(nl - 1) === 13 ? text.slice(pos, nl - 1) : text.slice(pos, nl);
    pos = nl + 1;
    if (line.length === 0) {
      head.headComplete = true;
      head.headBytes = pos;
      break;
    }
    const c0 = line.charCodeAt(0);
    if ((c0 === 0x20 || c0 === 0x09) && last !== undefined) {
      // obs-fold (RFC 9112 §5.2): a continuation of the previous value.
      (head.headers as Map<string, string>).set(last, `${head.headers.get(last)} ${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon);
    if (!HEADER_NAME.test(name)) continue;
    const key = name.toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prev = head.headers.get(key);
    (head.headers as Map<string, string>).set(key, prev === undefined ? value : `${prev}, ${value}`);
    last = key;
  }
  return head;
}



const CUT_REQUEST_LINE = /^([A-Z][A-Z0-9_-]{1,19}) (\S+)$/;

/** A request whose line did not fit in the capture still names its method and a path prefix. */
function cutRequestLine(text: string, atCaptureEnd: boolean): HttpHead | null {
  const m = atCaptureEnd ? CUT_REQUEST_LINE.exec(text) : null;
  if (!m) return null;
  return { kind: "request", method: m[1], target: m[2], path: pathOf(m[1], m[2]), headers: new Map(), headComplete: false };
}
