// The agent's C HTTP/1 head scanner under coverage-guided fuzzing (libFuzzer, ASan, UBSan): any
// read past a payload, any offset it returns outside the payload, any undefined behaviour fails.
// scripts/fuzz-http1.sh runs it longer by hand.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const SECONDS = 20;

describe("HTTP/1 head scanner (C) under libFuzzer", () => {
  it(`survives ${SECONDS} s of fuzzing from the seed messages, sanitizers on`, () => {
    const run = spawnSync("bash", ["scripts/fuzz-http1.sh", String(SECONDS)], { encoding: "utf8", timeout: (SECONDS + 60) * 1000 });
    const log = `${run.stdout}\n${run.stderr}`;
    const crash = /==\d+==ERROR: .*|runtime error: .*|deadly signal/.exec(log);
    expect(crash?.[0] ?? "no crash", log.slice(-3000)).toBe("no crash");
    expect(run.status, log.slice(-3000)).toBe(0);
    const runs = Number(/stat::number_of_executed_units:\s+(\d+)/.exec(log)?.[1] ?? 0);
    expect(runs).toBeGreaterThan(100_000); // it did fuzz, not just start
  }, (SECONDS + 90) * 1000);
});
