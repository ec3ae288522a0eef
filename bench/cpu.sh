#!/usr/bin/env bash
# CPU seconds per GiB moved, by side, for one transfer tool: the client (the
# tool and what it runs, such as `jsh proxy ssh`), the relay (the bastion
# sshd; Jaunt's auth+proxy process) and the server (sshd with its session
# processes; the Jaunt node with its session processes: the SFTP helper,
# `cat`). Throughput on this shared 2-core machine drifts by 15-40% between
# runs; CPU per GiB does not, so it ranks two builds from one run each.
# "machine" is every core's busy time per GiB (/proc/stat), which also
# counts what no process is charged for (loopback TCP's receive work runs
# in softirq), and "idle" the share of both cores no one used meanwhile.
#
#   TOOLS="scp psftp" bench/cpu.sh
#   JAUNT_BIN_DIR=/some/build SETUPS="jaunt-direct" bench/cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-512}
RUNS=${RUNS:-3}
TOOLS=${TOOLS:-scp sftp psftp cat}
DIRS=${DIRS:-up down}
. bench/lib.sh

head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$work/file"
install -o "$user" -g "$user" -m 644 "$work/file" "/home/$user/bench.bin"
printf 'put %s bench-up.bin\n' "$work/file" >"$work/up"
printf 'get bench.bin %s\n' "$work/back" >"$work/down"

# Each server-side process in a cgroup of its own (cgroup v1 cpuacct), so
# its CPU counts every process it starts; an sshd's per-connection
# processes end unreaped by the listener, and /proc would miss them.
acct=/sys/fs/cgroup/cpuacct
if [ -w "$acct" ]; then
  for p in $sshd_pid $jump_pid $auth_pid $direct_pid $tunnel_pid $osh_pid; do
    mkdir -p "$acct/jaunt-bench-$p"
    echo "$p" >"$acct/jaunt-bench-$p/cgroup.procs"
  done
  trap 'cleanup; sleep 1; rmdir "$acct"/jaunt-bench-* 2>/dev/null || true' EXIT
  cpu() { echo "$(cat "$acct/jaunt-bench-$1/cpuacct.usage") / 1000000000" | bc -l; }
else
  echo "bench: no cgroup v1 cpuacct here: server CPU from /proc, which misses sshd's sessions" >&2
  tck=$(getconf CLK_TCK)
  # Own plus reaped children's.
  cpu() { awk -v t="$tck" '{print ($14 + $15 + $16 + $17) / t}' "/proc/$1/stat"; }
fi
# This shell's reaped children, user and system (bash's `times`, run in
# this shell: in a subshell it would count the subshell's).
# Sets `reaped` (not a command substitution, which is a subshell).
children() {
  times >"$work/times"
  reaped=$(tail -1 "$work/times" | sed 's/\([0-9]\)m/\1 /g; s/s//g' | awk '{print $1 * 60 + $2 + $3 * 60 + $4}')
}
per_gib() { echo "($2 - $1) * 1024 / $SIZE_MIB" | bc -l | xargs printf '%.2f'; }
# "busy idle" jiffies of all cores so far (idle counts iowait).
machine() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat; }
jiffy=$(getconf CLK_TCK)

printf '%-5s %-4s %-13s %8s %10s %10s %10s %10s %10s %6s\n' tool dir setup MiB/s client relay server total machine idle
for tool in $TOOLS; do
for dir in $DIRS; do
  for setup in $SETUPS; do
    case $tool-$setup in psftp-proxyjump | psftp-node-only) continue ;; esac
    case $setup in
      direct-sshd) opts=("${direct_opts[@]}"); host="$user@127.0.0.1"; relay=""; server=$sshd_pid ;;
      proxyjump) opts=("${jump_opts[@]}"); host="$user@127.0.0.1"; relay=$jump_pid; server=$sshd_pid ;;
      jaunt-direct) opts=("${jaunt_opts[@]}"); host="$user@direct.bench"; relay=$auth_pid; server=$direct_pid ;;
      jaunt-tunnel) opts=("${jaunt_opts[@]}"); host="$user@tunnel.bench"; relay=$auth_pid; server=$tunnel_pid ;;
      node-only) opts=("${node_opts[@]}"); host="$user@nodeonly"; relay=""; server=$direct_pid ;;
      jaunt-openssh) opts=("${jaunt_opts[@]}"); host="$user@osh.bench"; relay=$auth_pid; server=$osh_pid ;;
      *) echo "bench: cpu.sh does not know setup $setup" >&2; exit 1 ;;
    esac
    case $setup in
      direct-sshd) putty=(-batch -P "$sshd_port" -i "$work/userkey.ppk" -hostkey "$hostfp" "$user@127.0.0.1") ;;
      jaunt-openssh) putty=(-batch -load "$user@osh [proxy:127.0.0.1]") ;;
      jaunt-*) putty=(-batch -load "$user@${setup#jaunt-} [proxy:127.0.0.1]") ;;
    esac
    ssh_opts=("${opts[@]/-P/-p}")
    for _ in $(seq 1 "$RUNS"); do
      r0=0; r1=0
      [ -n "$relay" ] && r0=$(cpu "$relay")
      s0=$(cpu "$server")
      children; c0=$reaped
      read -r m0 i0 < <(machine)
      t0=$(date +%s.%N)
      case $tool-$dir in
        scp-up) scp "${opts[@]}" "$work/file" "$host:/home/$user/bench-up.bin" ;;
        scp-down) scp "${opts[@]}" "$host:/home/$user/bench.bin" "$work/back" ;;
        sftp-*) sftp "${opts[@]}" -b "$work/$dir" "$host" >/dev/null ;;
        psftp-*) psftp "${putty[@]}" -b "$work/$dir" >/dev/null 2>&1 ;;
        cat-up) ssh "${ssh_opts[@]}" "$host" 'cat > /dev/null' <"$work/file" ;;
        cat-down) ssh "${ssh_opts[@]}" "$host" "cat /home/$user/bench.bin" >/dev/null ;;
      esac
      t1=$(date +%s.%N)
      read -r m1 i1 < <(machine)
      children; c1=$reaped
      # The server reaps its session processes just after the client ends.
      sleep 1
      s1=$(cpu "$server")
      [ -n "$relay" ] && r1=$(cpu "$relay")
      client=$(per_gib "$c0" "$c1"); relayc=$(per_gib "$r0" "$r1"); serverc=$(per_gib "$s0" "$s1")
      machinec=$(per_gib 0 "$(echo "($m1 - $m0) / $jiffy" | bc -l)")
      idle=$(echo "100 * ($i1 - $i0) / ($m1 - $m0 + $i1 - $i0)" | bc -l)
      printf '%-5s %-4s %-13s %8.1f %10s %10s %10s %10.2f %10s %5.0f%%\n' "$tool" "$dir" "$setup" \
        "$(echo "$SIZE_MIB / ($t1 - $t0)" | bc -l)" "$client" "$relayc" "$serverc" \
        "$(echo "$client + $relayc + $serverc" | bc -l)" "$machinec" "$idle"
    done
  done
done
done
