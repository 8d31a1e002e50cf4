// Bundles the Node command-line tools into dist/ (run by `npm run build`, so `npm ci` leaves
// `npx espan` working). The WASM engine is loaded from build/ at run time.
import { build } from "esbuild";

// The agent's native addon stays outside the bundle: agent/native/index.js finds its .node
// file (built on the machine by agent/native/build.sh) relative to itself, so the bundle
// imports it from the package at run time, by its path from dist/.
const nativeAddonExternal = {
  name: "native-addon-external",
  setup(b) {
    b.onResolve({ filter: /\/native\/index\.js$/ }, () => ({ path: "../agent/native/index.js", external: true }));
  },
};

await build({
  entryPoints: { espan: "src/cli/espan.ts", start: "src/cli/start.ts", "bench-core": "bench/core.ts", "bench-agent": "bench/agent.ts", "bench-ingest": "bench/ingest.ts", "bench-testbed": "bench/testbed.ts", "bench-all": "bench/all.ts", "espan-agent": "agent/src/main.ts" },
  outdir: "dist",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: true,
  logLevel: "warning",
  plugins: [nativeAddonExternal],
  // CommonJS dependencies bundled into ESM still call require() for Node built-ins.
  banner: { js: 'import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);' },
});
