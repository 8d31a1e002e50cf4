// HTTP/1.0 and HTTP/1.1 message heads and framing (RFC 9112), parsed from the first bytes of a
// message as the kernel captured them.
//
// Only the first ≤4 KB of each message (the first read or write of it) is captured, so every
// function here works on what is there: a head cut short still gives its start line and the
// complete header lines before the cut (`headComplete: false`). Lengths are given only when
// the captured bytes prove them; a caller must treat `undefined` as "not known", never as 0.
//
// Header names are compared case-insensitively (RFC 9110 §5.1): they are stored lower-cased.
// The seed matched names exactly as sent and missed `Traceparent` (reference/datakit.md §2.3).

export type HttpVersion = "1.0" | "1.1";

export interface HttpHead {
  kind: "request" | "response";
  /** Undefined only for a request line cut by the capture (a URL longer than it). */
  version?: HttpVersion;
  /** Request: method and request-target as sent, and the path without query or fragment. */
  method?: string;
  target?: string;
  path?: string;
  /** Response: the status code. */
  status?: number;
  /** Lower-case names; a repeated header's values joined with ", " (RFC 9110 §5.3). */
  headers: Map<string, string>;
  /** The blank line ending the head was captured. */
  headComplete: boolean;
  /** Bytes of the head including its final blank line (only when headComplete). */
  headBytes?: number;
}

/** How the body of a message is delimited (RFC 9112 §6.3). */
export type BodyFraming =
  | { kind: "length"; bytes: number }
  | { kind: "chunked" }
  /** Response without a length: the body ends when the server closes the connection. */
  | { kind: "close" }
  /** The head says nothing usable (conflicting Content-Length, cut before the header, ...). */
  | { kind: "unknown" };

// A method is a token (RFC 9110 §9.1); real ones are upper-case letters, sometimes with '-'.
const REQUEST_LINE = /^([A-Z][A-Z0-9_-]{1,19}) (\S+) HTTP\/1\.([01])\r?$/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9][0-9]{2})(?: .*)?\r?$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const PREFIX_BYTES = 8; // "HTTP/1.1" or "PROPFIND"

/** The longest head we look at: the capture is at most 4 KB, a request line no longer. */
const MAX_HEAD = 64 * 1024;

/** Cheap test on the first bytes: could a request line start at `at`? */
export function looksLikeRequest(buf: Uint8Array, at = 0): boolean {
  let i = at;
  const end = Math.min(buf.length, at + 21);
  while (i < end && ((buf[i] >= 0x41 && buf[i] <= 0x5a) || buf[i] === 0x2d || buf[i] === 0x5f)) i++;
  return i - at >= 2 && i < buf.length && buf[i] === 0x20;
}

/** Cheap test on the first bytes: could a status line start at `at`? */
export function looksLikeResponse(buf: Uint8Array, at = 0): boolean {
  if (buf.length - at < PREFIX_BYTES) return false;
  for (let i = 0; i < HTTP_1.length; i++) if (buf[at + i] !== HTTP_1[i]) return false;
  return true;
}

const HTTP_1 = Buffer.from("HTTP/1.", "latin1");
const LF_CRLF = Buffer.from("\n\r\n", "latin1");
const LF_LF = Buffer.from("\n\n", "latin1");

