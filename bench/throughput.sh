#!/usr/bin/env bash
# Throughput of a large file copy, Jaunt against OpenSSH on this machine, in
# one run: OpenSSH scp and sftp, PuTTY psftp, and raw bytes through an exec
# channel (ssh HOST 'cat > /dev/null' < file, which leaves the SFTP server
# out), and `jsh ssh` doing the same (tool "jsh", against OpenSSH's ssh to
# (a)). Setups (bench/lib.sh): (a) direct-sshd, (b) proxyjump through a
# second sshd, (c) jaunt-direct, (d) jaunt-tunnel, node-only (OpenSSH
# straight to the Jaunt node, a diagnostic), and with LEAF=1 jaunt-leaf (a
# leaf cluster's direct node through this cluster's proxy). Uploads and downloads, RUNS
# times each; prints MiB/s and the ratio to (a). Run as root (it creates a
# throwaway OS user); 127.0.0.1 only; every process is stopped by PID.
#
#   SIZE_MIB=1024 RUNS=5 bench/throughput.sh
#   TOOLS="sftp cat" SETUPS="direct-sshd jaunt-direct" SIZE_MIB=256 RUNS=3 bench/throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-5}
TOOLS=${TOOLS:-scp sftp psftp cat jsh}
. bench/lib.sh

head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$work/file"
# Downloads read this copy, whichever tools run; uploads write bench-up.bin,
# so an upload stopped half-way cannot shorten what a download reads.
install -o "$user" -g "$user" -m 644 "$work/file" "/home/$user/bench.bin"
# psftp batch files: put or get the bench file.
printf 'put %s bench-up.bin\n' "$work/file" >"$work/psftp-up"
printf 'get bench.bin %s\n' "$work/back" >"$work/psftp-down"
printf 'put %s bench-up.bin\n' "$work/file" >"$work/sftp-up"
printf 'get bench.bin %s\n' "$work/back" >"$work/sftp-down"

# A transfer that takes longer than STALL_SECS is stopped and counted as
# stalled, not as a rate: PuTTY's psftp uploads to OpenSSH's own sshd
# sometimes crawl at under 1 MiB/s on this machine. The median is of the
# other runs; the table says how many stalled.
STALL_SECS=${STALL_SECS:-180}
run_one() {
  local t0
  t0=$(date +%s.%N)
  if timeout "$STALL_SECS" "$@" >/dev/null 2>&1; then
    echo "$(date +%s.%N) - $t0" | bc -l
  elif [ $? -eq 124 ]; then
    echo stalled
  else
    echo "bench: failed: $*" >&2
    return 1
  fi
}

# The node name of a Jaunt setup, and jsh's flags for it.
jsh_host() { case $1 in jaunt-openssh) echo osh ;; jaunt-leaf) echo ldirect ;; *) echo "${1#jaunt-}" ;; esac; }
jsh_flags() { case $1 in jaunt-leaf) echo --cluster=leafc ;; esac; }

# Whether SETUP runs TOOL (plink has no ProxyJump; `jsh ssh` is measured
# against OpenSSH's ssh to (a)).
runs_on() {
  case $1-$2 in
    psftp-proxyjump|psftp-node-only|jsh-proxyjump|jsh-node-only) return 1 ;;
  esac
}

