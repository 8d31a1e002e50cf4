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
  /** Lower-case names; a repeated header's values joined with ", " (RFC 9110 §5.3). A head
   * read from the addon's scan (http1-scan.ts) keeps the app-context headers only. */
  headers: ReadonlyMap<string, string>;
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
const PREFIX_BYTES = 8; // "HTTP/1.1" or "PROPFIND"

/** The longest head we look at: the capture is at most 4 KB, a request line no longer. */
const MAX_HEAD = 64 * 1024;

/**
 * The headers the agent reads (framing, and the app trace context: app-context.ts). parseHead
 * keeps only these unless asked for all: the others are skipped on the bytes, never turned
 * into strings.
 */
export const AGENT_HEADERS: readonly string[] = [
  "content-length", "transfer-encoding",
  "traceparent",
  "x-datadog-trace-id", "x-datadog-parent-id", "x-datadog-sampling-priority", "x-datadog-tags",
  "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags",
];

/** AGENT_HEADERS by name length, as lower-case bytes. */
const WANTED_BY_LENGTH: { name: string; bytes: Uint8Array }[][] = [];
for (const name of AGENT_HEADERS) (WANTED_BY_LENGTH[name.length] ??= []).push({ name, bytes: Buffer.from(name, "latin1") });

/** The wanted header named by buf[from, to), compared ignoring ASCII case, or undefined. */
function wantedName(buf: Uint8Array, from: number, to: number): string | undefined {
  const cands = WANTED_BY_LENGTH[to - from];
  if (cands === undefined) return undefined;
  outer: for (const c of cands) {
    const n = c.bytes;
    for (let i = 0; i < n.length; i++) {
      const b = buf[from + i];
      if (b !== n[i] && !(b >= 0x41 && b <= 0x5a && (b | 0x20) === n[i])) continue outer;
    }
    return c.name;
  }
  return undefined;
}

/** tchar (RFC 9110 §5.6.2): the bytes of a header name. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+.^_`|~-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

/** What String.prototype.trim removes and RegExp \s matches, among latin1 bytes. */
const isWs = (b: number) => b === 0x20 || (b >= 0x09 && b <= 0x0d) || b === 0xa0;
/** Method characters after the first: [A-Z0-9_-]. */
const isMethodByte = (b: number) => (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || b === 0x5f || b === 0x2d;

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
const SP_HTTP_1 = Buffer.from(" HTTP/1.", "latin1");

/** Methods as constant strings (no new string per request for these). */
const METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"].map((m) => ({ m, bytes: Buffer.from(m, "latin1") }));

export function methodOf(b: Buffer, from: number, to: number): string {
  outer: for (const { m, bytes } of METHODS) {
    if (bytes.length !== to - from) continue;
    for (let i = 0; i < bytes.length; i++) if (b[from + i] !== bytes[i]) continue outer;
    return m;
  }
  return latin1(b, from, to);
}

/** Buffer's own latin1 slice (what toString("latin1", ...) calls, without its checks). */
export const latin1 = (b: Buffer, from: number, to: number): string =>
  (b as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice(from, to);

const asBuffer = (buf: Uint8Array): Buffer => (Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength));

/** Index of the first LF in b[from, to), or -1. */
function lineFeed(b: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to; i++) if (b[i] === 0x0a) return i;
  return -1;
}

/** A shared empty header map for heads without a header of interest (never written to). */
export const NO_HEADERS: ReadonlyMap<string, string> = new Map();

/**
 * Parses the head of a message starting at `at`, on the bytes: only the start line's parts and
 * the values of the headers kept become strings. Returns null when no valid start line is
 * there (not HTTP/1.x, or cut before the end of the start line). Headers kept: AGENT_HEADERS,
 * or every one with `allHeaders`.
 */
