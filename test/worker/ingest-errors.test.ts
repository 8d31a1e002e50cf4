/**
 * POST /v1/bpftracing refuses bad requests with the right status and a message naming what was
 * wrong, stores nothing of a refused batch, and keeps serving.
 */
import { describe, expect, it } from "vitest";
import type { Scenario } from "../scenarios.case.ts";
// Inside workerd there is no file system: the scenario comes in as a module.
import chainScenario from "../../../shared/scenarios/chain-3-hop.json";
import { get, post } from "./helpers.ts";

const good = (chainScenario as unknown as Scenario).spans;

describe("ingest refuses bad requests", () => {
  it("401 without the bearer token, or with a wrong one", async () => {
    for (const auth of [undefined, "Bearer nope", "Basic s3cret"]) {
      const res = await post(JSON.stringify({ spans: good }), auth === undefined ? { authorization: "" } : { authorization: auth });
      expect(res.status).toBe(401);
      expect((await res.json()).error).toMatch(/bearer token/);
    }
    expect((await get("/api/traces")).status).toBe(200);
    expect((await (await import("cloudflare:test")).SELF.fetch("https://espan.test/api/traces")).status).toBe(401);
  });

  it("415 for another content type or encoding", async () => {
    let res = await post("x", { "content-type": "text/plain" });
    expect(res.status).toBe(415);
    expect((await res.json()).error).toMatch(/content-type must be application\/json or application\/x-ndjson/);
    res = await post("{}", { "content-encoding": "br" });
    expect(res.status).toBe(415);
  });

  it("413 over ESPAN_MAX_BODY (65536 here), by header and by counting", async () => {
    const big = JSON.stringify({ spans: Array.from({ length: 200 }, () => good[0]) });
    expect(big.length).toBeGreaterThan(65536);
    const res = await post(big);
    expect(res.status).toBe(413);
    expect((await res.json()).error).toMatch(/ESPAN_MAX_BODY/);
    const stream = new Blob([big]).stream(); // no content-length: counted while reading
    expect((await post(stream)).status).toBe(413);
  });

  it("400 for malformed JSON, a body that is not {spans: [...]}, and bad gzip", async () => {
    let res = await post('{"spans": [');
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/malformed JSON/);
    res = await post(JSON.stringify([good[0]]));
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/"spans" array/);
    res = await post("not gzip at all", { "content-encoding": "gzip" });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/gzip/);
  });

  const violations: [string, unknown][] = [
    ["span_id", "XYZ"], ["kind", "server"], ["req_seq", -1], ["resp_seq", 2 ** 32], ["start_ns", "soon"],
    ["duration_ns", "1"], ["host", ""], ["pid", 1.5], ["tid", null], ["process_name", 3], ["service", ""],
    ["src_ip", 7], ["dst_ip", false], ["src_port", 65536], ["dst_port", -1], ["l7_proto", ""],
    ["thread_trace_id", "short"], ["http_status_code", "200"], ["status", "fine"], ["app_trace_id", "abc"],
    ["app_parent_id", "0000000000000000"], ["app_sampled", "yes"], ["attributes", [1, 2]],
  ];
  for (const [field, value] of violations) {
    it(`400 naming ${field} when it is ${JSON.stringify(value)}; nothing of the batch is stored`, async () => {
      const spans = good.map((s, i) => (i === 2 ? { ...s, span_id: "f00000000000000" + (violations.findIndex(([f]) => f === field) % 10), [field]: value } : { ...s }));
      const res = await post(JSON.stringify({ spans }));
      expect(res.status).toBe(400);
      const body = await res.json();
      expect(body.error).toMatch(/invalid span/);
      expect(body.rejected).toContainEqual(expect.objectContaining({ index: 2, field }));
    });
  }

  it("400 for bad NDJSON lines, naming each line's index", async () => {
    const lines = [JSON.stringify(good[0]), "{nope", JSON.stringify({ ...good[1], kind: "sideways" })];
    const res = await post(lines.join("\n"), { "content-type": "application/x-ndjson" });
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.rejected).toEqual([
      { index: 1, field: "(line)", reason: expect.stringMatching(/is not JSON/) },
      { index: 2, field: "kind", reason: 'must be "entry" or "exit"' },
    ]);
  });

  it("after all that, still serves: 202 for a good batch, gzip and NDJSON alike", async () => {
    const gz = new Response(new Blob([good.map((s) => JSON.stringify(s)).join("\n")]).stream().pipeThrough(new CompressionStream("gzip")));
    const res = await post(await gz.arrayBuffer(), { "content-type": "application/x-ndjson", "content-encoding": "gzip" });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: 5 });
    expect((await get("/healthz")).status).toBe(200);
  });

  it("404 for an unknown route, 400 for bad query parameters", async () => {
    expect((await get("/v2/nothing")).status).toBe(404);
    expect((await get("/api/traces?limit=0")).status).toBe(400);
    expect((await get("/api/traces/xyz")).status).toBe(400);
    expect((await get("/api/spans/" + "a".repeat(16))).status).toBe(404);
  });
});
