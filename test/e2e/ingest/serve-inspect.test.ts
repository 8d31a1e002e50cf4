/**
 * `npm run serve -- --inspect HOST:PORT`: workerd's V8 inspector on that address, for profiling
 * the linker under load; refused (naming the option) with wrangler dev, which has its own.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { freePort, startIngest, type Ingest } from "./ingest-server.ts";

let ingest: Ingest | undefined;
afterEach(async () => {
  await ingest?.stop();
  ingest = undefined;
});

it("opens workerd's inspector on the address given, the ingest serving as usual", async () => {
  const port = await freePort();
  ingest = await startIngest({ shards: 1, extraArgs: ["--inspect", `127.0.0.1:${port}`] });
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  expect(targets.length).toBeGreaterThan(0);
  expect(targets[0].webSocketDebuggerUrl).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:${port}/`));
  expect((await fetch(`${ingest.url}/healthz`)).ok).toBe(true);
});

it("refuses --inspect without --workerd, naming the option", () => {
  const r = spawnSync(process.execPath, [join(__dirname, "..", "..", "..", "dist", "start.js"), "--inspect", "127.0.0.1:1"], { encoding: "utf8" });
  expect(r.status).not.toBe(0);
  expect(r.stderr).toContain("--inspect");
});
