#!/usr/bin/env bash
# Installs what the BPF build (bpf/Makefile), the native addon (agent/native), the kernel
# tests (test/e2e) and the agent benchmark (bench/agent.ts: wrk) need on a fresh Debian 12, as
# root. Idempotent and fast when nothing is missing: apt-get runs only for packages that are
# absent, and `apt-get update` at most once.
# Why each package: see reference/bpf.md ("Environment" and pitfall 9: libbpf is linked
# dynamically, so the runtime needs libbpf1, which libbpf-dev pulls in).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "setup-system.sh: must run as root (apt-get, mount tracefs)" >&2
  exit 1
fi

# package -> command or file that proves it is present. A command found on PATH counts even
# when it came from elsewhere (python3 is often pyenv's, not Debian's): installing a second
# copy would only cost time.
declare -A PROBE=(
  [clang]="cmd:clang"
  [llvm]="cmd:llvm-strip"
  [libbpf-dev]="file:/usr/include/bpf/bpf_helpers.h"
  [libelf-dev]="file:/usr/include/libelf.h"
  [zlib1g-dev]="file:/usr/include/zlib.h"
  [bpftool]="cmd:bpftool"
  [build-essential]="cmd:g++"
  [make]="cmd:make"
  [pkg-config]="cmd:pkg-config"
  [iproute2]="cmd:ip"
  [curl]="cmd:curl"
  [python3]="cmd:python3"
  [nginx-light]="cmd:nginx"
  [iptables]="cmd:iptables"
  [wrk]="cmd:wrk"
  # the agent gzips its batches with libdeflate when it is there (agent/src/ship/gzip.ts), at about
  # half of zlib's CPU; Debian often has it already (libtiff needs it), but not always
  [libdeflate0]="glob:/usr/lib/*/libdeflate.so.0"
  # ISA-L's igzip gzips them at level 1 in ~40% of libdeflate's CPU (agent/native/src/addon.cc):
  # its header for the addon's build, and libisal2 (which it pulls in) at run time
  [libisal-dev]="file:/usr/include/isa-l/igzip_lib.h"
  # libFuzzer and the sanitizer runtimes for scripts/fuzz-http1.sh (test/e2e/native-fuzz.test.ts)
  [libclang-rt-dev]="glob:/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a"
)

present() {
  local kind="${1%%:*}" what="${1#*:}"
  case "$kind" in
    cmd) command -v "$what" >/dev/null 2>&1 || [ -x "/usr/sbin/$what" ] || [ -x "/sbin/$what" ] ;;
    file) [ -e "$what" ] ;;
    glob) compgen -G "$what" >/dev/null ;;
  esac
}

missing=()
for pkg in "${!PROBE[@]}"; do
  present "${PROBE[$pkg]}" || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-system.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # nginx-light is a bookworm package; fall back to nginx on releases that dropped it.
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    fallback=("${missing[@]/nginx-light/nginx}")
    apt-get install -y -q --no-install-recommends "${fallback[@]}"
  fi
  # Debian starts nginx on install; the tests start their own servers on free ports.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
else
  echo "setup-system.sh: all packages present"
fi

# libbpf attaches `tracepoint/` programs through the event ids in tracefs; on some machines it
# is not mounted (seen here: a fresh VM without /sys/kernel/tracing/events).
if [ ! -d /sys/kernel/tracing/events ]; then
  mount -t tracefs nodev /sys/kernel/tracing
fi

# Checks that no package can fix: say so now rather than at load time.
[ -r /sys/kernel/btf/vmlinux ] || echo "setup-system.sh: WARNING: no /sys/kernel/btf/vmlinux (kernel without CONFIG_DEBUG_INFO_BTF): the BPF build and the agent cannot work" >&2
[ -e /usr/include/node/node_api.h ] || echo "setup-system.sh: WARNING: no Node headers in /usr/include/node: node-gyp --nodedir=/usr will fail" >&2
echo "setup-system.sh: done"
