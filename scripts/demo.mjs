#!/usr/bin/env node
// `npm run demo`: bundles testbed/demo.ts (TypeScript, run as is on Node 20 this way) and runs
// it. Arguments pass through: npm run demo -- --once | --keep 10m | --scale 2 | --trees 4
import { build } from "esbuild";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = join(root, "node_modules", ".cache", "espan-demo");
mkdirSync(outdir, { recursive: true });
const outfile = join(outdir, "demo.mjs");
await build({
  entryPoints: [join(root, "testbed", "demo.ts")],
  outfile,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  packages: "external",
  logLevel: "warning",
});
await import(pathToFileURL(outfile).href);
