/** contract/espan.ts is ESPAN.md in code: the same fields, and a clear error for each violation. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ESPAN_FIELDS, OPTIONAL, REQUIRED, validateESpan } from "../../contract/espan.ts";
import { loadScenarios, SCENARIO_DIR } from "../scenarios.case.ts";

const ESPAN_MD = readFileSync(join(SCENARIO_DIR, "..", "ESPAN.md"), "utf8");

/** The rows of ESPAN.md's field table: field names (split "a, b" rows) and required yes/no. */
function documentedFields(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of ESPAN_MD.split("\n")) {
    const cells = line.replaceAll("\\|", "/").split("|").map((c) => c.trim());
    // | field | type | required | meaning |  (escaped pipes in the type column removed first)
    if (cells.length < 5 || !cells[1].startsWith("`") || !/^(yes|no|entry)/.test(cells[3])) continue;
    for (const f of cells[1].matchAll(/`([a-z_0-9]+)`/g)) rows.set(f[1], cells[3]);
  }
  return rows;
}

const good = loadScenarios().find((s) => s.name === "chain-3-hop")!.spans[0];

describe("the eSpan contract", () => {
  it("names exactly the fields of ESPAN.md's table, required ones required", () => {
    const doc = documentedFields();
    expect(new Set(ESPAN_FIELDS)).toEqual(new Set(doc.keys()));
    for (const [field, req] of doc) {
      if (req === "yes") expect(field in REQUIRED, `${field} is required`).toBe(true);
      else expect(field in OPTIONAL || field === "thread_trace_id", `${field} is optional`).toBe(true);
    }
  });

  it("accepts every scenario span", () => {
    for (const s of loadScenarios()) for (const span of s.spans) expect(validateESpan(span).ok).toBe(true);
  });

  it("normalises start_ns to a decimal string and keeps unknown fields", () => {
    const v = validateESpan({ ...good, start_ns: 1764000000004000000, custom_tag: "x", app_trace_id: "4BF92F3577B34DA6A3CE929D0E0E4736" });
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.span.start_ns).toBe("1764000000004000000");
    expect(v.span.custom_tag).toBe("x");
    expect(v.span.app_trace_id).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
  });

  it("drops null optionals without touching the caller's object", () => {
    const input = { ...good, status: null, app_parent_id: "ABCDEF0123456789" };
    const v = validateESpan(input);
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect("status" in v.span).toBe(false);
    expect(v.span.app_parent_id).toBe("abcdef0123456789");
    expect(input.status).toBeNull();
    expect(input.app_parent_id).toBe("ABCDEF0123456789");
  });

  const violations: [string, unknown, RegExp][] = [
    ["span_id", "ABC", /16 lower-case hex/],
    ["span_id", "0000000000000000", /all zero/],
    ["kind", "server", /"entry" or "exit"/],
    ["req_seq", 4294967296, /0\.\.4294967295/],
    ["resp_seq", 1.5, /integer/],
    ["start_ns", "12x", /decimal digits/],
    ["start_ns", "99999999999999999999", /64 bits/],
    ["duration_ns", -1, /≥ 0/],
    ["host", "", /not be empty/],
    ["pid", "12", /integer/],
    ["src_port", 70000, /0\.\.65535/],
    ["l7_proto", 7, /string/],
    ["thread_trace_id", "xyz", /16 hex/],
    ["http_status_code", "200", /integer/],
    ["status", "fine", /"ok" or "error"/],
    ["app_trace_id", "1234", /32 hex/],
    ["app_trace_id", "0".repeat(32), /all zero/],
    ["app_parent_id", "zz", /16 hex/],
    ["app_sampled", "yes", /boolean/],
    ["attributes", { a: [1] }, /value of "a"/],
  ];
  for (const [field, value, reason] of violations) {
    it(`rejects ${field} = ${JSON.stringify(value)}, naming the field`, () => {
      const v = validateESpan({ ...good, [field]: value });
      expect(v.ok).toBe(false);
      if (v.ok) return;
      expect(v.errors).toHaveLength(1);
      expect(v.errors[0].field).toBe(field);
      expect(v.errors[0].reason).toMatch(reason);
    });
  }

  it("requires every required field, and a thread id on entries", () => {
    for (const field of Object.keys(REQUIRED)) {
      const { [field]: _, ...rest } = good as Record<string, unknown>;
      const v = validateESpan(rest);
      expect(v.ok).toBe(false);
      if (!v.ok) expect(v.errors.map((e) => e.field)).toContain(field);
    }
    const { thread_trace_id: _, ...noThread } = good;
    const v = validateESpan(noThread);
    expect(!v.ok && v.errors[0]).toEqual({ field: "thread_trace_id", reason: "is required for an entry" });
    expect(validateESpan({ ...noThread, kind: "exit" }).ok).toBe(true);
  });

  it("rejects what is not an object", () => {
    for (const x of [null, 3, "span", [good]]) expect(validateESpan(x).ok).toBe(false);
  });
});
