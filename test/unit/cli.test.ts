import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { LinkResult } from "../../src/linker/config.ts";
import { loadScenarios, runScenarios, SCENARIO_DIR } from "../scenarios.case.ts";

const CLI = join(import.meta.dirname, "..", "..", "bin", "espan.js");

function espan(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], { input, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

runScenarios("espan link (subprocess)", (s) => {
  const r = espan([
    "link", "--in", join(SCENARIO_DIR, `${s.name}.json`),
    "--sampling-rate", String(s.config.sampling_rate), "--use-app-trace-id", String(s.config.use_app_trace_id),
  ]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim().split("\n").filter(Boolean).map((line) => {
    const o = JSON.parse(line);
    return { span_id: o.span_id, trace_id: o.trace_id, parent_id: o.parent_id, sampled: true } satisfies LinkResult;
  });
});

describe("espan link input and output", () => {
  const chain = loadScenarios().find((s) => s.name === "chain-3-hop")!;
  const ndjson = chain.spans.map((s) => JSON.stringify(s)).join("\n") + "\n";

  it("reads NDJSON on stdin and keeps every eSpan field in its output", () => {
    const r = espan(["link", "--sampling-rate", "1"], ndjson);
    expect(r.code).toBe(0);
    const out = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(out).toHaveLength(5);
    const byId = new Map(chain.spans.map((s) => [s.span_id, s]));
    for (const o of out) {
      expect(o.trace_id).toMatch(/^[0-9a-f]{32}$/);
      const { trace_id: _t, parent_id: _p, ...fields } = o;
      expect(fields).toEqual(byId.get(o.span_id));
    }
  });

  it("gives the same output with 16 shards", () => {
    const one = espan(["link", "--sampling-rate", "1"], ndjson);
    const many = espan(["link", "--sampling-rate", "1", "--shards", "16"], ndjson);
    expect(many.stdout).toBe(one.stdout);
  });

  it("writes an OTLP/JSON ExportTraceServiceRequest with SERVER and CLIENT kinds", () => {
    const dir = mkdtempSync(join(tmpdir(), "espan-cli-"));
    const out = join(dir, "out.json");
    const r = espan(["link", "--sampling-rate", "1", "--format", "otlp-json", "--out", out], ndjson);
    expect(r.code, r.stderr).toBe(0);
    const req = JSON.parse(readFileSync(out, "utf8"));
    const spans = req.resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans));
    expect(spans).toHaveLength(5);
    const services = req.resourceSpans.map((rs: any) => rs.resource.attributes.find((a: any) => a.key === "service.name").value.stringValue);
    expect(services.sort()).toEqual(["back", "front", "mid"]);
    const root = spans.find((s: any) => s.spanId === "e100000000000001");
    expect(root.kind).toBe(2); // SPAN_KIND_SERVER
    expect(root.parentSpanId ?? "").toBe("");
    expect(root.startTimeUnixNano).toBe("1764000000000000000");
    expect(root.endTimeUnixNano).toBe("1764000000050000000");
    const exit = spans.find((s: any) => s.spanId === "c100000000000001");
    expect(exit.kind).toBe(3); // SPAN_KIND_CLIENT
    expect(exit.parentSpanId).toBe("e100000000000001");
    expect(exit.attributes).toContainEqual({ key: "http.request.method", value: { stringValue: "GET" } });
    expect(exit.attributes).toContainEqual({ key: "http.response.status_code", value: { intValue: 200 } });
  });

  it("rejects an invalid span: exit 1, the line and field named, nothing on stdout", () => {
    const bad = ndjson.split("\n");
    bad[2] = bad[2].replace('"req_seq":10', '"req_seq":-5');
    const r = espan(["link", "--sampling-rate", "1"], bad.join("\n"));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("line 3: req_seq must be in 0..4294967295");
  });

  it("--skip-invalid reports and counts the bad spans and links the rest", () => {
    const lines = ndjson.trim().split("\n");
    lines.splice(1, 0, "{not json", JSON.stringify({ ...chain.spans[0], span_id: "0000000000000000" }));
    const r = espan(["link", "--sampling-rate", "1", "--skip-invalid"], lines.join("\n"));
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("line 2: (line) is not JSON");
    expect(r.stderr).toContain("line 3: span_id must not be all zero");
    expect(r.stderr).toContain("skipped 2 invalid span(s)");
    expect(r.stdout.trim().split("\n")).toHaveLength(5);
  });

  it("refuses a bad option value with a message naming it", () => {
    const r = espan(["link", "--use-app-trace-id", "yes"], "");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("--use-app-trace-id");
  });

  it("samples by default at 0.1: some traces kept, most dropped, never a fragment", () => {
    const spans = [];
    for (let i = 1; i <= 400; i++) {
      const base = { ...chain.spans[0], req_seq: i * 2, resp_seq: i * 2 + 1 };
      spans.push({ ...base, kind: "exit", span_id: (0xc000000 + i).toString(16).padStart(16, "0"), thread_trace_id: undefined });
      spans.push({ ...base, kind: "entry", span_id: (0xe000000 + i).toString(16).padStart(16, "0"), thread_trace_id: i.toString(16).padStart(16, "0") });
    }
    const r = espan(["link"], spans.map((s) => JSON.stringify(s)).join("\n"));
    const out = r.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const traces = new Map<string, number>();
    for (const o of out) traces.set(o.trace_id, (traces.get(o.trace_id) ?? 0) + 1);
    expect(traces.size).toBeGreaterThan(15);
    expect(traces.size).toBeLessThan(70);
    for (const n of traces.values()) expect(n).toBe(2);
  });
});
