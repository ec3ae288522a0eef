#!/usr/bin/env bash
# Inventory scale: simulated nodes (`jaunt-bench inventory`, many in one
# process) join through the real join protocol and heartbeat through the
# real heartbeat protocol (each with its own node certificate); for each
# total in COUNTS: the time to join them, then, after two heartbeat
# rounds, auth+proxy RSS and CPU, and `jsh ls` / `jsh ls env=prod` times
# (median of 5). HOLD=seconds then keeps the last total running that long
# and reports again (do the heartbeats hold?). Run as root; 127.0.0.1 only;
# every process is stopped by PID.
#
#   COUNTS="10000 50000" HOLD=600 bench/inventory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=${COUNTS:-10000 50000}
HOLD=${HOLD:-0}
. bench/lib.sh
hz=$(getconf CLK_TCK)
ls_ms() {  # median of 5 runs of jsh ls ARGS, in ms
  for _ in 1 2 3 4 5; do timed "$bin/jsh" ls "$@"; done | sort -n | awk '{a[NR]=$1*1000} END {printf "%.0f", a[3]}'
}

# One line: auth+proxy RSS, CPU and heartbeats/s over 15 s (all
# simulators), heartbeat errors so far, the longest interval told, `jsh ls`
# times and how many nodes it lists online.
report() {
  local c0 c1 d0 d1 s0 s1 errors interval db=""
  c0=$(cpu_ticks_sum); d0=$(db_ticks); s0=$(progress_sum 6); sleep 15
  c1=$(cpu_ticks_sum); d1=$(db_ticks); s1=$(progress_sum 6)
  errors=$(progress_sum 8)
  interval=$(tail -1 "$out" | awk '{print $10}')
  [ -n "${pg_pid:-}" ] && db=", PostgreSQL CPU $(echo "($d1 - $d0) * 100 / $hz / 15" | bc -l | xargs printf '%.0f')%"
  echo "$1; auth+proxy ($(echo $auth_pids | wc -w) instance(s)) RSS $(( $(rss_kib_sum) / 1024 )) MiB, CPU $(echo "($c1 - $c0) * 100 / $hz / 15" | bc -l | xargs printf '%.0f')% (of one core)$db, heartbeats/s $(echo "($s1 - $s0) / 15" | bc -l | xargs printf '%.0f') every ${interval:-?} (errors so far: $errors); jsh ls $(ls_ms --format=names) ms, jsh ls env=prod $(ls_ms env=prod) ms, listed $("$bin/jsh" ls --format=names | wc -l)"
}
# Field N of every simulator's latest progress line, summed (6: heartbeats, 8: errors).
progress_sum() { for f in "$work"/inventory.*[0-9]; do tail -1 "$f" | awk -v n="$1" '{print $n}'; done | awk '{s += $1} END {print s}'; }

echo "$(machine)"
echo "store: ${STORE:-sqlite}, instances: ${INSTANCES:-1}"
echo "before: auth+proxy RSS $(( $(rss_kib_sum) / 1024 )) MiB"
token=$("$bin/jctl" --data-dir "$work/auth" tokens add --type=node --ttl=24h | awk '/invite token/ {print $4}')
have=0
for total in $COUNTS; do
  add=$((total - have))
  out="$work/inventory.$total"
  t0=$(date +%s.%N)
  "$bin/jaunt-bench" inventory --proxy "127.0.0.1:$proxy_port" --ca-pin "$pin" --token "$token" \
    --count "$add" >"$out" 2>"$out.err" &
  pids+=($!)
  while :; do
    sleep 2
    joined=$(tail -1 "$out" 2>/dev/null | awk '{print $4}')
    [ "${joined:-0}" -ge "$add" ] && break
    if [ "$(echo "$(date +%s.%N) - $t0 > 3600" | bc)" = 1 ]; then echo "bench: joins did not finish"; tail -3 "$out" "$out.err"; exit 1; fi
  done
  t1=$(date +%s.%N)
  have=$total
  sleep 35   # let heartbeats settle (every 15 s up to 15,000 nodes, then longer)
  report "nodes=$total joined $add in $(echo "$t1 - $t0" | bc -l | xargs printf '%.0f') s"
done
if [ "$HOLD" -gt 0 ]; then
  sleep "$HOLD"
  report "after $HOLD s more at $have nodes"
fi
