import { describe, expect, it } from "vitest";
import { extractAppContext } from "../../../agent/src/app-context.ts";
import { parseHead } from "../../../agent/src/assemble/http1.ts";

/** Headers as the agent gets them: parsed from raw request bytes (names lower-cased there). */
const headersOf = (lines: string[]) => parseHead(Buffer.from(`GET / HTTP/1.1\r\n${lines.join("\r\n")}\r\n\r\n`))!.headers;
const ctx = (...lines: string[]) => extractAppContext(headersOf(lines));

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN = "00f067aa0ba902b7";

describe("W3C traceparent", () => {
  it("keeps the full 128-bit id, the parent, and the sampled flag from bit 0 of trace-flags", () => {
    expect(ctx(`traceparent: 00-${TRACE}-${SPAN}-01`)).toEqual({ app_trace_id: TRACE, app_parent_id: SPAN, app_sampled: true });
    expect(ctx(`traceparent: 00-${TRACE}-${SPAN}-00`)?.app_sampled).toBe(false); // the seed said "sampled"
    expect(ctx(`traceparent: 00-${TRACE}-${SPAN}-03`)?.app_sampled).toBe(true);
    expect(ctx(`traceparent: 00-${TRACE}-${SPAN}-02`)?.app_sampled).toBe(false);
  });

  it("matches the header name in any case (the seed missed Traceparent)", () => {
    for (const name of ["Traceparent", "TRACEPARENT", "TraceParent"]) {
      expect(ctx(`${name}: 00-${TRACE}-${SPAN}-01`)?.app_trace_id).toBe(TRACE);
    }
  });

  it("lowers upper-case hex and accepts a future version with more fields", () => {
    expect(ctx(`traceparent: 00-${TRACE.toUpperCase()}-${SPAN.toUpperCase()}-01`)?.app_trace_id).toBe(TRACE);
    expect(ctx(`traceparent: 01-${TRACE}-${SPAN}-01-what-comes-next`)?.app_trace_id).toBe(TRACE);
  });

  it("ignores invalid values without throwing", () => {
    const bad = [
      `ff-${TRACE}-${SPAN}-01`, // version ff is invalid
      `00-${TRACE}-${SPAN}-01-extra`, // version 00 has exactly four fields
      `00-${"0".repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-${"0".repeat(16)}-01`,
      `00-${TRACE.slice(1)}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-zz`,
      `00-${TRACE}-${SPAN}`,
      "",
      "garbage",
    ];
    for (const v of bad) expect(ctx(`traceparent: ${v}`), v).toBeUndefined();
  });
});

describe("Datadog", () => {
  it("turns the decimal ids into hex; sampled from a priority > 0", () => {
    expect(ctx("x-datadog-trace-id: 1234", "x-datadog-parent-id: 5678", "x-datadog-sampling-priority: 1")).toEqual({
      app_trace_id: "000000000000000000000000000004d2",
      app_parent_id: "000000000000162e",
      app_sampled: true,
    });
    expect(ctx("x-datadog-trace-id: 1234", "x-datadog-sampling-priority: 2")?.app_sampled).toBe(true);
    expect(ctx("x-datadog-trace-id: 1234", "x-datadog-sampling-priority: 0")?.app_sampled).toBe(false);
    expect(ctx("x-datadog-trace-id: 1234", "x-datadog-sampling-priority: -1")?.app_sampled).toBe(false);
  });

  it("has no sampling decision without a priority (the seed rejected the trace)", () => {
    const c = ctx("X-Datadog-Trace-Id: 1234", "X-Datadog-Parent-Id: 5678");
    expect(c?.app_trace_id).toBe("000000000000000000000000000004d2");
    expect(c && "app_sampled" in c).toBe(false);
  });

  it("takes the high 64 bits from _dd.p.tid in x-datadog-tags, and the full unsigned 64-bit range", () => {
    const c = ctx(
      "x-datadog-trace-id: 18446744073709551615",
      "x-datadog-parent-id: 9223372036854775808",
      "X-Datadog-Tags: _dd.p.dm=-1,_dd.p.tid=640cfd8d00000000",
    );
    expect(c?.app_trace_id).toBe("640cfd8d00000000ffffffffffffffff");
    expect(c?.app_parent_id).toBe("8000000000000000");
  });

  it("ignores invalid ids", () => {
    for (const v of ["0", "-5", "18446744073709551616", "12ab", ""]) {
      expect(ctx(`x-datadog-trace-id: ${v}`), v).toBeUndefined();
    }
    expect(ctx("x-datadog-trace-id: 7", "x-datadog-parent-id: nope")).toEqual({ app_trace_id: "00000000000000000000000000000007" });
    expect(ctx("x-datadog-trace-id: 7", "x-datadog-tags: _dd.p.tid=xyz")?.app_trace_id).toBe("00000000000000000000000000000007");
  });
});

