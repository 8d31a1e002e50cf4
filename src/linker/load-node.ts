/** Node only: the compiled engine from build/ (workerd imports the .wasm file instead). */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let cached: WebAssembly.Module | undefined;

/** `debug` selects the build with assertions and names (tests), else the optimised one. */
export function loadEngineModule(opts: { debug?: boolean; path?: string } = {}): WebAssembly.Module {
  if (!opts.debug && !opts.path && cached) return cached;
  const file = opts.path ?? join(findRoot(), "build", opts.debug ? "engine.debug.wasm" : "engine.wasm");
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new Error(`linker engine not built: ${file} is missing (run \`npm run build:wasm\`)`, { cause: e });
  }
  const m = new WebAssembly.Module(new Uint8Array(bytes));
  if (!opts.debug && !opts.path) cached = m;
  return m;
}

/** The package root: the nearest folder above this file (or the bundle) holding build/ or asconfig.json. */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      readFileSync(join(dir, "asconfig.json"));
      return dir;
    } catch {
      dir = dirname(dir);
    }
  }
  throw new Error("cannot find the espan package root (asconfig.json)");
}
