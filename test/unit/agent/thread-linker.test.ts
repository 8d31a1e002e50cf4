// link/thread.ts rules, driven through the assembler as the pipeline does.
import { describe, expect, it } from "vitest";
import type { ESpan } from "../../../contract/espan.ts";
import { GET, harness, OK, SimSocket } from "./sim.ts";

const tp = (trace: string) => `traceparent: 00-${trace}-00f067aa0ba902b7-01`;
const T1 = "11111111111111111111111111111111";
const T2 = "22222222222222222222222222222222";

const entryOf = (spans: ESpan[], op: string) => spans.find((s) => s.kind === "entry" && s.operation === op)!;
const exitOf = (spans: ESpan[], op: string) => spans.find((s) => s.kind === "exit" && s.operation === op)!;

describe("thread-per-request", () => {
  it("an exit written on the entry's thread while it is open carries its id; other threads' do not", () => {
    const h = harness();
    const inbound = new SimSocket("server", { pid: 10, tid: 7 });
    const sameThread = new SimSocket("client", { pid: 10, tid: 7 });
    const otherThread = new SimSocket("client", { pid: 10, tid: 8 });
    h.push(inbound.msg("recv", GET("/in")));
    h.push(sameThread.msg("send", GET("/db")), sameThread.msg("recv", OK("row")));
    h.push(otherThread.msg("send", GET("/other")), otherThread.msg("recv", OK("x")));
    h.push(inbound.msg("send", OK("done")));
    const entry = entryOf(h.spans, "GET /in");
    expect(exitOf(h.spans, "GET /db").thread_trace_id).toBe(entry.thread_trace_id);
    expect(exitOf(h.spans, "GET /other").thread_trace_id).toBeUndefined();
    expect(h.linker.stats).toMatchObject({ linked_thread: 1, unlinked_no_entry: 1 });
  });

  it("stale guard: a call made after the entry's response was written is not linked", () => {
    const h = harness();
    const inbound = new SimSocket("server", { tid: 7 });
    const later = new SimSocket("client", { tid: 7 });
    h.push(inbound.msg("recv", GET("/answered")), inbound.msg("send", OK("bye")));
    h.push(later.msg("send", GET("/unrelated")), later.msg("recv", OK("x")));
    expect(exitOf(h.spans, "GET /unrelated").thread_trace_id).toBeUndefined();
    expect(h.linker.stats.unlinked_no_entry).toBe(1);
    expect(h.linker.openEntries).toBe(0);
  });

  it("an entry answered from another thread closes on the thread that read it", () => {
    const h = harness();
    const inbound = new SimSocket("server", { tid: 7 });
    h.push(inbound.msg("recv", GET("/handoff")), inbound.msg("send", OK("x"), { tid: 9 }));
    expect(h.linker.openEntries).toBe(0);
    const later = new SimSocket("client", { tid: 7 });
    h.push(later.msg("send", GET("/after")), later.msg("recv", OK("x")));
    expect(exitOf(h.spans, "GET /after").thread_trace_id).toBeUndefined();
  });

  it("an entry stays open through a 100 Continue: a call made after reading the body is linked", () => {
    const h = harness();
    const inbound = new SimSocket("server", { tid: 7 });
    const out = new SimSocket("client", { tid: 7 });
    h.push(inbound.msg("recv", "POST /up HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
    h.push(inbound.msg("send", "HTTP/1.1 100 Continue\r\n\r\n"), inbound.msg("recv", "data"));
    h.push(out.msg("send", GET("/store")), out.msg("recv", OK("ok")));
    h.push(inbound.msg("send", "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"));
    expect(exitOf(h.spans, "GET /store").thread_trace_id).toBe(entryOf(h.spans, "POST /up").thread_trace_id);
    expect(entryOf(h.spans, "POST /up").http_status_code).toBe(201);
  });

  it("every entry gets its own fresh id", () => {
    const h = harness();
    const s = new SimSocket("server");
    for (let i = 0; i < 50; i++) h.push(s.msg("recv", GET(`/${i}`)), s.msg("send", OK("x")));
    expect(new Set(h.spans.map((x) => x.thread_trace_id)).size).toBe(50);
  });
});

describe("event loop: several entries open on one thread", () => {
  function twoOpen() {
    const h = harness();
    const a = new SimSocket("server", { tid: 1 });
    const b = new SimSocket("server", { tid: 1 });
    h.push(a.msg("recv", GET("/a", [tp(T1)])), b.msg("recv", GET("/b", [tp(T2)])));
    return { h, a, b };
  }

  it("an exit without app context is left unlinked and counted: never a guess", () => {
    const { h, a, b } = twoOpen();
    const out = new SimSocket("client", { tid: 1 });
    h.push(out.msg("send", GET("/backend")), out.msg("recv", OK("x")));
    h.push(a.msg("send", OK("a")), b.msg("send", OK("b")));
    expect(exitOf(h.spans, "GET /backend").thread_trace_id).toBeUndefined();
    expect(h.linker.stats.unlinked_ambiguous).toBe(1);
  });

  it("an exit carrying one open entry's app trace id is linked to that entry", () => {
    const { h, a, b } = twoOpen();
    const out = new SimSocket("client", { tid: 1 });
    h.push(out.msg("send", GET("/backend", ["TraceParent: 00-22222222222222222222222222222222-aaaaaaaaaaaaaaaa-01"])), out.msg("recv", OK("x")));
    h.push(a.msg("send", OK("a")), b.msg("send", OK("b")));
    expect(exitOf(h.spans, "GET /backend").thread_trace_id).toBe(entryOf(h.spans, "GET /b").thread_trace_id);
    expect(h.linker.stats.linked_app_context).toBe(1);
  });

  it("an app trace id that no open entry (or more than one) carries leaves it unlinked", () => {
    const h = harness();
    const a = new SimSocket("server", { tid: 1 });
    const b = new SimSocket("server", { tid: 1 });
    h.push(a.msg("recv", GET("/a", [tp(T1)])), b.msg("recv", GET("/b", [tp(T1)])));
    const out = new SimSocket("client", { tid: 1 });
    h.push(out.msg("send", GET("/same", [tp(T1)])), out.msg("recv", OK("x")));
    const out2 = new SimSocket("client", { tid: 1 });
    h.push(out2.msg("send", GET("/none", [tp(T2)])), out2.msg("recv", OK("x")));
    expect(exitOf(h.spans, "GET /same").thread_trace_id).toBeUndefined();
    expect(exitOf(h.spans, "GET /none").thread_trace_id).toBeUndefined();
    expect(h.linker.stats.unlinked_ambiguous).toBe(2);
  });

  it("one entry open: linked, unless both app trace ids are known and differ", () => {
    const h = harness();
    const a = new SimSocket("server", { tid: 1 });
    h.push(a.msg("recv", GET("/a", [tp(T1)])));
    const plain = new SimSocket("client", { tid: 1 });
    h.push(plain.msg("send", GET("/plain")), plain.msg("recv", OK("x")));
    const other = new SimSocket("client", { tid: 1 });
    h.push(other.msg("send", GET("/other-trace", [tp(T2)])), other.msg("recv", OK("x")));
    h.push(a.msg("send", OK("a")));
    const id = entryOf(h.spans, "GET /a").thread_trace_id;
    expect(exitOf(h.spans, "GET /plain").thread_trace_id).toBe(id);
    expect(exitOf(h.spans, "GET /other-trace").thread_trace_id).toBeUndefined();
    expect(h.linker.stats).toMatchObject({ linked_thread: 1, unlinked_app_mismatch: 1 });
  });

  it("pipelined requests are several open entries", () => {
    const h = harness();
    const s = new SimSocket("server", { tid: 1 });
    h.push(s.msg("recv", GET("/p1") + GET("/p2")));
    expect(h.linker.openEntries).toBe(2);
    const out = new SimSocket("client", { tid: 1 });
    h.push(out.msg("send", GET("/call")), out.msg("recv", OK("x")));
    expect(exitOf(h.spans, "GET /call").thread_trace_id).toBeUndefined();
  });
});