describe("B3", () => {
  it("single header with 128-bit and 64-bit (zero-padded) trace ids and sampling states", () => {
    expect(ctx(`b3: ${TRACE}-${SPAN}-1`)).toEqual({ app_trace_id: TRACE, app_parent_id: SPAN, app_sampled: true });
    expect(ctx(`B3: a3ce929d0e0e4736-${SPAN}-0-05e3ac9a4f6e3b90`)).toEqual({
      app_trace_id: "0000000000000000a3ce929d0e0e4736", app_parent_id: SPAN, app_sampled: false,
    });
    expect(ctx(`b3: ${TRACE}-${SPAN}-d`)?.app_sampled).toBe(true);
    expect(ctx(`b3: ${TRACE}-${SPAN}`)).toEqual({ app_trace_id: TRACE, app_parent_id: SPAN });
    expect(ctx("b3: 0")).toBeUndefined(); // a sampling state alone names no trace
    expect(ctx(`b3: ${TRACE}-${SPAN}-x`)).toBeUndefined();
  });

  it("multiple headers, any case; X-B3-Flags: 1 (debug) means sampled", () => {
    expect(ctx(`X-B3-TraceId: ${TRACE}`, `X-B3-SpanId: ${SPAN}`, "X-B3-Sampled: 1")).toEqual({ app_trace_id: TRACE, app_parent_id: SPAN, app_sampled: true });
    expect(ctx(`x-b3-traceid: a3ce929d0e0e4736`, `x-b3-spanid: ${SPAN}`, "x-b3-sampled: 0")?.app_trace_id).toBe("0000000000000000a3ce929d0e0e4736");
    expect(ctx(`X-B3-TRACEID: ${TRACE}`, `X-B3-SPANID: ${SPAN}`, "X-B3-Flags: 1")?.app_sampled).toBe(true);
    expect(ctx(`X-B3-TraceId: ${TRACE}`, "X-B3-Sampled: true")?.app_sampled).toBe(true);
    expect(ctx(`X-B3-TraceId: nothex`, `X-B3-SpanId: ${SPAN}`)).toBeUndefined();
  });
});

describe("precedence: W3C > Datadog > B3", () => {
  const w3c = `traceparent: 00-${TRACE}-${SPAN}-01`;
  const dd = "x-datadog-trace-id: 1234";
  const b3 = `b3: 11111111111111111111111111111111-${SPAN}-1`;
  it("takes the first valid format", () => {
    expect(ctx(dd, b3, w3c)?.app_trace_id).toBe(TRACE);
    expect(ctx(b3, dd)?.app_trace_id).toBe("000000000000000000000000000004d2");
    expect(ctx(b3)?.app_trace_id).toBe("11111111111111111111111111111111");
  });
  it("falls through an invalid one", () => {
    expect(ctx("traceparent: 00-bad", dd)?.app_trace_id).toBe("000000000000000000000000000004d2");
  });
  it("nothing when there is no context", () => {
    expect(ctx("host: x", "accept: */*")).toBeUndefined();
  });
});
