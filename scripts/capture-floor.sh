#!/usr/bin/env bash
# The capture's floor: what the BPF side costs a saturated hello-world server before any agent
# work, step by step. Builds three cut-down copies of the addon (bpf/capture.bpf.c changed in a
# scratch directory, never in the tree) and measures each, and the capture as shipped, against no
# capture at all, in alternating wrk runs on bench:agent's hello-world server:
#
#   attached  the tp_btf programs attached and returning at once (the tracepoints' own cost)
#   state     + pid filter, TCP checks, seq, the socket's state (sk storage); no record
#   built     + the record built in per-CPU scratch, payload copied from the user buffer
#             (clock, pt_regs, comm, tuple), never sent
#   full      the capture as shipped (+ the record through the ring buffer, drained and its
#             HTTP heads scanned by the addon)
#
# Each capture runs alone (trace all, 4 KB capture, drained by the addon, no JS work per record):
# the throughput it costs is the bound an agent's own CPU comes on top of (BENCHMARKS.md, Agent).
#
#   bash scripts/capture-floor.sh [ROUNDS=8] [SECONDS=4]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-8}"
seconds="${2:-4}"
command -v wrk >/dev/null || { echo "capture-floor.sh: wrk missing (scripts/setup-system.sh installs it)" >&2; exit 1; }
[ -f dist/bench-agent.js ] && [ -f bpf/.output/vmlinux.h ] || { echo "capture-floor.sh: build first (npm run build)" >&2; exit 1; }
out="$(mktemp -d /tmp/espan-capture-floor.XXXXXX)"
pids=()
cp=
cleanup() { for p in "${pids[@]}" $cp; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"; }
trap cleanup EXIT

# variant NAME PERL-SUBSTITUTION: a copy of bpf/ and agent/native/ with the change, built.
variant() {
  local d="$out/$1"
  mkdir -p "$d/agent" "$d/bpf"
  cp -r bpf/Makefile bpf/capture.bpf.c bpf/record.h "$d/bpf/"
  mkdir -p "$d/bpf/.output" && cp bpf/.output/vmlinux.h "$d/bpf/.output/"
  cp -r agent/native "$d/agent/native" && rm -rf "$d/agent/native/build"
  ln -s "$PWD/node_modules" "$d/node_modules"
  perl -0pi -e "$2" "$d/bpf/capture.bpf.c"
  grep -q FLOOR "$d/bpf/capture.bpf.c" || { echo "capture-floor.sh: variant $1 no longer applies to bpf/capture.bpf.c (update it)" >&2; exit 1; }
  bash "$d/agent/native/build.sh" > "$d/build.log" 2>&1 || { tail -20 "$d/build.log" >&2; exit 1; }
}
variant attached 's/(\tif \(ret <= 0 \|\| \(flags & MSG_PEEK\)\)\n\t\treturn 0;)/\treturn 0; \/* FLOOR *\/\n$1/'
variant state 's/(\tstruct stash s = \{\};\n\tbool have = syscall_payload)/\tif (conn_find(sk, true)) \/* FLOOR *\/\n\t\treturn 0;\n$1/'
variant built 's/(\tif \(bpf_ringbuf_output\(&events, out, size, wakeup_flag\(size\)\)\))/\tif (size) \/* FLOOR *\/\n\t\treturn;\n$1/'
mkdir -p "$out/full/agent" && ln -s "$PWD/agent/native" "$out/full/agent/native"

# The hello-world server of bench:agent.
node dist/bench-agent.js --role server --server-work 0 > "$out/server.out" &
pids+=($!)
for _ in $(seq 50); do grep -q PORT "$out/server.out" 2>/dev/null && break; sleep 0.1; done
port="$(awk '/PORT/{print $2}' "$out/server.out")"
[ -n "$port" ] || { echo "capture-floor.sh: the server did not start" >&2; exit 1; }

cat > "$out/capture.mjs" <<'EOF'
const { open } = await import(process.argv[2]);
const cap = open({ strategy: "auto", captureBytes: 4096, traceAll: true });
cap.start(() => {}, 250);
cap.attach();
process.stdout.write(`ready ${cap.strategy()}\n`);
process.on("SIGTERM", () => { const s = cap.stats(); process.stdout.write(`records ${s.records} drops ${s.drops}\n`); cap.close(); process.exit(0); });
EOF

rps() {
  local v
  v="$(wrk -t2 -c16 -d"${seconds}s" "http://127.0.0.1:$port/bench" | awk '/Requests\/sec/{print $2}')"
  [ -n "$v" ] || { echo "capture-floor.sh: wrk gave no requests/s" >&2; exit 1; }
  echo "$v"
}
wrk -t2 -c16 -d2s "http://127.0.0.1:$port/bench" > /dev/null # warm the server
modes=(none attached state built full)
: > "$out/runs"
for r in $(seq "$rounds"); do
  for m in "${modes[@]}"; do
    cp=
    if [ "$m" != none ]; then
      node "$out/capture.mjs" "$out/$m/agent/native/index.js" > "$out/cap.out" &
      cp=$!
      for _ in $(seq 50); do grep -q ready "$out/cap.out" 2>/dev/null && break; sleep 0.1; done
      grep -q "ready tp_btf" "$out/cap.out" || { echo "capture-floor.sh: $m did not load with tp_btf: $(cat "$out/cap.out")" >&2; exit 1; }
    fi
    v="$(rps)"
    echo "$r $m $v" >> "$out/runs"
    [ -n "$cp" ] && { kill "$cp"; wait "$cp" 2>/dev/null || true; cp=; }
  done
done

echo "capture floor: hello-world server, wrk -t2 -c16, $rounds rounds of ${seconds} s runs, $(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo))"
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split(" "));
const by = {};
for (const [r, m, v] of rows) (by[r] ??= {})[m] = Number(v);
const med = (a) => { const s = [...a].sort((x, y) => x - y); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const rounds = Object.values(by);
console.log(`none      ${med(rounds.map((x) => x.none)).toFixed(0)} requests/s`);
for (const m of ["attached", "state", "built", "full"]) {
  const loss = rounds.map((x) => 100 * (1 - x[m] / x.none));
  console.log(`${m.padEnd(9)} ${med(rounds.map((x) => x[m])).toFixed(0)} requests/s, loss ${med(loss).toFixed(1)}% (median of ${loss.length} pairs; range ${Math.min(...loss).toFixed(1)} to ${Math.max(...loss).toFixed(1)})`);
}' "$out/runs"
