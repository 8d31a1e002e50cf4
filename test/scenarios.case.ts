/**
 * Every scenario of ../shared/scenarios/ against any linker: the shared suite (Hono's
 * `*.case.test.ts` pattern). Each linker's test file calls `runScenarios` with a function that
 * links one scenario's spans offline and returns what it decided.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { ESpan } from "../contract/espan.ts";
import type { LinkResult } from "../src/linker/config.ts";

export const SCENARIO_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "shared", "scenarios");

export interface Scenario {
  name: string;
  description: string;
  config: { sampling_rate: number; use_app_trace_id: boolean };
  spans: ESpan[];
  expect: { span_id: string; parent_id: string; trace?: string; trace_id?: string }[];
  dropped?: string[];
  exactly_once?: boolean;
  not_trace_id?: string;
}

export function loadScenarios(): Scenario[] {
  return readdirSync(SCENARIO_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(SCENARIO_DIR, f), "utf8")) as Scenario);
}

/** Links a scenario and returns the exported (sampled-in) spans; may also return dropped ones. */
export type ScenarioLinker = (s: Scenario) => Promise<LinkResult[]> | LinkResult[];

export function checkScenario(s: Scenario, results: LinkResult[]): void {
  const exported = results.filter((r) => r.sampled);
  const byId = new Map<string, LinkResult[]>();
  for (const r of exported) byId.set(r.span_id, [...(byId.get(r.span_id) ?? []), r]);

  for (const r of exported) {
    expect(r.trace_id, `${r.span_id} trace_id`).toMatch(/^[0-9a-f]{32}$/);
    expect(r.trace_id).not.toBe("0".repeat(32));
    if (s.not_trace_id) expect(r.trace_id, `${r.span_id} must not carry ${s.not_trace_id}`).not.toBe(s.not_trace_id);
  }
  if (s.exactly_once) for (const [id, rs] of byId) expect(rs.length, `${id} exported once`).toBe(1);

  const labels = new Map<string, string>();
  for (const e of s.expect) {
    const got = byId.get(e.span_id)?.[0];
    expect(got, `${e.span_id} exported`).toBeDefined();
    expect(got!.parent_id, `${e.span_id} parent`).toBe(e.parent_id);
    if (e.trace_id) expect(got!.trace_id, `${e.span_id} trace_id`).toBe(e.trace_id);
    if (e.trace) {
      const seen = labels.get(e.trace);
      if (seen) expect(got!.trace_id, `${e.span_id} in trace ${e.trace}`).toBe(seen);
      else labels.set(e.trace, got!.trace_id);
    }
  }
  const distinct = new Set(labels.values());
  expect(distinct.size, "different trace labels have different ids").toBe(labels.size);
  for (const id of s.dropped ?? []) expect(byId.has(id), `${id} must be dropped`).toBe(false);
  const expected = new Set([...s.expect.map((e) => e.span_id)]);
  for (const id of byId.keys()) expect(expected.has(id), `${id} exported but not expected`).toBe(true);
}

export function runScenarios(name: string, link: ScenarioLinker): void {
  describe(`scenarios: ${name}`, () => {
    for (const s of loadScenarios()) {
      it(`${s.name}: ${s.description}`, async () => {
        checkScenario(s, await link(s));
      });
    }
  });
}
