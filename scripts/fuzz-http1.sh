#!/usr/bin/env bash
# Fuzzes the agent's C HTTP/1 head scanner (agent/native/src/http1_scan.c) with libFuzzer under
# AddressSanitizer and UndefinedBehaviorSanitizer, for SECONDS (default 60).
#   bash scripts/fuzz-http1.sh [SECONDS]
# Needs clang and its fuzzer runtime (Debian: clang, libclang-rt-14-dev; scripts/setup-system.sh
# installs both). A crash leaves its input in build/fuzz/crash-* and exits non-zero; replay it with
#   build/fuzz/http1_scan_fuzz build/fuzz/crash-<hash>
# New inputs the fuzzer finds go to build/fuzz/corpus (agent/native/fuzz/seeds is read only).
set -euo pipefail
seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/build/fuzz"
mkdir -p "$out/corpus"
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I "$root/agent/native/src" \
  "$root/agent/native/fuzz/http1_scan_fuzz.c" "$root/agent/native/src/http1_scan.c" \
  -o "$out/http1_scan_fuzz"
cd "$out"
exec ./http1_scan_fuzz -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
  -artifact_prefix="$out/" corpus "$root/agent/native/fuzz/seeds"
