// Loads the N-API addon (build/Release/espan_capture.node) on first use, so importing this
// module never fails on a machine where it is not built; the first call says what is missing.
// Types and the API: index.d.ts beside this file.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
let binding;

function load() {
  if (binding) return binding;
  try {
    binding = require("./build/Release/espan_capture.node");
  } catch (cause) {
    const text = String(cause && cause.message);
    let what;
    if (/libbpf\.so|libelf\.so|libz\.so/.test(text)) {
      what = "libbpf missing: the addon links libbpf dynamically (install libbpf1; scripts/setup-system.sh)";
    } else if (cause && cause.code === "MODULE_NOT_FOUND") {
      what = "addon not built: run agent/native/build.sh";
    } else {
      what = "cannot load the addon";
    }
    const err = new Error(`espan native: ${what}: ${text}`, { cause });
    err.code = "ESPAN_NATIVE_LOAD";
    throw err;
  }
  return binding;
}

export function open(options = {}) {
  return load().open(options);
}

export function layout() {
  return load().layout();
}

export function tuneMalloc() {
  return load().tuneMalloc();
}

export function gzip(data, level = 1) {
  return load().gzip(data, level);
}

export function gzipLibrary() {
  return load().gzipLibrary();
}

export function scanHttp(payload) {
  return load().scanHttp(payload);
}

export function createSpanEncoder(stage, positions) {
  return new (load().SpanEncoder)(stage, positions);
}
