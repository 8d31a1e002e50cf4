// The addon's HTTP/1.x scan (agent/native/src/http1_scan.c) against the JS parser it stands in
// for (agent/src/assemble/http1.ts): the same messages, offsets, lengths, heads and app
// headers, on generated payloads (pipelined, chunked, 1xx, cut, odd); and it answers natively
// for the common ones instead of always handing them back to JS.
import { describe, expect, it } from "vitest";
import { layout, scanHttp } from "../../../agent/native/index.js";
import { HttpScanView } from "../../../agent/src/assemble/http1-scan.ts";
import { AGENT_HEADERS, parseRequests, parseResponses, type ParsedMessage } from "../../../agent/src/assemble/http1.ts";

const L = layout();
const APP = L.scan.appHeaders;
const b = (s: string) => Buffer.from(s, "latin1");

/** The scan of `payload` read as a record's would be: payload, padding, then the scan. */
function scanned(payload: Buffer): HttpScanView | undefined {
  const scan = scanHttp(payload);
  if (scan.length === 0) return undefined;
  const scanAt = (payload.length + 7) & ~7;
  const buf = Buffer.alloc(scanAt + scan.length);
  payload.copy(buf, 0);
  scan.copy(buf, scanAt);
  const view = new HttpScanView(L);
  view.moveTo(buf, new DataView(buf.buffer, buf.byteOffset, buf.byteLength), scanAt, 0);
  return view;
}

const norm = (ms: ParsedMessage[]) =>
  ms.map((m) => ({
    offset: m.offset, bytes: m.bytes, kind: m.head.kind, version: m.head.version, method: m.head.method, target: m.head.target,
    path: m.head.path, status: m.head.status, headComplete: m.head.headComplete, headBytes: m.head.headBytes,
    // the scan keeps a request's app-context headers only (its framing is its own)
    headers: m.head.kind === "request" ? [...m.head.headers].filter(([k]) => APP.includes(k)).sort() : [],
  }));

let seed = 4242;
const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
const pick = <T,>(xs: readonly T[]) => xs[rnd(xs.length)];

function headers(): string {
  const names = [...APP, "Host", "Content-Type", "Accept", "X-Datadog-Trace-Id", "TRACEPARENT", "Bad Name", "B3"];
  const values = ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "123", " v ", "", "\t x \xa0", "a:b"];
  let h = "";
  for (let k = rnd(4); k > 0; k--) {
    h += rnd(30) === 0 ? ` folded\r\n` : `${pick(names)}${pick([": ", ":", " :"])}${pick(values)}${pick(["\r\n", "\r\n", "\n"])}`;
  }
  return h;
}

function body(): { head: string; body: string } {
  switch (rnd(12)) {
    case 0: case 1: return { head: "", body: "" };
    case 2: case 3: case 4: { const n = rnd(40); return { head: `Content-Length: ${n}\r\n`, body: "x".repeat(n) }; }
    case 5: return { head: "Content-Length: 100000\r\n", body: "xyz" }; // past the capture
    case 6: case 7: return { head: `Transfer-Encoding: ${pick(["chunked", "gzip, chunked", " Chunked "])}\r\n`, body: pick(["5\r\nhello\r\n0\r\n\r\n", "3;ext=1\r\nabc\r\n0\r\nT: v\r\n\r\n", "10\r\nabc", "zz\r\n"]) };
    case 8: return { head: "Transfer-Encoding: gzip\r\n", body: "" };
    case 9: case 10: return { head: `Content-Length: ${pick(["5, 5", "abc", "", "5, 6"])}\r\n`, body: "hello" };
    default: return { head: "Content-Length: 2\r\nContent-Length: 2\r\n", body: "ok" };
  }
}

function request(): string {
  const line = `${pick(["GET", "POST", "PUT", "PROPFIND", "M-SEARCH", "CONNECT"])} ${pick(["/", "/a/b?q=1", "/p#f", "/users/42", "*", "http://h:1/x?y", "h:443"])} ${pick(["HTTP/1.1", "HTTP/1.0"])}`;
  const { head, body: bd } = body();
  return `${line}\r\n${headers()}${head}\r\n${bd}`;
}

function response(): string {
  const status = pick(["200 OK", "204 No Content", "304 Not Modified", "100 Continue", "103 Early Hints", "101 Switching", "404 Not Found", "500"]);
  const { head, body: bd } = body();
  return `${pick(["HTTP/1.1", "HTTP/1.0"])} ${status}\r\n${headers()}${head}\r\n${bd}`;
}

