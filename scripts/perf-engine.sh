#!/usr/bin/env bash
# Instruction-level profile of the WASM engine under bench:core, where V8's sampling profiler
# stops at the function: which load in probeNext stalls, which loop in the frees.
#
#   bash scripts/perf-engine.sh [FUNCTION] [-- bench-core options]
#
# Lists the engine's functions by share of the samples, then annotates FUNCTION (default
# assembly/table/probeNext) instruction by instruction: those with at least MIN_PCT percent of
# its samples (default 1; MIN_PCT=0 prints the whole function). Uses `perf record -e cpu-clock` (a software
# clock: this VM has no hardware counters), V8's jitdump (`node --perf-prof`) and `perf inject
# --jit`; the engine is built with names into a scratch directory. Needs the Debian package
# linux-perf (not installed by setup: a developer's tool). Samples carry skid: the instruction
# after a stalled load takes its samples.
set -euo pipefail
cd "$(dirname "$0")/.."
fn="${1:-assembly/table/probeNext}"
shift || true
[ "${1:-}" = "--" ] && shift
command -v perf >/dev/null || { echo "perf-engine.sh: perf not found (apt-get install linux-perf)" >&2; exit 1; }
[ -f dist/bench-core.js ] || { echo "perf-engine.sh: dist/bench-core.js missing (npm run build)" >&2; exit 1; }
out="$(mktemp -d /tmp/espan-perf.XXXXXX)"
trap 'rm -rf "$out"' EXIT
# perf's build-id cache (its copies of the jitted code) goes with the scratch directory, not to ~/.debug.
perf() { command perf --buildid-dir "$out/.debug" "$@"; }
npx asc assembly/index.ts --target release --debug -o "$out/engine-names.wasm"
# jitdump and the .so files perf inject writes go to the working directory.
(cd "$out" && perf record -q -e cpu-clock -F 4000 -k mono -o perf.data \
  node --perf-prof --no-write-protect-code-memory "$OLDPWD/dist/bench-core.js" \
  --spans 1000000 --runs 2 --records-only --wasm engine-names.wasm "$@" >/dev/null)
(cd "$out" && perf inject --jit -i perf.data -o perf.jit.data)
echo "== engine functions by share of all samples (generation and encoding included) =="
perf report -q -i "$out/perf.jit.data" --no-children --sort sym 2>/dev/null | grep "JS:assembly/" | head -30
sym="$(perf report -q -i "$out/perf.jit.data" --no-children --sort sym 2>/dev/null | grep -o "JS:${fn}-[0-9]*-turbofan" | head -1)"
[ -n "$sym" ] || { echo "perf-engine.sh: no samples in ${fn}" >&2; exit 1; }
echo "== ${sym}: instructions with at least ${MIN_PCT:-1}% of its samples =="
perf annotate -i "$out/perf.jit.data" --stdio -s "$sym" 2>/dev/null | awk -F: "\$1 + 0 >= ${MIN_PCT:-1.0}"