# One transfer: TOOL DIR SETUP; prints its seconds, or "stalled".
transfer() {
  local tool=$1 dir=$2 setup=$3 opts host ssh_opts putty
  case $setup in
    direct-sshd) opts=("${direct_opts[@]}"); host="$user@127.0.0.1" ;;
    proxyjump) opts=("${jump_opts[@]}"); host="$user@127.0.0.1" ;;
    jaunt-direct) opts=("${jaunt_opts[@]}"); host="$user@direct.bench" ;;
    jaunt-tunnel) opts=("${jaunt_opts[@]}"); host="$user@tunnel.bench" ;;
    jaunt-openssh) opts=("${jaunt_opts[@]}"); host="$user@osh.bench" ;;
    node-only) opts=("${node_opts[@]}"); host="$user@nodeonly" ;;
    jaunt-leaf) opts=("${jaunt_opts[@]}"); host="$user@ldirect.leafc" ;;
  esac
  ssh_opts=("${opts[@]/-P/-p}")
  case $setup in
    direct-sshd) putty=(-batch -P "$sshd_port" -i "$work/userkey.ppk" -hostkey "$hostfp" "$user@127.0.0.1") ;;
    jaunt-openssh) putty=(-batch -load "$user@osh [proxy:127.0.0.1]") ;;
    jaunt-leaf) putty=(-batch -load "$user@ldirect [leaf:leafc,proxy:127.0.0.1]") ;;
    jaunt-*) putty=(-batch -load "$user@${setup#jaunt-} [proxy:127.0.0.1]") ;;
  esac
  case $tool-$dir in
    scp-up) run_one scp "${opts[@]}" "$work/file" "$host:/home/$user/bench-up.bin" ;;
    scp-down) run_one scp "${opts[@]}" "$host:/home/$user/bench.bin" "$work/back" ;;
    sftp-up) run_one sftp "${opts[@]}" -b "$work/sftp-up" "$host" ;;
    sftp-down) run_one sftp "${opts[@]}" -b "$work/sftp-down" "$host" ;;
    psftp-up) run_one psftp "${putty[@]}" -b "$work/psftp-up" ;;
    psftp-down) run_one psftp "${putty[@]}" -b "$work/psftp-down" ;;
    cat-up) run_one ssh "${ssh_opts[@]}" "$host" 'cat > /dev/null' <"$work/file" ;;
    cat-down) run_one ssh "${ssh_opts[@]}" "$host" "cat /home/$user/bench.bin" ;;
    jsh-up)
      if [ "$setup" = direct-sshd ]; then run_one ssh "${ssh_opts[@]}" "$host" 'cat > /dev/null' <"$work/file"
      else run_one "$bin/jsh" ssh -T $(jsh_flags "$setup") "$user@$(jsh_host "$setup")" 'cat > /dev/null' <"$work/file"; fi ;;
    jsh-down)
      if [ "$setup" = direct-sshd ]; then run_one ssh "${ssh_opts[@]}" "$host" "cat /home/$user/bench.bin"
      else run_one "$bin/jsh" ssh -T $(jsh_flags "$setup") "$user@$(jsh_host "$setup")" "cat /home/$user/bench.bin"; fi ;;
  esac
}

# Runs are interleaved: run i of every setup, then run i+1, so a drift of
# the machine over minutes falls on all setups alike rather than on
# whichever ran last.
declare -A result stalled rates
for tool in $TOOLS; do
for dir in up down; do
  for setup in $SETUPS; do stalled[$tool-$dir-$setup]=0; rates[$tool-$dir-$setup]=; done
  for _ in $(seq 1 "$RUNS"); do
    for setup in $SETUPS; do
      runs_on "$tool" "$setup" || continue
      s=$(transfer "$tool" "$dir" "$setup") || exit 1
      if [ "$s" = stalled ]; then
        stalled[$tool-$dir-$setup]=$((stalled[$tool-$dir-$setup] + 1))
      else
        rates[$tool-$dir-$setup]+=" $(echo "$SIZE_MIB / $s" | bc -l)"
      fi
    done
  done
  for setup in $SETUPS; do
    runs_on "$tool" "$setup" || continue
    r=${rates[$tool-$dir-$setup]:- 0}
    result[$tool-$dir-$setup]=$(printf '%s\n' $r | median)
    echo "bench: $tool $dir $setup: ${result[$tool-$dir-$setup]} MiB/s (median min max), ${stalled[$tool-$dir-$setup]} stalled" >&2
  done
done
done
if [ -f "$work/back" ]; then cmp "$work/file" "$work/back"; fi

echo "$(machine); file ${SIZE_MIB} MiB; ${RUNS} runs"
printf '%-5s %-6s %-14s %28s %8s %8s\n' tool dir setup "MiB/s median (min/max)" ratio stalled
for tool in $TOOLS; do
  for dir in up down; do
    base=$(echo "${result[$tool-$dir-direct-sshd]}" | cut -d' ' -f1)
    for setup in $SETUPS; do
      [ -n "${result[$tool-$dir-$setup]:-}" ] || continue
      read -r med lo hi <<<"${result[$tool-$dir-$setup]}"
      printf '%-5s %-6s %-14s %14s (%s/%s) %8.2f %8s\n' "$tool" "$dir" "$setup" "$med" "$lo" "$hi" "$(echo "$med / $base" | bc -l)" "${stalled[$tool-$dir-$setup]}"
    done
  done
done