/** End of the head (after its blank line) when it lies within the buffer, else its length:
 * only the head is turned into a string, not the body after it (up to 4 KB of it). */
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
export function parseHead(buf: Uint8Array, at = 0): HttpHead | null {
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
      head.headers.set(last, `${head.headers.get(last)} ${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon);
    if (!HEADER_NAME.test(name)) continue;
    const key = name.toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prev = head.headers.get(key);
    head.headers.set(key, prev === undefined ? value : `${prev}, ${value}`);
    last = key;
  }
  return head;
}

// A request line the capture cut: the method and the start of the target, nothing after.
const CUT_REQUEST_LINE = /^([A-Z][A-Z0-9_-]{1,19}) (\S+)$/;

/** A request whose line did not fit in the capture still names its method and a path prefix. */
function cutRequestLine(text: string, atCaptureEnd: boolean): HttpHead | null {
  const m = atCaptureEnd ? CUT_REQUEST_LINE.exec(text) : null;
  if (!m) return null;
  return { kind: "request", method: m[1], target: m[2], path: pathOf(m[1], m[2]), headers: new Map(), headComplete: false };
}

/** The path of a request-target: origin-form without query/fragment; absolute-form's path. */
export function pathOf(method: string, target: string): string {
  if (method === "CONNECT" || target === "*") return target; // authority-form, asterisk-form
  let t = target;
  const scheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(t); // absolute-form (to proxies)
  if (scheme) t = t.slice(scheme[0].length) || "/";
  const cut = t.search(/[?#]/);
  return cut < 0 ? t : t.slice(0, cut);
}

/**
 * How the body of this message is delimited (RFC 9112 §6.3). For a response, pass the method
 * of the request it answers (HEAD → no body), when known.
 */
export function bodyFraming(head: HttpHead, requestMethod?: string): BodyFraming {
  if (head.kind === "response") {
    const s = head.status!;
    if (s < 200 || s === 204 || s === 304 || requestMethod === "HEAD") return { kind: "length", bytes: 0 };
    // A 2xx to CONNECT turns the connection into a tunnel: nothing more is HTTP.
    if (requestMethod === "CONNECT" && s < 300) return { kind: "length", bytes: 0 };
  }
  const te = head.headers.get("transfer-encoding");
  if (te !== undefined) {
    const codings = te.toLowerCase().split(",").map((c) => c.trim());
    if (codings[codings.length - 1] === "chunked") return { kind: "chunked" };
    return head.kind === "response" ? { kind: "close" } : { kind: "unknown" };
  }
  const cl = head.headers.get("content-length");
  if (cl !== undefined) {
    // "5, 5" (a repeated header) is valid when every value agrees (RFC 9110 §8.6).
    const values = new Set(cl.split(",").map((v) => v.trim()));
    if (values.size !== 1) return { kind: "unknown" };
    const v = [...values][0];
    if (!/^[0-9]{1,15}$/.test(v)) return { kind: "unknown" };
    return { kind: "length", bytes: Number(v) };
  }
  if (!head.headComplete) return { kind: "unknown" }; // the header may sit past the cut
  return head.kind === "request" ? { kind: "length", bytes: 0 } : { kind: "close" };
}

/**
 * Bytes of a chunked body starting at `at` (chunks, last chunk, trailers, final CRLF), when
 * its end lies within the captured bytes; otherwise undefined.
 */
export function chunkedBodyBytes(buf: Uint8Array, at: number): number | undefined {
  const text = Buffer.from(buf.buffer, buf.byteOffset + at, buf.length - at).toString("latin1");
  let pos = 0;
  for (let guard = 0; guard < 100_000; guard++) {
    const nl = text.indexOf("\n", pos);
    if (nl < 0) return undefined;
    const sizeText = text.slice(pos, nl).replace(/\r$/, "").split(";")[0].trim();
    if (!/^[0-9a-fA-F]{1,12}$/.test(sizeText)) return undefined;
    const size = parseInt(sizeText, 16);
    pos = nl + 1;
    if (size === 0) {
      // Trailer section, then the blank line that ends the message.
      for (;;) {
        const tl = text.indexOf("\n", pos);
        if (tl < 0) return undefined;
        const line = text.slice(pos, tl).replace(/\r$/, "");
        pos = tl + 1;
        if (line.length === 0) return pos;
      }
    }
    pos += size;
    if (text.startsWith("\r\n", pos)) pos += 2;
    else if (text.startsWith("\n", pos)) pos += 1;
    else return undefined; // cut inside the chunk, or malformed
  }
  return undefined;
}

/**
 * Total bytes of the message whose head starts at `at` (head + body), when the captured bytes
 * prove it: a complete head and a Content-Length (the body itself may lie past the capture), or
 * a chunked body whose end was captured. Undefined when not known.
 */
export function messageBytes(buf: Uint8Array, at: number, head: HttpHead, requestMethod?: string): number | undefined {
  if (!head.headComplete || head.headBytes === undefined) return undefined;
  const framing = bodyFraming(head, requestMethod);
  if (framing.kind === "length") return head.headBytes + framing.bytes;
  if (framing.kind === "chunked") {
    const body = chunkedBodyBytes(buf, at + head.headBytes);
    return body === undefined ? undefined : head.headBytes + body;
  }
  return undefined;
}

/** One message found in a captured payload, at its byte offset from the payload's start. */
export interface ParsedMessage {
  offset: number;
  head: HttpHead;
  /** Head + body, when known (see messageBytes). */
  bytes?: number;
}

/** Upper bound on messages taken from one capture (pipelining): a 4 KB capture of minimal
 * requests holds ~200; more than this is not HTTP we can make sense of. */
const MAX_PIPELINED = 256;

/**
 * The requests in one captured request message: the first at offset 0, then each next one
 * right after the previous one's end, while that end is known and a request line follows in
 * the captured bytes (pipelining, RFC 9112 §9.3.2).
 */
export function parseRequests(buf: Uint8Array): ParsedMessage[] {
  const out: ParsedMessage[] = [];
  let at = 0;
  while (out.length < MAX_PIPELINED && at < buf.length && looksLikeRequest(buf, at)) {
    const head = parseHead(buf, at);
    if (!head || head.kind !== "request") break;
    const bytes = messageBytes(buf, at, head);
    out.push({ offset: at, head, bytes });
    if (bytes === undefined || bytes === 0) break;
    at += bytes;
  }
  return out;
}

/**
 * The responses in one captured response message, answering requests with these methods in
 * order. An interim 1xx response (100 Continue, 103 Early Hints; not 101) belongs to the same
 * request as the final response after it: the pair is one message here, starting at the 1xx,
 * with the final head when it was captured. Also returns the offset right after the last
 * response whose length is known, which may lie past the capture (the next pipelined response
 * starts there).
 */
export function parseResponses(buf: Uint8Array, methods: (string | undefined)[]): { messages: ParsedMessage[]; nextOffset?: number } {
  const messages: ParsedMessage[] = [];
  let at = 0;
  let interimAt: number | undefined; // start of a 1xx that still waits for its final response
  let interimHead: HttpHead | undefined;
  const closeInterim = () => {
    if (interimAt !== undefined) messages.push({ offset: interimAt, head: interimHead! });
  };
  for (let guard = 0; ; guard++) {
    if (messages.length >= MAX_PIPELINED || guard > 4 * MAX_PIPELINED) return { messages };
    const head = at < buf.length && looksLikeResponse(buf, at) ? parseHead(buf, at) : null;
    if (!head || head.kind !== "response") {
      closeInterim();
      return interimAt === undefined ? { messages, nextOffset: at } : { messages };
    }
    const bytes = messageBytes(buf, at, head, methods[messages.length]);
    const interim = head.status! < 200 && head.status !== 101;
    if (interim && bytes !== undefined) {
      if (interimAt === undefined) {
        interimAt = at;
        interimHead = head;
      }
      at += bytes;
      continue;
    }
    const offset = interimAt ?? at;
    messages.push({ offset, head, bytes: bytes === undefined ? undefined : at + bytes - offset });
    interimAt = undefined;
    interimHead = undefined;
    if (bytes === undefined) return { messages };
    at += bytes;
  }
}
