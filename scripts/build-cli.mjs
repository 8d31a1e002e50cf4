// Bundles the Node command-line tools into dist/ (run by `npm run build`, so `npm ci` leaves
// `npx espan` working). The WASM engine is loaded from build/ at run time.
import { build } from "esbuild";

await build({
  entryPoints: { espan: "src/cli/espan.ts", "bench-core": "bench/core.ts" },
  outdir: "dist",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: true,
  logLevel: "warning",
  // CommonJS dependencies bundled into ESM still call require() for Node built-ins.
  banner: { js: 'import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);' },
});