export function parseHead(buf: Uint8Array, at = 0, allHeaders = false): HttpHead | null {
  const b = asBuffer(buf);
  const limit = Math.min(b.length, at + MAX_HEAD);
  const firstNl = lineFeed(b, at, limit);
  if (firstNl < 0) return cutRequestLine(latin1(b, at, limit), limit === b.length);
  const lineEnd = firstNl > at && b[firstNl - 1] === 0x0d ? firstNl - 1 : firstNl;
  const head = startLine(b, at, lineEnd);
  if (head === null) return null;
  let pos = firstNl + 1;
  let headers: Map<string, string> | undefined;
  let sawHeader = false; // a header line came (a folded line continues it)
  let last: string | undefined; // the last header line's key, when kept
  while (pos < limit) {
    const nl = lineFeed(b, pos, limit);
    if (nl < 0) break; // cut inside this line: keep what came before it
    const start = pos;
    const end = nl > start && b[nl - 1] === 0x0d ? nl - 1 : nl;
    pos = nl + 1;
    if (end === start) {
      head.headComplete = true;
      head.headBytes = pos - at;
      break;
    }
    const c0 = b[start];
    if ((c0 === 0x20 || c0 === 0x09) && sawHeader) {
      // obs-fold (RFC 9112 §5.2): a continuation of the previous value.
      if (last !== undefined) headers!.set(last, `${headers!.get(last)} ${trimmed(b, start, end)}`);
      continue;
    }
    let colon = start;
    while (colon < end && b[colon] !== 0x3a) colon++;
    if (colon === start || colon === end) continue;
    let key: string | undefined;
    if (allHeaders) {
      let i = start;
      while (i < colon && TCHAR[b[i]] === 1) i++;
      if (i < colon) continue;
      key = latin1(b, start, colon).toLowerCase();
    } else {
      key = wantedName(b, start, colon);
      if (key === undefined) {
        // Not kept, but a valid name still is the header a folded line would continue.
        let i = start;
        while (i < colon && TCHAR[b[i]] === 1) i++;
        if (i === colon) {
          sawHeader = true;
          last = undefined;
        }
        continue;
      }
    }
    const value = trimmed(b, colon + 1, end);
    headers ??= new Map();
    const prev = headers.get(key);
    headers.set(key, prev === undefined ? value : `${prev}, ${value}`);
    sawHeader = true;
    last = key;
  }
  if (headers !== undefined) head.headers = headers;
  return head;
}

/** b[from, to) as latin1 without leading and trailing whitespace. */
function trimmed(b: Buffer, from: number, to: number): string {
  while (from < to && isWs(b[from])) from++;
  while (to > from && isWs(b[to - 1])) to--;
  return from === to ? "" : latin1(b, from, to);
}

/** The start line b[at, end) (without its line end): request or status line, else null. */
function startLine(b: Buffer, at: number, end: number): HttpHead | null {
  // Request line: METHOD SP target SP HTTP/1.x, method [A-Z][A-Z0-9_-]{1,19}, target \S+.
  if (b[at] >= 0x41 && b[at] <= 0x5a) {
    let i = at + 1;
    while (i < end && isMethodByte(b[i])) i++;
    const mlen = i - at;
    if (mlen >= 2 && mlen <= 20 && i < end && b[i] === 0x20) {
      const tStart = i + 1;
      let j = tStart;
      let pathEnd = -1;
      while (j < end && !isWs(b[j])) {
        if (pathEnd < 0 && (b[j] === 0x3f || b[j] === 0x23)) pathEnd = j; // ? #
        j++;
      }
      // then exactly " HTTP/1.0" or " HTTP/1.1" (a CR before the LF was already cut)
      if (j > tStart && end - j === SP_HTTP_1.length + 1 && matches(b, j, SP_HTTP_1) && (b[end - 1] === 0x30 || b[end - 1] === 0x31)) {
        const method = methodOf(b, at, i);
        const target = latin1(b, tStart, j);
        // origin-form: the path is the target up to '?' or '#'; other forms: pathOf
        const path = b[tStart] !== 0x2f || method === "CONNECT" ? pathOf(method, target) : pathEnd < 0 ? target : target.slice(0, pathEnd - tStart);
        return newHead("request", b[end - 1] === 0x30 ? "1.0" : "1.1", method, target, path, undefined, false);
      }
      return null; // not a status line either: it starts with a method
    }
  }
  // Status line: HTTP/1.x SP [1-9][0-9][0-9] [SP reason], the reason without CR.
  if (end - at < 12 || !matches(b, at, HTTP_1)) return null;
  const v = b[at + 7];
  if ((v !== 0x30 && v !== 0x31) || b[at + 8] !== 0x20) return null;
  const d0 = b[at + 9], d1 = b[at + 10], d2 = b[at + 11];
  if (d0 < 0x31 || d0 > 0x39 || d1 < 0x30 || d1 > 0x39 || d2 < 0x30 || d2 > 0x39) return null;
  if (end > at + 12) {
    if (b[at + 12] !== 0x20) return null;
    for (let k = at + 13; k < end; k++) if (b[k] === 0x0d) return null;
  }
  const status = (d0 - 0x30) * 100 + (d1 - 0x30) * 10 + (d2 - 0x30);
  return newHead("response", v === 0x30 ? "1.0" : "1.1", undefined, undefined, undefined, status, false);
}

