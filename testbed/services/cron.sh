#!/bin/sh
# A cron-like job runner: every INTERVAL seconds, for COUNT runs, a fresh short-lived process
# (curl) calls URL_PREFIX<n>, as a crontab entry would. Each run is a client-side root: an exit
# made by a process with no request of its own. curl is forked by this traced shell, so the
# kernel traces it from its first syscall (the agent's pid filter is inherited).
# Prints "cron <id> <http status>" per run, then "cron done".
#
# usage: cron.sh URL_PREFIX ID_PREFIX COUNT INTERVAL
set -u
url="$1"; prefix="$2"; count="$3"; interval="$4"
n=0
while [ "$n" -lt "$count" ]; do
  id="$prefix$n"
  code=$(curl -s -o /dev/null --max-time 10 -w '%{http_code}' "$url$id" || true)
  echo "cron $id $code"
  n=$((n + 1))
  [ "$n" -lt "$count" ] && sleep "$interval"
done
echo "cron done"
