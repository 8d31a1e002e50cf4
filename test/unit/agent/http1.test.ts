import { describe, expect, it } from "vitest";
import {
  AGENT_HEADERS, bodyFraming, chunkedBodyBytes, looksLikeRequest, looksLikeResponse, messageBytes, parseHead, parseRequests,
  parseResponses, pathOf,
} from "../../../agent/src/assemble/http1.ts";
import { referenceParseHead } from "./http1-reference.ts";

const b = (s: string) => Buffer.from(s, "latin1");

describe("HTTP/1.x heads", () => {
  it("parses a request line, headers in any case, and the path without the query", () => {
    const h = parseHead(b("GET /users/42?expand=1#top HTTP/1.1\r\nHost: x\r\nTraceParent: abc\r\nX-Two: a\r\nx-two: b\r\n\r\n"), 0, true)!;
    expect(h.kind).toBe("request");
    expect(h.method).toBe("GET");
    expect(h.target).toBe("/users/42?expand=1#top");
    expect(h.path).toBe("/users/42");
    expect(h.version).toBe("1.1");
    expect(h.headers.get("traceparent")).toBe("abc");
    expect(h.headers.get("x-two")).toBe("a, b");
    expect(h.headComplete).toBe(true);
    expect(h.headBytes).toBe(b("GET /users/42?expand=1#top HTTP/1.1\r\nHost: x\r\nTraceParent: abc\r\nX-Two: a\r\nx-two: b\r\n\r\n").length);
  });

  it("keeps only the headers the agent reads unless asked for all, whatever their case", () => {
    const text = "GET / HTTP/1.1\r\nHost: x\r\nCONTENT-length: 3\r\nX-Other: y\r\n  folded\r\nX-B3-TraceId: 0af7651916cd43dd\r\n b\r\nTraceparent: t\r\n\r\n";
    const h = parseHead(b(text))!;
    expect([...h.headers]).toEqual([["content-length", "3"], ["x-b3-traceid", "0af7651916cd43dd b"], ["traceparent", "t"]]);
    expect([...parseHead(b(text), 0, true)!.headers.keys()]).toEqual(["host", "content-length", "x-other", "x-b3-traceid", "traceparent"]);
    expect(parseHead(b(text), 0, true)!.headers.get("x-other")).toBe("y folded");
    expect(parseHead(b("HTTP/1.1 200 OK\r\nDate: x\r\n\r\n"))!.headers.size).toBe(0);
  });

  it("parses HTTP/1.0 status lines, with or without a reason", () => {
    expect(parseHead(b("HTTP/1.0 200 OK\r\nServer: SimpleHTTP\r\n\r\n"))).toMatchObject({ kind: "response", version: "1.0", status: 200 });
    expect(parseHead(b("HTTP/1.1 204\r\n\r\n"))).toMatchObject({ kind: "response", version: "1.1", status: 204, headComplete: true });
  });

  it("keeps the start line and the complete header lines of a head cut by the capture", () => {
    const h = parseHead(b("POST /api HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer eyJhbGciOi"), 0, true)!;
    expect(h.method).toBe("POST");
    expect(h.headComplete).toBe(false);
    expect(h.headBytes).toBeUndefined();
    expect([...h.headers.keys()]).toEqual(["host"]);
    expect(bodyFraming(h)).toEqual({ kind: "unknown" }); // Content-Length may be past the cut
  });

  it("returns null for what is not HTTP/1.x, or a start line cut short", () => {
    expect(parseHead(b("\x16\x03\x01\x02\x00\x01\x00"))).toBeNull();
    expect(parseHead(b("GET /a HTTP/2.0\r\n\r\n"))).toBeNull();
    expect(parseHead(b("*1\r\n$4\r\nPING\r\n"))).toBeNull();
    expect(looksLikeRequest(b("get / HTTP/1.1\r\n"))).toBe(false);
    expect(looksLikeResponse(b("HTTP/1.1 200 OK"))).toBe(true);
  });

  it("a request line cut by the capture (a URL longer than it) still gives the method and a path prefix", () => {
    const h = parseHead(b(`GET /search/${"q".repeat(100)}`))!;
    expect(h).toMatchObject({ kind: "request", method: "GET", headComplete: false });
    expect(h.version).toBeUndefined();
    expect(h.path).toBe(`/search/${"q".repeat(100)}`);
    expect(parseRequests(b(`GET /search/${"q".repeat(100)}`)).map((m) => m.bytes)).toEqual([undefined]);
  });

  it("accepts bare LF line ends and folded header lines", () => {
    const h = parseHead(b("GET / HTTP/1.0\nX-A: one\n two\n\n"), 0, true)!;
    expect(h.headers.get("x-a")).toBe("one two");
    expect(h.headBytes).toBe(b("GET / HTTP/1.0\nX-A: one\n two\n\n").length);
  });

  it("takes the path of absolute-form, asterisk-form and CONNECT targets", () => {
    expect(pathOf("GET", "http://example.com:8080/a/b?q=1")).toBe("/a/b");
    expect(pathOf("GET", "http://example.com")).toBe("/");
    expect(pathOf("OPTIONS", "*")).toBe("*");
    expect(pathOf("CONNECT", "example.com:443")).toBe("example.com:443");
  });
});

