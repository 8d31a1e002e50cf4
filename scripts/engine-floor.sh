#!/usr/bin/env bash
# The engine's floor: what the bookkeeping alone costs, with none of the linking. Builds a copy of
# the engine with scripts/engine-floor.patch applied (each span: its record written, its net group
# scanned and filed, its thread group probed and filed, an expiry timer; at expiry the record is
# freed and taken out of both tables: no links, app contexts, roots, decisions or output) and runs
# bench:core's warm runs on it. Whatever the linking adds comes on top of this figure, so it bounds
# the engine's speed on a machine from above (BENCHMARKS.md, "Linker core").
#
#   bash scripts/engine-floor.sh [bench-core options, e.g. --window 100 --settle 50]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/bench-core.js ] || { echo "engine-floor.sh: dist/bench-core.js missing (npm run build)" >&2; exit 1; }
out="$(mktemp -d /tmp/espan-floor.XXXXXX)"
trap 'rm -rf "$out"' EXIT
cp -r assembly asconfig.json "$out/"
(cd "$out" && git apply -p1 "$OLDPWD/scripts/engine-floor.patch") || { echo "engine-floor.sh: the patch no longer applies to assembly/link.ts (update it)" >&2; exit 1; }
ln -s "$PWD/node_modules" "$out/node_modules"
(cd "$out" && npx asc assembly/index.ts --target release -o floor.wasm)
node dist/bench-core.js --spans 1000000 --runs 3 --records-only --wasm "$out/floor.wasm" "$@"
