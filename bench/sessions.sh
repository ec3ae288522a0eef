#!/usr/bin/env bash
# Session rate, login cost and per-session memory through the Jaunt proxy
# (bench/lib.sh's cluster; auth and proxy are one process here):
#  1. exec `true` sessions per second from `jaunt-bench sessions` (russh
#     client with the login's certificate, a new connection each), to the
#     direct and the tunnel node;
#  2. logins: `jsh login` latency with the right password and with a wrong
#     one (both pay the Argon2id check; the difference is what issuing the
#     certificates costs), and logins per second with 4 in parallel;
#  3. memory: RSS of the proxy (with auth) and of the node process (not the
#     sessions' own processes) with 0, then COUNTS idle sessions open, and
#     their CPU use while idle.
# Run as root; 127.0.0.1 only; every process is stopped by PID.
#
#   SECONDS_EACH=10 COUNTS="100 1000" bench/sessions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${SECONDS_EACH:-10}
COUNTS=${COUNTS:-100 1000}
. bench/lib.sh
jb="$bin/jaunt-bench"
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "$(machine)"
echo "store: ${STORE:-sqlite}, instances: ${INSTANCES:-1}"
echo "## session rate (exec true), $SECONDS_EACH s each"
for node in direct tunnel; do
  for c in 8 32; do
    printf 'node=%-7s concurrency=%-3s ' "$node" "$c"
    "$jb" sessions "$user@$node" --concurrency "$c" --seconds "$SECONDS_EACH" 2>"$work/sessions.err" | tail -1
  done
done

echo "## logins"
"$bin/jctl" --data-dir "$work/auth" users add wrong --roles=access --logins="$user" >/dev/null
lat() {  # ms per login, median of 10, password $1
  for _ in $(seq 1 10); do
    timed sh -c "echo '$1' | JSH_HOME=$work/jsh-l '$bin/jsh' login --proxy=127.0.0.1:$proxy_port --ca-pin=$pin --user=bench --password-stdin >/dev/null 2>&1 || true"
  done | sort -n | awk '{a[NR]=$1*1000} END {printf "%.1f", (a[5]+a[6])/2}'
}
ok=$(lat 'bench password 123'); bad=$(lat 'not the password')
echo "login (right password) median ${ok} ms; refused (wrong password) median ${bad} ms; issuing the certificates costs about $(echo "$ok - $bad" | bc -l | xargs printf '%.1f') ms"
t0=$(date +%s.%N)
logins=()
for i in $(seq 1 4); do
  ( for _ in $(seq 1 10); do echo 'bench password 123' | JSH_HOME="$work/jsh-p$i" "$bin/jsh" login --proxy="127.0.0.1:$proxy_port" --ca-pin="$pin" --user=bench --password-stdin >/dev/null; done ) &
  logins+=($!)
done
wait "${logins[@]}"
t1=$(date +%s.%N)
echo "logins per second, 4 in parallel: $(echo "40 / ($t1 - $t0)" | bc -l | xargs printf '%.1f')"

# One round: COUNT idle sessions to TARGET; RSS and idle CPU of the proxy
# (with auth) and of NODE_PID (none for an agentless node: its sshd is not
# ours).
idle_round() {
  local target=$1 count=$2 node_pid=${3:-} p0 n0=0 p1 n1=0 c0p c1p c0n=0 c1n=0 hz
  p0=$(rss_kib_sum); [ -n "$node_pid" ] && n0=$(rss_kib "$node_pid")
  fifo="$work/hold.$target.$count"; mkfifo "$fifo"
  "$jb" idle "$user@$target" --count "$count" <"$fifo" >"$work/idle.out" 2>"$work/idle.err" &
  idle_pid=$!; pids+=("$idle_pid")
  exec 9>"$fifo"
  for _ in $(seq 1 600); do grep -q ready "$work/idle.out" && break; sleep 0.2; done
  grep -q ready "$work/idle.out" || { echo "bench: idle sessions did not open"; cat "$work/idle.err"; exit 1; }
  sleep 2
  p1=$(rss_kib_sum); [ -n "$node_pid" ] && n1=$(rss_kib "$node_pid")
  c0p=$(cpu_ticks_sum); [ -n "$node_pid" ] && c0n=$(cpu_ticks "$node_pid"); sleep 10
  c1p=$(cpu_ticks_sum); [ -n "$node_pid" ] && c1n=$(cpu_ticks "$node_pid")
  hz=$(getconf CLK_TCK)
  printf 'sessions=%-5s proxy+auth %6d -> %7d KiB (%5.1f KiB/session)  node %6d -> %7d KiB (%5.1f KiB/session)  idle CPU: proxy %.1f%%, node %.1f%%\n' \
    "$count" "$p0" "$p1" "$(echo "($p1 - $p0) / $count" | bc -l)" "$n0" "$n1" "$(echo "($n1 - $n0) / $count" | bc -l)" \
    "$(echo "($c1p - $c0p) * 100 / $hz / 10" | bc -l)" "$(echo "($c1n - $c0n) * 100 / $hz / 10" | bc -l)"
  exec 9>&-
  wait "$idle_pid" || true
  rm -f "$fifo"
  # Let the sessions end before the next round.
  for _ in $(seq 1 100); do [ "$(pgrep -u "$user" -c sleep || true)" -eq 0 ] && break; sleep 0.2; done
}

echo "## memory per idle session (direct node; RSS of the processes, not of the sessions' sleep)"
for count in $COUNTS; do idle_round direct "$count" "$direct_pid"; done
echo "## memory per idle session of an agentless node (the proxy ends SSH and holds a second connection to sshd)"
for count in $COUNTS; do idle_round osh "$count"; done
