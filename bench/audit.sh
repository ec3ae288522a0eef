#!/usr/bin/env bash
# Audit log at scale: a cluster's SQLite store gets EVENTS audit events
# (default a million) spread over the last DAYS (30), written as auth
# writes them (`jaunt-bench audit-fill`, with the cluster stopped); then,
# with the cluster running again, each `jctl audit ls` query below is
# timed (median, fastest and slowest of 5, the whole jctl process) and its
# output counted. Also the fill rate and the store's size. 127.0.0.1
# only; every process is stopped by PID.
#
#   EVENTS=1000000 bench/audit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-1000000}
DAYS=${DAYS:-30}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/jaunt-target}"
cargo build --release --locked --bins -p jaunt-cli -p jaunt-bench 2>/dev/null
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d /tmp/jaunt-audit-bench.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
trap "exit 130" INT TERM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start() {
  "$bin/jaunt" start --data-dir "$work/auth" --cluster-name bench --listen "127.0.0.1:$port" \
    --second-factor off --log-level warn >>"$work/auth.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do "$bin/jctl" --data-dir "$work/auth" status >/dev/null 2>&1 && return; sleep 0.1; done
  echo "bench: the cluster did not start"; cat "$work/auth.log"; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
echo "date: $(date -u +%F) machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
start; stop   # the cluster's identity and indexes exist; then it is stopped
"$bin/jaunt-bench" audit-fill --db "$work/auth/jaunt.db" --events "$EVENTS" --days "$DAYS"
echo "store: $(du -sm "$work/auth" | cut -f1) MiB"
start
session=$("$bin/jctl" --data-dir "$work/auth" audit ls --type=session.start --limit=1 --format=json | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["session_id"])')
query() {  # label, jctl audit ls arguments
  local times=() n
  for _ in 1 2 3 4 5; do
    t0=$(date +%s.%N)
    n=$("$bin/jctl" --data-dir "$work/auth" audit ls "${@:2}" | wc -l)
    times+=("$(echo "($(date +%s.%N) - $t0) * 1000" | bc -l)")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v label="$1" -v n="$n" '{a[NR]=$1} END {printf "%-42s %8d events  median %7.0f ms  (%.0f-%.0f)\n", label, n, a[3], a[1], a[5]}'
}
query "--since=1h"                        --since=1h
query "--since=1h --type=exec"            --since=1h --type=exec
query "--since=24h --type=session.start"  --since=24h --type=session.start
query "--user=user7 --limit=100"          --user=user7 --limit=100
query "--user=user7 --since=1h"           --user=user7 --since=1h
query "--session=<one session>"           --session="$session"
query "--limit=50"                        --limit=50
query "--type=session.end --limit=20"     --type=session.end --limit=20