function matches(b: Uint8Array, at: number, what: Uint8Array): boolean {
  for (let i = 0; i < what.length; i++) if (b[at + i] !== what[i]) return false;
  return true;
}

/** Every head has every field (one object shape). */
function newHead(
  kind: HttpHead["kind"], version: HttpVersion | undefined, method: string | undefined, target: string | undefined,
  path: string | undefined, status: number | undefined, headComplete: boolean,
): HttpHead {
  return { kind, version, method, target, path, status, headers: NO_HEADERS, headComplete, headBytes: undefined };
}

// A request line the capture cut: the method and the start of the target, nothing after.
const CUT_REQUEST_LINE = /^([A-Z][A-Z0-9_-]{1,19}) (\S+)$/;

/** A request whose line did not fit in the capture still names its method and a path prefix. */
function cutRequestLine(text: string, atCaptureEnd: boolean): HttpHead | null {
  const m = atCaptureEnd ? CUT_REQUEST_LINE.exec(text) : null;
  if (!m) return null;
  return newHead("request", undefined, m[1], m[2], pathOf(m[1], m[2]), undefined, false);
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

/** framingOf's answers other than a length (>= 0). */
const CHUNKED = -1;
const CLOSE = -2;
const UNKNOWN = -3;

/**
 * How the body of this message is delimited (RFC 9112 §6.3). For a response, pass the method
 * of the request it answers (HEAD → no body), when known.
 */
export function bodyFraming(head: HttpHead, requestMethod?: string): BodyFraming {
  const f = framingOf(head, requestMethod);
  if (f >= 0) return { kind: "length", bytes: f };
  return f === CHUNKED ? { kind: "chunked" } : f === CLOSE ? { kind: "close" } : { kind: "unknown" };
}

/** bodyFraming as a number (no object per message): a length, CHUNKED, CLOSE or UNKNOWN. */
function framingOf(head: HttpHead, requestMethod?: string): number {
  if (head.kind === "response") {
    const s = head.status!;
    if (s < 200 || s === 204 || s === 304 || requestMethod === "HEAD") return 0;
    // A 2xx to CONNECT turns the connection into a tunnel: nothing more is HTTP.
    if (requestMethod === "CONNECT" && s < 300) return 0;
  }
  if (head.headers.size === 0) {
    if (!head.headComplete) return UNKNOWN; // the header may sit past the cut
    return head.kind === "request" ? 0 : CLOSE;
  }
  const te = head.headers.get("transfer-encoding");
  if (te !== undefined) {
    const codings = te.toLowerCase().split(",").map((c) => c.trim());
    if (codings[codings.length - 1] === "chunked") return CHUNKED;
    return head.kind === "response" ? CLOSE : UNKNOWN;
  }
  const cl = head.headers.get("content-length");
  if (cl !== undefined) {
    const n = decimal(cl);
    if (n >= 0) return n;
    // "5, 5" (a repeated header) is valid when every value agrees (RFC 9110 §8.6).
    const values = new Set(cl.split(",").map((v) => v.trim()));
    if (values.size !== 1) return UNKNOWN;
    const v = decimal([...values][0]);
    return v >= 0 ? v : UNKNOWN;
  }
  if (!head.headComplete) return UNKNOWN; // the header may sit past the cut
  return head.kind === "request" ? 0 : CLOSE;
}

/** 1 to 15 decimal digits as a number, else -1. */
function decimal(s: string): number {
  if (s.length === 0 || s.length > 15) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
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
  const framing = framingOf(head, requestMethod);
  if (framing >= 0) return head.headBytes + framing;
  if (framing === CHUNKED) {
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
  for (let guard = 0; ; guard++) {
    if (messages.length >= MAX_PIPELINED || guard > 4 * MAX_PIPELINED) return { messages };
    const head = at < buf.length && looksLikeResponse(buf, at) ? parseHead(buf, at) : null;
    if (!head || head.kind !== "response") {
      if (interimAt === undefined) return { messages, nextOffset: at };
      messages.push({ offset: interimAt, head: interimHead! }); // a 1xx whose final response was not captured
      return { messages };
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
