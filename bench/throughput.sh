#!/usr/bin/env bash
# Throughput of a large file copy, Jaunt against OpenSSH on this machine, in
# one run, with scp (SFTP protocol) and with raw bytes through an exec
# channel (ssh HOST 'cat > /dev/null' < file), which separates the SFTP
# server's cost from the transport's: (a) scp straight to a private OpenSSH sshd, (c) scp through the
# Jaunt proxy to a direct-mode node, (d) the same to a reverse-tunnel node.
# Uploads and downloads, RUNS times each; prints MiB/s and the ratio to (a).
# Run as root (it creates a throwaway OS user). Everything is on 127.0.0.1
# and every process it starts is stopped by PID on exit.
#
#   SIZE_MIB=1024 RUNS=5 bench/throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-5}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/jaunt-target}"
cargo build --release --locked --bins -p jaunt-cli >/dev/null
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d /tmp/jaunt-bench.XXXXXX)
user="jtbench$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -u "$user" 2>/dev/null || true
  userdel -r "$user" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
useradd -m -s /bin/bash "$user"
# Without PAM, sshd refuses a locked account ('!' password) even for keys.
usermod -p '*' "$user"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# (a) a private sshd, key auth for the bench user.
sshd_port=$(port)
ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$work/userkey"
install -d -m 700 -o "$user" -g "$user" "/home/$user/.ssh"
install -m 600 -o "$user" -g "$user" "$work/userkey.pub" "/home/$user/.ssh/authorized_keys"
mkdir -p /run/sshd
/usr/sbin/sshd -D -f /dev/null -p "$sshd_port" -o ListenAddress=127.0.0.1 -h "$work/hostkey" \
  -o PasswordAuthentication=no -o UsePAM=no -o "Subsystem sftp internal-sftp" -o PidFile=none &
pids+=($!)

# (b) a second sshd as a ProxyJump bastion (same user and key).
jump_port=$(port)
/usr/sbin/sshd -D -f /dev/null -p "$jump_port" -o ListenAddress=127.0.0.1 -h "$work/hostkey" \
  -o PasswordAuthentication=no -o UsePAM=no -o PidFile=none &
pids+=($!)

# (c), (d): a cluster, a direct node and a tunnel node.
proxy_port=$(port)
"$bin/jaunt" start --data-dir "$work/auth" --cluster-name bench --listen "127.0.0.1:$proxy_port" \
  --public-addr "127.0.0.1:$proxy_port" --second-factor off --log-level warn >"$work/auth.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do "$bin/jctl" --data-dir "$work/auth" status >/dev/null 2>&1 && break; sleep 0.1; done
pin=$("$bin/jctl" --data-dir "$work/auth" status | awk '/CA pin/ {print $3}')
token=$("$bin/jctl" --data-dir "$work/auth" tokens add --type=node | awk '/invite token/ {print $4}')
"$bin/jaunt" start --roles=node --data-dir "$work/n1" --token="$token" --proxy="127.0.0.1:$proxy_port" --ca-pin="$pin" \
  --nodename direct --ssh-listen 127.0.0.1:0 --advertise-addr 127.0.0.1:0 --log-level warn >"$work/n1.log" 2>&1 &
pids+=($!)
"$bin/jaunt" start --roles=node --data-dir "$work/n2" --token="$token" --proxy="127.0.0.1:$proxy_port" --ca-pin="$pin" \
  --nodename tunnel --log-level warn >"$work/n2.log" 2>&1 &
pids+=($!)
invite=$("$bin/jctl" --data-dir "$work/auth" users add bench --roles=access --logins="$user")
export JSH_HOME="$work/jsh"
echo 'bench password 123' | "$bin/jsh" signup --proxy="127.0.0.1:$proxy_port" --ca-pin="$pin" --password-stdin \
  --token="$(echo "$invite" | grep -o 'token=[^ ]*' | cut -d= -f2)" >/dev/null
echo 'bench password 123' | "$bin/jsh" login --proxy="127.0.0.1:$proxy_port" --ca-pin="$pin" --user=bench --password-stdin >/dev/null
"$bin/jsh" config >"$work/jaunt_ssh_config"
for _ in $(seq 1 100); do
  [ "$("$bin/jsh" ls --format=names | wc -l)" -ge 2 ] && \
    ssh -F "$work/jaunt_ssh_config" -o BatchMode=yes "$user@tunnel.bench" true 2>/dev/null && break
  sleep 0.2
done

# node-only (diagnostic, not a product path): OpenSSH straight to the
# direct node's port, no proxy, to tell the node's share from the relay's.
node_addr=$("$bin/jsh" ls --format=json | python3 -c 'import json,sys; print([n["addr"] for n in json.load(sys.stdin) if n["name"]=="direct"][0])')
node_port=${node_addr##*:}
ca_line=$(awk '/^@cert-authority/ {print $3, $4; exit}' "$JSH_HOME/known_hosts")
echo "@cert-authority [127.0.0.1]:$node_port,127.0.0.1 $ca_line" >"$work/node_known_hosts"
{
  echo "Host nodeonly"
  echo "  HostName 127.0.0.1"
  echo "  Port $node_port"
  grep -E '^\s+(IdentityFile|CertificateFile|IdentitiesOnly)' "$work/jaunt_ssh_config"
  echo "  UserKnownHostsFile $work/node_known_hosts"
} >"$work/node_ssh_config"

# PuTTY: saved sessions made by jsh puttyconfig for the Jaunt nodes; for
# sshd, the same key as a .ppk and the host key pinned with -hostkey.
export PUTTYDIR="$work/putty"
"$bin/jsh" puttyconfig "$user@direct" >/dev/null
"$bin/jsh" puttyconfig "$user@tunnel" >/dev/null
puttygen "$work/userkey" -O private -o "$work/userkey.ppk"
hostfp=$(ssh-keygen -lf "$work/hostkey.pub" -E sha256 | awk '{print $2}')

head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$work/file"
direct_opts=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -i "$work/userkey" -P "$sshd_port")
jump_opts=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -i "$work/userkey"
  -J "$user@127.0.0.1:$jump_port" -P "$sshd_port")
jaunt_opts=(-F "$work/jaunt_ssh_config" -o BatchMode=yes -o LogLevel=ERROR)
node_opts=(-F "$work/node_ssh_config" -o BatchMode=yes -o LogLevel=ERROR)
TOOLS=${TOOLS:-scp sftp psftp cat}
SETUPS=${SETUPS:-direct-sshd proxyjump jaunt-direct jaunt-tunnel node-only}
# The bastion hop needs the same options for itself: through ssh_config.
printf 'Host 127.0.0.1\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  IdentityFile %s\n  LogLevel ERROR\n' \
  "$work/userkey" >"$work/jump_config"
jump_opts=(-F "$work/jump_config" "${jump_opts[@]}")

# Seconds for one copy, as a decimal.
timed() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null || { echo "bench: failed: $*" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f %.1f %.1f", m, a[1], a[NR]}'; }

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
      esac
      rates+=("$(echo "$SIZE_MIB / $s" | bc -l)")
    done
    result[$tool-$dir-$setup]=$(printf '%s\n' "${rates[@]}" | median)
  done
done
done
cmp "$work/file" "$work/back"

echo "date: $(date -u +%F) machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(ssh -V 2>&1); file ${SIZE_MIB} MiB; ${RUNS} runs"
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
