#!/usr/bin/env bash
# Throughput of a large file copy, Jaunt against OpenSSH on this machine, in
# one run: OpenSSH scp and sftp, PuTTY psftp, and raw bytes through an exec
# channel (ssh HOST 'cat > /dev/null' < file, which leaves the SFTP server
# out), and `jsh ssh` doing the same (tool "jsh", against OpenSSH's ssh to
# (a)). Setups (bench/lib.sh): (a) direct-sshd, (b) proxyjump through a
# second sshd, (c) jaunt-direct, (d) jaunt-tunnel, and node-only (OpenSSH
# straight to the Jaunt node, a diagnostic). Uploads and downloads, RUNS
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
# Downloads read this copy, whichever tools run.
install -o "$user" -g "$user" -m 644 "$work/file" "/home/$user/bench.bin"
# psftp batch files: put or get the bench file.
printf 'put %s bench.bin\n' "$work/file" >"$work/psftp-up"
printf 'get bench.bin %s\n' "$work/back" >"$work/psftp-down"
printf 'put %s bench.bin\n' "$work/file" >"$work/sftp-up"
printf 'get bench.bin %s\n' "$work/back" >"$work/sftp-down"

declare -A result
for tool in $TOOLS; do
for dir in up down; do
  for setup in $SETUPS; do
    [ "$tool" = psftp ] && [ "$setup" = proxyjump ] && continue   # plink has no ProxyJump
    [ "$tool" = psftp ] && [ "$setup" = node-only ] && continue
    # jsh: `jsh ssh` (its own SSH client) against OpenSSH's ssh to (a).
    [ "$tool" = jsh ] && { [ "$setup" = proxyjump ] || [ "$setup" = node-only ]; } && continue
    rates=()
    for _ in $(seq 1 "$RUNS"); do
      case $setup in
        direct-sshd) opts=("${direct_opts[@]}"); host="$user@127.0.0.1" ;;
        proxyjump) opts=("${jump_opts[@]}"); host="$user@127.0.0.1" ;;
        jaunt-direct) opts=("${jaunt_opts[@]}"); host="$user@direct.bench" ;;
        jaunt-tunnel) opts=("${jaunt_opts[@]}"); host="$user@tunnel.bench" ;;
        node-only) opts=("${node_opts[@]}"); host="$user@nodeonly" ;;
      esac
      ssh_opts=("${opts[@]/-P/-p}")
      case $setup in
        direct-sshd) putty=(-batch -P "$sshd_port" -i "$work/userkey.ppk" -hostkey "$hostfp" "$user@127.0.0.1") ;;
        jaunt-*) putty=(-batch -load "$user@${setup#jaunt-} [proxy:127.0.0.1]") ;;
      esac
      case $tool-$dir in
        scp-up) s=$(timed scp "${opts[@]}" "$work/file" "$host:/home/$user/bench.bin") || exit 1 ;;
        scp-down) s=$(timed scp "${opts[@]}" "$host:/home/$user/bench.bin" "$work/back") || exit 1 ;;
        sftp-up) s=$(timed sftp "${opts[@]}" -b "$work/sftp-up" "$host") || exit 1 ;;
        sftp-down) s=$(timed sftp "${opts[@]}" -b "$work/sftp-down" "$host") || exit 1 ;;
        psftp-up) s=$(timed psftp "${putty[@]}" -b "$work/psftp-up") || exit 1 ;;
        psftp-down) s=$(timed psftp "${putty[@]}" -b "$work/psftp-down") || exit 1 ;;
        cat-up) s=$(timed ssh "${ssh_opts[@]}" "$host" 'cat > /dev/null' <"$work/file") || exit 1 ;;
        cat-down) s=$(timed ssh "${ssh_opts[@]}" "$host" "cat /home/$user/bench.bin") || exit 1 ;;
        jsh-up)
          if [ "$setup" = direct-sshd ]; then s=$(timed ssh "${ssh_opts[@]}" "$host" 'cat > /dev/null' <"$work/file") || exit 1
          else s=$(timed "$bin/jsh" ssh -T "$user@${setup#jaunt-}" 'cat > /dev/null' <"$work/file") || exit 1; fi ;;
        jsh-down)
          if [ "$setup" = direct-sshd ]; then s=$(timed ssh "${ssh_opts[@]}" "$host" "cat /home/$user/bench.bin") || exit 1
          else s=$(timed "$bin/jsh" ssh -T "$user@${setup#jaunt-}" "cat /home/$user/bench.bin") || exit 1; fi ;;
      esac
      rates+=("$(echo "$SIZE_MIB / $s" | bc -l)")
    done
    result[$tool-$dir-$setup]=$(printf '%s\n' "${rates[@]}" | median)
  done
done
done
if [ -f "$work/back" ]; then cmp "$work/file" "$work/back"; fi

echo "$(machine); file ${SIZE_MIB} MiB; ${RUNS} runs"
printf '%-5s %-6s %-14s %28s %8s\n' tool dir setup "MiB/s median (min/max)" ratio
for tool in $TOOLS; do
  for dir in up down; do
    base=$(echo "${result[$tool-$dir-direct-sshd]}" | cut -d' ' -f1)
    for setup in $SETUPS; do
      [ -n "${result[$tool-$dir-$setup]:-}" ] || continue
      read -r med lo hi <<<"${result[$tool-$dir-$setup]}"
      printf '%-5s %-6s %-14s %14s (%s/%s) %8.2f\n' "$tool" "$dir" "$setup" "$med" "$lo" "$hi" "$(echo "$med / $base" | bc -l)"
    done
  done
done
