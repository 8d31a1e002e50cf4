// Records → eSpans on synthetic sockets (sim.ts): pairing by direction flips, keep-alive,
// completion, idle flush, close, pipelining, unknown roles, non-HTTP.
import { describe, expect, it } from "vitest";
import { validateESpan, type ESpan } from "../../../contract/espan.ts";
import { GET, harness, MS, OK, SimSocket, WALL_OFFSET } from "./sim.ts";

const valid = (spans: ESpan[]) => {
  for (const s of spans) {
    const v = validateESpan(s);
    expect(v.ok, JSON.stringify(v)).toBe(true);
  }
};

describe("server socket, keep-alive", () => {
  it("one entry per request; the response's end comes from the next flip, the last one's from close", () => {
    const h = harness();
    const s = new SimSocket("server", { comm: "python3", tid: 7 });
    const starts: { req: number; resp: number; t: bigint }[] = [];
    for (const path of ["/one", "/two", "/three"]) {
      const req = s.msg("recv", GET(path));
      // Headers in the first send, the 300-byte body in a second one: not complete at the flip.
      const resp = s.msg("send", OK("x".repeat(300)).slice(0, -300), { totalBytes: OK("x".repeat(300)).length, spanNs: 2n * MS });
      starts.push({ req: req.seq, resp: resp.seq, t: req.tsNs });
    }
    h.push(...s.records.slice(0, 2));
    expect(h.spans).toHaveLength(0); // the first response's end is not known yet
    h.push(...s.records.slice(2));
    expect(h.spans).toHaveLength(2);
    h.push(s.close());
    expect(h.spans).toHaveLength(3);
    valid(h.spans);
    h.spans.forEach((sp, i) => {
      expect(sp.kind).toBe("entry");
      expect([sp.req_seq, sp.resp_seq]).toEqual([starts[i].req, starts[i].resp]);
      expect(sp.start_ns).toBe((starts[i].t + WALL_OFFSET).toString());
      // request at t, response 1 ms later and 2 ms long
      expect(sp.duration_ns).toBe(3_000_000);
      expect(sp.operation).toBe(["GET /one", "GET /two", "GET /three"][i]);
      expect(sp.http_status_code).toBe(200);
      expect(sp.status).toBe("ok");
      expect(sp.bytes_read).toBe(GET(["/one", "/two", "/three"][i]).length);
      expect(sp.bytes_written).toBe(OK("x".repeat(300)).length);
      expect(sp.thread_trace_id).toMatch(/^[0-9a-f]{16}$/);
      expect(sp.tid).toBe(7);
      expect(sp.process_name).toBe("python3");
      expect(sp.service).toBe("svc-python3");
      expect([sp.src_port, sp.dst_port]).toEqual([8080, 50000]);
    });
    expect(new Set(h.spans.map((x) => x.span_id)).size).toBe(3);
    expect(new Set(h.spans.map((x) => x.thread_trace_id)).size).toBe(3);
  });

  it("exports a response at once when its whole length moved in its first syscall (idle keep-alive)", () => {
    const h = harness();
    const s = new SimSocket("server");
    h.push(s.msg("recv", GET("/last")), s.msg("send", OK("hello")));
    expect(h.spans).toHaveLength(1);
    expect(h.spans[0].duration_ns).toBe(1_000_000);
    expect(h.spans[0].bytes_written).toBe(OK("hello").length);
    h.push(s.close()); // nothing more to export
    expect(h.spans).toHaveLength(1);
  });

  it("a chunked response whose end is in the first syscall is complete too", () => {
    const h = harness();
    const s = new SimSocket("server");
    const body = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    h.push(s.msg("recv", GET("/c")), s.msg("send", body));
    expect(h.spans.map((x) => x.bytes_written)).toEqual([body.length]);
  });

  it("exports a response whose end is unseen once the connection is idle, ending at its first byte", () => {
    const h = harness({ idleFlushNs: 5000n * MS });
    const s = new SimSocket("server");
    const full = OK("y".repeat(1000));
    h.push(s.msg("recv", GET("/slow")), s.msg("send", full.slice(0, -1000), { totalBytes: full.length }));
    h.assembler.sweep(s.now + 4000n * MS);
    expect(h.spans).toHaveLength(0);
    h.assembler.sweep(s.now + 6000n * MS);
    expect(h.spans).toHaveLength(1);
    expect(h.spans[0].duration_ns).toBe(1_000_000);
    expect(h.spans[0].attributes).toEqual({ "espan.response_end": "unknown" });
    expect(h.assembler.stats.idle_flushed).toBe(1);
    h.push(s.msg("recv", GET("/next"))); // the flip that ends it comes late: not exported twice
    expect(h.spans).toHaveLength(1);
  });

  it("HTTP/1.0 without Content-Length: the server's close ends the response", () => {
    const h = harness();
    const s = new SimSocket("server");
    const head = "HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6\r\n\r\n";
    h.push(s.msg("recv", "GET /a.txt HTTP/1.0\r\n\r\n"), s.msg("send", head, { totalBytes: head.length + 120, spanNs: 3n * MS }));
    expect(h.spans).toHaveLength(0);
    h.push(s.close());
    expect(h.spans).toHaveLength(1);
    expect(h.spans[0]).toMatchObject({ http_version: "1.0", http_status_code: 200, bytes_written: head.length + 120, duration_ns: 4_000_000 });
  });

  it("a request that never gets a response gives no span, and is counted", () => {
    const h = harness();
    const s = new SimSocket("server");
    h.push(s.msg("recv", GET("/x")), s.close());
    expect(h.spans).toEqual([]);
    expect(h.assembler.stats.no_response).toBe(1);
    expect(h.linker.openEntries).toBe(0);
  });

  it("status follows OTel HTTP semantics: a server span is an error for 5xx only", () => {
    const h = harness();
    const s = new SimSocket("server");
    h.push(s.msg("recv", GET("/a")), s.msg("send", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
    h.push(s.msg("recv", GET("/b")), s.msg("send", "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"));
    expect(h.spans.map((x) => [x.http_status_code, x.status])).toEqual([[404, "ok"], [503, "error"]]);
  });
});

describe("connection table", () => {
  it("tells apart ids whose low 53 bits are the same (the table's number key), either closing first", () => {
    for (const closeFirst of [0, 1]) {
      const h = harness();
      const ids = [0x1234_5678_9abcn, 0x1234_5678_9abcn | (0x5an << 56n)];
      const socks = ids.map((_, i) => new SimSocket("server", { tid: 10 + i }));
      const as = (i: number, r: ReturnType<SimSocket["msg"]>) => ({ ...r, connId: ids[i] });
      h.push(as(0, socks[0].msg("recv", GET("/a"))), as(1, socks[1].msg("recv", GET("/b"))));
      h.push(as(1, socks[1].msg("send", OK("bb"))), as(0, socks[0].msg("send", OK("a"))));
      expect(h.assembler.stats.conns).toBe(2);
      h.push(as(closeFirst, socks[closeFirst].close()));
      expect(h.assembler.stats.conns).toBe(1);
      const other = 1 - closeFirst;
      h.push(as(other, socks[other].msg("recv", GET("/c"))));
      h.push(as(other, socks[other].msg("send", OK("c"))));
      expect(h.spans.map((x) => [x.tid, x.http_route, x.bytes_written])).toEqual([
        [11, "/b", OK("bb").length],
        [10, "/a", OK("a").length],
        [10 + other, "/c", OK("c").length],
      ]);
      expect(h.assembler.stats.conns).toBe(1);
    }
  });
});

describe("client socket", () => {
  it("exits: send is the request, recv the response; a client span is an error for 4xx", () => {
    const h = harness();
    const c = new SimSocket("client", { comm: "curl" });
    const req = c.msg("send", GET("/api?q=1", ["Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]));
    const resp = c.msg("recv", "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!");
    h.push(req, resp);
    expect(h.spans).toHaveLength(1);
    const sp = h.spans[0];
    valid(h.spans);
    expect(sp).toMatchObject({
      kind: "exit", req_seq: req.seq, resp_seq: resp.seq, operation: "GET /api", http_route: "/api", status: "error",
      app_trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", app_parent_id: "00f067aa0ba902b7", app_sampled: true,
      bytes_written: req.bytes, bytes_read: resp.bytes, src_port: 50000, dst_port: 8080,
    });
    expect(sp.thread_trace_id).toBeUndefined(); // no entry open on its thread
  });
});

describe("pipelining", () => {
  const reqs = [GET("/a"), GET("/bb"), GET("/ccc")];

  it("splits requests and responses of one message by offset: seq + offset on both", () => {
    const h = harness();
    const c = new SimSocket("client");
    const resps = [OK("1"), OK("22"), OK("333")];
    const req = c.msg("send", reqs.join(""));
    const resp = c.msg("recv", resps.join(""));
    h.push(req, resp);
    expect(h.spans).toHaveLength(3);
    const reqOff = [0, reqs[0].length, reqs[0].length + reqs[1].length];
    const respOff = [0, resps[0].length, resps[0].length + resps[1].length];
    expect(h.spans.map((x) => [x.operation, x.req_seq - req.seq, x.resp_seq - resp.seq])).toEqual([
      ["GET /a", reqOff[0], respOff[0]],
      ["GET /bb", reqOff[1], respOff[1]],
      ["GET /ccc", reqOff[2], respOff[2]],
    ]);
    expect(h.spans.map((x) => x.bytes_written)).toEqual(reqs.map((r) => r.length));
    expect(h.spans.map((x) => x.bytes_read)).toEqual(resps.map((r) => r.length));
    expect(h.spans[1].attributes).toEqual({ "espan.pipelined_offset": reqOff[1] });
  });

  it("the server side gets the same keys when it reads the requests together", () => {
    const h = harness();
    const s = new SimSocket("server", { sendSeq: 900_000, recvSeq: 1000 });
    const c = new SimSocket("client", { sendSeq: 1000, recvSeq: 900_000 });
    const resps = [OK("1"), OK("22"), OK("333")];
    h.push(s.msg("recv", reqs.join("")), s.msg("send", resps.join("")));
    h.push(c.msg("send", reqs.join("")), c.msg("recv", resps.join("")));
    const key = (x: ESpan) => `${x.req_seq}/${x.resp_seq}`;
    const entries = h.spans.filter((x) => x.kind === "entry").map(key);
    const exits = h.spans.filter((x) => x.kind === "exit").map(key);
    expect(entries).toHaveLength(3);
    expect(entries).toEqual(exits);
  });

  it("a response past the capture: located by the previous one's Content-Length, else unresolved", () => {
    const h = harness();
    const c = new SimSocket("client");
    const big = OK("z".repeat(5000));
    const req = c.msg("send", reqs.join(""));
    const resp = c.msg("recv", big + OK("2") + OK("3"), { cap: 100 });
    h.push(req, resp, c.close());
    expect(h.spans.map((x) => x.resp_seq - resp.seq)).toEqual([0, big.length, 0]);
    expect(h.spans[2].attributes).toMatchObject({ "espan.resp_seq": "unresolved" });
    expect(h.spans[1].attributes?.["espan.resp_seq"]).toBeUndefined();
  });
});

describe("roles the kernel did not see (sockets older than the agent)", () => {
  it("a request line read → server; a status line read → client", () => {
    const h = harness();
    const s = new SimSocket("unknown");
    h.push(s.msg("recv", GET("/u")), s.msg("send", OK("ok")));
    const c = new SimSocket("unknown");
    h.push(c.msg("send", GET("/v")), c.msg("recv", OK("ok")));
    expect(h.spans.map((x) => [x.kind, x.operation])).toEqual([["entry", "GET /u"], ["exit", "GET /v"]]);
  });

  it("joining mid-conversation: the response of a request we never saw is skipped", () => {
    const h = harness();
    const c = new SimSocket("unknown");
    h.push(c.msg("recv", OK("late")), c.msg("send", GET("/next")), c.msg("recv", OK("ok")));
    expect(h.spans.map((x) => [x.kind, x.operation])).toEqual([["exit", "GET /next"]]);
    expect(h.assembler.stats.orphan_responses).toBe(1);
  });
});

describe("non-HTTP and interim responses", () => {
  it("a binary protocol gives l7_proto tcp spans, one per request/response flip", () => {
    const h = harness();
    const c = new SimSocket("client");
    const q = c.msg("send", "\x00\x00\x00\x0cSELECT 1;\x00", { totalBytes: 13 });
    const r = c.msg("recv", "\x01\x02\x03\x04", { totalBytes: 40 });
    h.push(q, r);
    expect(h.spans).toEqual([]);
    h.push(c.close());
    expect(h.spans).toHaveLength(1);
    valid(h.spans);
    expect(h.spans[0]).toMatchObject({ l7_proto: "tcp", req_seq: q.seq, resp_seq: r.seq, bytes_written: 13, bytes_read: 40 });
    expect(h.spans[0].operation).toBeUndefined();
    expect(h.spans[0].status).toBeUndefined();
  });

  it("100 Continue, the body, then the final response: one span, resp_seq at the 1xx", () => {
    const h = harness();
    const c = new SimSocket("client");
    const req = c.msg("send", "POST /up HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    const cont = c.msg("recv", "HTTP/1.1 100 Continue\r\n\r\n");
    h.push(req, cont, c.msg("send", "data"), c.msg("recv", "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"));
    expect(h.spans).toHaveLength(1);
    expect(h.spans[0]).toMatchObject({ req_seq: req.seq, resp_seq: cont.seq, http_status_code: 201, operation: "POST /up" });
  });
});

describe("bounds", () => {
  it("evicts the least recently active connection when the table is full", () => {
    const h = harness({ maxConns: 2 });
    const socks = [new SimSocket("server"), new SimSocket("server"), new SimSocket("server")];
    for (const s of socks) h.push(s.msg("recv", GET("/p")));
    expect(h.assembler.stats.conns).toBe(2);
    expect(h.assembler.stats.conns_evicted).toBe(1);
    expect(h.assembler.stats.no_response).toBe(1);
    expect(h.linker.openEntries).toBe(2);
  });

  it("drops spans of a process found not traced", () => {
    const h = harness({ processes: { lookup: () => ({ processName: "x", service: "x", traced: false }) } });
    const s = new SimSocket("server");
    h.push(s.msg("recv", GET("/a")), s.msg("send", OK("a")));
    expect(h.spans).toEqual([]);
    expect(h.assembler.stats.spans_filtered).toBe(1);
  });
});
