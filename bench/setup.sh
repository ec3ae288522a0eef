#!/usr/bin/env bash
# Session setup latency: the time from starting a client to its exit for a
# session that runs `true`, with OpenSSH `ssh -T` and PuTTY `plink -batch`,
# through (a) direct-sshd, (b) proxyjump, (c) jaunt-direct, (d) jaunt-tunnel,
# (e) jaunt-openssh (an agentless node), and with LEAF=1 (f) jaunt-leaf (a
# leaf cluster's direct node through this cluster's proxy).
# RUNS sessions each (after one warm-up); prints median and p95 in ms and
# the difference to (a). Run as root; 127.0.0.1 only (see bench/lib.sh).
#
#   RUNS=30 bench/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
SETUPS=${SETUPS:-direct-sshd proxyjump jaunt-direct jaunt-tunnel jaunt-openssh$([ "${LEAF:-0}" = 1 ] && echo " jaunt-leaf")}
. bench/lib.sh

# "median p95" in ms of seconds on stdin.
stats() { sort -n | awk '{a[NR]=$1*1000} END {i=int(NR*0.95+0.5); if (i<1) i=1; if (i>NR) i=NR; m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f %.1f", m, a[i]}'; }

declare -A result
for tool in ssh plink; do
  for setup in $SETUPS; do
    [ "$tool" = plink ] && [ "$setup" = proxyjump ] && continue   # plink has no ProxyJump
    case $setup in
      direct-sshd) cmd=(ssh -T "${direct_opts[@]/-P/-p}" "$user@127.0.0.1" true)
        pl=(plink -batch -P "$sshd_port" -i "$work/userkey.ppk" -hostkey "$hostfp" "$user@127.0.0.1" true) ;;
      proxyjump) cmd=(ssh -T "${jump_opts[@]/-P/-p}" "$user@127.0.0.1" true) ;;
      jaunt-direct) cmd=(ssh -T "${jaunt_opts[@]}" "$user@direct.bench" true)
        pl=(plink -batch -load "$user@direct [proxy:127.0.0.1]" true) ;;
      jaunt-tunnel) cmd=(ssh -T "${jaunt_opts[@]}" "$user@tunnel.bench" true)
        pl=(plink -batch -load "$user@tunnel [proxy:127.0.0.1]" true) ;;
      jaunt-openssh) cmd=(ssh -T "${jaunt_opts[@]}" "$user@osh.bench" true)
        pl=(plink -batch -load "$user@osh [proxy:127.0.0.1]" true) ;;
      jaunt-leaf) cmd=(ssh -T "${jaunt_opts[@]}" "$user@ldirect.leafc" true)
        pl=(plink -batch -load "$user@ldirect [leaf:leafc,proxy:127.0.0.1]" true) ;;
      *) continue ;;
    esac
    [ "$tool" = plink ] && cmd=("${pl[@]}")
    "${cmd[@]}" >/dev/null 2>&1 || { echo "bench: failed: ${cmd[*]}" >&2; exit 1; }
    times=()
    for _ in $(seq 1 "$RUNS"); do
      times+=("$(timed "${cmd[@]}" 2>/dev/null)")
    done
    result[$tool-$setup]=$(printf '%s\n' "${times[@]}" | stats)
  done
done

echo "$(machine); ${RUNS} sessions each"
printf '%-6s %-14s %10s %10s %12s\n' tool setup "median ms" "p95 ms" "vs (a) ms"
for tool in ssh plink; do
  base=$(echo "${result[$tool-direct-sshd]}" | cut -d' ' -f1)
  for setup in $SETUPS; do
    [ -n "${result[$tool-$setup]:-}" ] || continue
    read -r med p95 <<<"${result[$tool-$setup]}"
    printf '%-6s %-14s %10s %10s %+12.1f\n' "$tool" "$setup" "$med" "$p95" "$(echo "$med - $base" | bc -l)"
  done
done