describe("the addon's HTTP scan against the JS parser", () => {
  it("gives the same requests, whatever the payload", () => {
    let native = 0;
    for (let i = 0; i < 4000; i++) {
      let text = "";
      for (let k = 1 + rnd(3); k > 0; k--) text += request();
      const full = b(text);
      const payload = rnd(4) === 0 ? full.subarray(0, rnd(full.length + 1)) : full;
      const got = scanned(payload)?.requests();
      if (got === undefined) continue; // handed back to JS
      native++;
      expect(norm(got), JSON.stringify(payload.toString("latin1"))).toEqual(norm(parseRequests(payload)));
    }
    expect(native).toBeGreaterThan(500); // many generated ones are odd on purpose
  });

  it("gives the same responses, 1xx paired, and the same next offset", () => {
    let native = 0;
    for (let i = 0; i < 4000; i++) {
      let text = "";
      const n = 1 + rnd(3);
      for (let k = n; k > 0; k--) text += response();
      const full = b(text);
      const payload = rnd(4) === 0 ? full.subarray(0, rnd(full.length + 1)) : full;
      const methods = Array.from({ length: n }, () => pick(["GET", "POST", undefined]));
      const got = scanned(payload)?.responses(methods);
      if (got === undefined) continue;
      native++;
      const want = parseResponses(payload, methods);
      expect({ messages: norm(got.messages), nextOffset: got.nextOffset }, JSON.stringify(payload.toString("latin1"))).toEqual({
        messages: norm(want.messages), nextOffset: want.nextOffset,
      });
    }
    expect(native).toBeGreaterThan(500);
  });

  it("answers the common messages itself, app headers included", () => {
    const req = b("GET /bench?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n");
    const [m] = scanned(req)!.requests()!;
    expect(m).toMatchObject({ offset: 0, bytes: req.length, head: { method: "GET", target: "/bench?x=1", path: "/bench", version: "1.1", headComplete: true } });
    expect(m.head.headers.get("traceparent")).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    const node = b("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\nDate: Fri, 04 Dec 2026 16:08:21 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nok\n");
    expect(scanned(node)!.responses(["GET"])).toEqual({ messages: [expect.objectContaining({ offset: 0, bytes: node.length })], nextOffset: node.length });
  });

  it("keeps the app headers the JS parser reads (all but the framing ones)", () => {
    expect([...APP].sort()).toEqual(AGENT_HEADERS.filter((h) => h !== "content-length" && h !== "transfer-encoding").sort());
  });

  it("answers a first response whose length is not known yet: a chunked body cut by the capture, an end by close, a cut head", () => {
    for (const text of [
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\nabc",
      "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the connection closes",
      "HTTP/1.1 200 OK\r\nContent-Type: text/pl",
    ]) {
      const payload = b(text);
      const got = scanned(payload)?.responses(["GET"]);
      expect(got, text).toBeDefined();
      const want = parseResponses(payload, ["GET"]);
      expect({ messages: norm(got!.messages), nextOffset: got!.nextOffset }, text).toEqual({ messages: norm(want.messages), nextOffset: want.nextOffset });
    }
  });

  it("hands back what it does not restate: answers to HEAD or CONNECT, folded or repeated headers, absolute-form targets", () => {
    expect(scanned(b("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"))!.responses(["HEAD"])).toBeUndefined();
    expect(scanned(b("GET / HTTP/1.1\r\ntraceparent: a\r\n b\r\n\r\n"))!.requests()).toBeUndefined();
    expect(scanned(b("GET / HTTP/1.1\r\nb3: 1\r\nB3: 2\r\n\r\n"))!.requests()).toBeUndefined();
    expect(scanned(b("GET http://h/x HTTP/1.1\r\n\r\n"))!.requests()).toBeUndefined();
    expect(scanned(b("\x16\x03\x01 not http"))).toBeUndefined();
  });

  it("gives one view's requests the strings of the same target seen before, and never another target's", () => {
    // One view moved from record to record, as the decoder does. These targets have the same
    // length and the same second and last bytes (the view's cache slot), and paths of two lengths.
    const view = new HttpScanView(L);
    const targets = ["/abc?x", "/aZc?x", "/abc?x", "/a?bc?x".slice(0, 6), "/abcdx", "/aZc?x", "/abc?x"];
    const seen = new Map<string, { target: string; path: string }>();
    for (const [i, t] of targets.entries()) {
      const payload = b(`${i % 2 ? "POST" : "GET"} ${t} HTTP/1.1\r\nContent-Length: 0\r\n\r\n`);
      const scan = scanHttp(payload);
      const scanAt = (payload.length + 7) & ~7;
      const buf = Buffer.alloc(scanAt + scan.length);
      payload.copy(buf, 0);
      scan.copy(buf, scanAt);
      view.moveTo(buf, new DataView(buf.buffer, buf.byteOffset, buf.byteLength), scanAt, 0);
      const [m] = view.requests()!;
      expect(norm([m])).toEqual(norm(parseRequests(payload)));
      const before = seen.get(t);
      if (before) {
        expect(m.head.target).toBe(before.target);
        expect(m.head.path).toBe(before.path);
      }
      seen.set(t, { target: m.head.target!, path: m.head.path! });
    }
    expect(seen.size).toBe(4);
  });
});