describe("HTTP/1.x framing", () => {
  it("Content-Length, repeated equal values, conflicting values", () => {
    expect(bodyFraming(parseHead(b("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"))!)).toEqual({ kind: "length", bytes: 12 });
    expect(bodyFraming(parseHead(b("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"))!)).toEqual({ kind: "length", bytes: 5 });
    expect(bodyFraming(parseHead(b("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"))!)).toEqual({ kind: "unknown" });
  });

  it("responses without a body: HEAD, 1xx, 204, 304; without a length: until close", () => {
    const ok = parseHead(b("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"))!;
    expect(bodyFraming(ok, "HEAD")).toEqual({ kind: "length", bytes: 0 });
    expect(bodyFraming(parseHead(b("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"))!)).toEqual({ kind: "length", bytes: 0 });
    expect(bodyFraming(parseHead(b("HTTP/1.0 200 OK\r\nServer: x\r\n\r\n"))!)).toEqual({ kind: "close" });
    expect(bodyFraming(parseHead(b("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))!)).toEqual({ kind: "length", bytes: 0 });
  });

  it("chunked bodies: length when the end was captured, unknown when cut", () => {
    const body = "4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nX-Trailer: t\r\n\r\n";
    expect(chunkedBodyBytes(b(body), 0)).toBe(body.length);
    expect(chunkedBodyBytes(b("4\r\nWiki\r\n6\r\nped"), 0)).toBeUndefined();
    expect(chunkedBodyBytes(b("zz\r\n"), 0)).toBeUndefined();
    const msg = `HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${body}`;
    const h = parseHead(b(msg))!;
    expect(bodyFraming(h)).toEqual({ kind: "chunked" });
    expect(messageBytes(b(msg), 0, h)).toBe(msg.length);
  });

  it("knows a message's length past the capture from Content-Length", () => {
    const msg = b("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nxxxx");
    const h = parseHead(msg)!;
    expect(messageBytes(msg, 0, h)).toBe(h.headBytes! + 100000);
  });
});

describe("pipelining", () => {
  it("splits several requests in one message at their offsets", () => {
    const r1 = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    const r2 = "POST /b?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    const r3 = "GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
    const got = parseRequests(b(r1 + r2 + r3));
    expect(got.map((m) => [m.offset, m.head.method, m.head.path, m.bytes])).toEqual([
      [0, "GET", "/a", r1.length],
      [r1.length, "POST", "/b", r2.length],
      [r1.length + r2.length, "GET", "/c", r3.length],
    ]);
  });

  it("stops at a request whose end it cannot know (chunked body past the capture)", () => {
    const r1 = "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc";
    expect(parseRequests(b(r1 + "GET /next HTTP/1.1\r\n\r\n")).length).toBe(1);
  });

  it("splits responses, keeps a 100 Continue with its final response, and gives the next offset past the capture", () => {
    const a = "HTTP/1.1 100 Continue\r\n\r\n";
    const a2 = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    const c = "HTTP/1.1 200 OK\r\nContent-Length: 50000\r\n\r\nxx";
    const { messages, nextOffset } = parseResponses(b(a + a2 + c), ["POST", "GET", "GET"]);
    expect(messages.map((m) => [m.offset, m.head.status, m.bytes])).toEqual([
      [0, 201, a.length + a2.length],
      [a.length + a2.length, 200, c.length - 2 + 50000],
    ]);
    expect(nextOffset).toBe(a.length + a2.length + c.length - 2 + 50000);
  });

  it("a lone 1xx at the end of the capture is reported, with no next offset", () => {
    const { messages, nextOffset } = parseResponses(b("HTTP/1.1 100 Continue\r\n\r\n"), ["POST"]);
    expect(messages.map((m) => m.head.status)).toEqual([100]);
    expect(nextOffset).toBeUndefined();
  });
});

describe("the byte parser against the regex parser it replaced", () => {
  const norm = (h: ReturnType<typeof parseHead>, only?: readonly string[]) =>
    h && {
      kind: h.kind, version: h.version, method: h.method, target: h.target, path: h.path, status: h.status,
      headComplete: h.headComplete, headBytes: h.headBytes,
      headers: [...h.headers].filter(([k]) => !only || only.includes(k)),
    };

  it("gives the same heads for generated messages, valid and not", () => {
    let seed = 12345;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    const pick = <T,>(xs: T[]) => xs[rnd(xs.length)];
    const starts = [
      () => `${pick(["GET", "POST", "PROPFIND", "M-SEARCH", "get", "G", "A".repeat(21), "X_Y"])} ${pick(["/", "/a/b?q=1", "/p#f", "*", "http://h:1/x?y", "h:443", "/\xa0x", "/tab\tx", ""])} ${pick(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "http/1.1", "HTTP/1.1 "])}`,
      () => `${pick(["HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/2"])} ${pick(["200", "204", "100", "099", "20", "2000", "404"])}${pick(["", " OK", " Not Found", " a\rb", "x", " "])}`,
      () => pick(["\x16\x03\x01", "*1", "", "PING"]),
    ];
    const names = [...AGENT_HEADERS, "Host", "Content-Type", "X-Two", "Bad Name", "", "Trace\xa0parent", "TRANSFER-ENCODING", "B3", "Content-Length"];
    const values = ["", " v ", "0af7651916cd43dd", "chunked", "gzip, chunked", "12", "5, 5", "\t x \xa0", "a:b"];
    const eols = ["\r\n", "\n", "\r\r\n"];
    for (let i = 0; i < 4000; i++) {
      let text = pick(starts)() + pick(eols);
      const nHeaders = rnd(5);
      for (let k = 0; k < nHeaders; k++) {
        text += rnd(8) === 0 ? ` folded${k}` : `${pick(names)}${pick([":", ": ", " :", ""])}${pick(values)}`;
        text += pick(eols);
      }
      if (rnd(4) !== 0) text += pick(eols) + pick(["", "body", "HTTP/1.1 200 OK\r\n"]);
      const bytes = b(text);
      const cut = rnd(3) === 0 ? bytes.subarray(0, rnd(bytes.length + 1)) : bytes;
      const at = 0;
      const want = norm(referenceParseHead(cut, at));
      expect(norm(parseHead(cut, at, true)), JSON.stringify(cut.toString("latin1"))).toEqual(want);
      expect(norm(parseHead(cut, at)), JSON.stringify(cut.toString("latin1"))).toEqual(norm(referenceParseHead(cut, at), AGENT_HEADERS));
    }
  });

  it("parses a head that starts inside the buffer (pipelining) as the regex parser did", () => {
    const msg = b("GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b?x HTTP/1.0\r\nContent-Length: 2\r\n\r\nok");
    const at = msg.indexOf("POST");
    expect(norm(parseHead(msg, at, true))).toEqual(norm(referenceParseHead(msg, at)));
    expect(parseHead(msg, at)).toMatchObject({ method: "POST", path: "/b", headBytes: msg.length - 2 - at });
  });
});
