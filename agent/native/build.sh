#!/usr/bin/env bash
# Builds the BPF object + skeleton (bpf/Makefile) and the N-API addon that embeds it.
# node-gyp uses the local Node headers (--nodedir=/usr): it cannot download them here.
# System packages: scripts/setup-system.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
nodedir="${ESPAN_NODEDIR:-/usr}"
make -C "$root/bpf"
cd "$here"
"$root/node_modules/.bin/node-gyp" rebuild --nodedir="$nodedir" --loglevel=warn
