#!/usr/bin/env bash
# The testbed's network: three "hosts" as network namespaces joined by veth pairs on a bridge,
# and a kernel DNAT service VIP. Root only.
#
#   bash testbed/net.sh up     remove leftovers, then build it (idempotent)
#   bash testbed/net.sh down   remove everything it creates, and every process left in it
#
# Layout (all on 10.77.0.0/24; nothing routes anywhere else: the hosts have no default route,
# and the root namespace's side is a single veth):
#
#   namespace estb-sw   the "switch": bridge br0, one port per host and one for the root side
#   namespace estb-h1   eth0 10.77.0.11/24   (host name h1, given per process with a UTS ns)
#   namespace estb-h2   eth0 10.77.0.12/24
#   namespace estb-h3   eth0 10.77.0.13/24
#   root namespace      estb-root 10.77.0.1/24: where the ingest listens for the agents
#
#   service VIP 10.77.0.100:80 -> 10.77.0.12:8080 (api on h2): an iptables (nf_tables) DNAT
#   rule in the nat OUTPUT chain of every host namespace, as kube-proxy does for a ClusterIP.
#   Clients see 10.77.0.100:80, the server sees 10.77.0.12:8080.
#
# The bridge lives in its own namespace so that frames between hosts never pass the root
# namespace's firewall (br_netfilter would hand them to its FORWARD chain). Deleting the
# namespaces deletes the veths and the NAT rules with them: `down` leaves nothing behind.
set -euo pipefail

PFX=estb
SW=$PFX-sw
HOSTS=(h1 h2 h3)
declare -A ADDR=([h1]=10.77.0.11 [h2]=10.77.0.12 [h3]=10.77.0.13)
ROOT_IF=$PFX-root
ROOT_ADDR=10.77.0.1
VIP=10.77.0.100
VIP_PORT=80
VIP_TARGET=10.77.0.12:8080

if [ "$(id -u)" != 0 ]; then
  echo "net.sh: must run as root" >&2
  exit 1
fi

quiet_v6() { # no IPv6 chatter (router solicitations, DAD) on our links
  sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1" 2>/dev/null || true
}

down() {
  # Processes started by a testbed carry ESPAN_TESTBED_RUN in their environment (the ingest and
  # workerd in the root namespace among them); anything else still inside our namespaces is
  # ours too. Killed by pid.
  local pids=()
  for f in /proc/[0-9]*/environ; do
    if grep -qz '^ESPAN_TESTBED_RUN=' "$f" 2>/dev/null; then
      p=${f#/proc/}; pids+=("${p%/environ}")
    fi
  done
  for ns in $SW "${HOSTS[@]/#/$PFX-}"; do
    if [ -e "/run/netns/$ns" ]; then
      while read -r p; do [ -n "$p" ] && pids+=("$p"); done < <(ip netns pids "$ns" 2>/dev/null || true)
    fi
  done
  if [ "${#pids[@]}" -gt 0 ]; then
    kill -9 "${pids[@]}" 2>/dev/null || true
    sleep 0.2
  fi
  for ns in "${HOSTS[@]/#/$PFX-}" $SW; do
    [ -e "/run/netns/$ns" ] && ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "$ROOT_IF" 2>/dev/null || true
}

up() {
  down
  ip netns add $SW
  ip -n $SW link set lo up
  ip -n $SW link add br0 type bridge
  ip -n $SW link set br0 up
  ip netns exec $SW sysctl -qw net.ipv6.conf.all.disable_ipv6=1

  for h in "${HOSTS[@]}"; do
    ns=$PFX-$h
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
    ip -n $SW link add "p-$h" type veth peer name eth0 netns "$ns"
    ip -n $SW link set "p-$h" master br0 up
    ip -n "$ns" addr add "${ADDR[$h]}/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip netns exec "$ns" iptables -w -t nat -A OUTPUT -d "$VIP/32" -p tcp --dport "$VIP_PORT" \
      -j DNAT --to-destination "$VIP_TARGET"
  done

  ip link add "$ROOT_IF" type veth peer name p-root netns $SW
  quiet_v6 root "$ROOT_IF"
  ip addr add "$ROOT_ADDR/24" dev "$ROOT_IF"
  ip link set "$ROOT_IF" up
  ip -n $SW link set p-root master br0 up

  # The bridge runs no STP: a port forwards as soon as its link is up. Wait for that.
  for h in "${HOSTS[@]}" root; do
    for _ in $(seq 1 100); do
      if [ "$h" = root ]; then state=$(ip -o link show "$ROOT_IF"); else state=$(ip -n "$PFX-$h" -o link show eth0); fi
      case "$state" in *"state UP"*) break ;; esac
      sleep 0.05
    done
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: net.sh up|down" >&2; exit 2 ;;
esac
