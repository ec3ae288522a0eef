#!/usr/bin/env bash
# Shared by the benchmark scripts (sourced, not run): builds the release
# binaries and starts, on 127.0.0.1 ports chosen here, (a) a private OpenSSH
# sshd, (b) a second sshd as a ProxyJump bastion, and a Jaunt cluster with a
# direct node ("direct"), a reverse-tunnel node ("tunnel") and an agentless
# node (a third sshd joined with `jaunt join openssh`, "osh"); logs a
# throwaway OS user in; and defines the client options for each setup. Every
# process it starts is stopped by PID, and the user removed, on exit.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/jaunt-target}"
# JAUNT_BIN_DIR: run already-built binaries instead (to compare two builds
# back to back on the same machine state).
if [ -n "${JAUNT_BIN_DIR:-}" ]; then
  bin="$JAUNT_BIN_DIR"
else
  cargo build --release --locked --bins -p jaunt-cli -p jaunt-bench 2>/dev/null
  bin="$CARGO_TARGET_DIR/release"
fi
work=$(mktemp -d /tmp/jaunt-bench.XXXXXX)
user="jtbench$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # PostgreSQL's fast shutdown (SIGTERM waits for its clients to leave).
  if [ -n "${pg_pid:-}" ]; then kill -INT "$pg_pid" 2>/dev/null || true; wait "$pg_pid" 2>/dev/null || true; fi
  pkill -u "$user" 2>/dev/null || true
  userdel -r "$user" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM
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
sshd_pid=$!; pids+=($!)

# (b) a second sshd as a ProxyJump bastion (same user and key).
jump_port=$(port)
/usr/sbin/sshd -D -f /dev/null -p "$jump_port" -o ListenAddress=127.0.0.1 -h "$work/hostkey" \
  -o PasswordAuthentication=no -o UsePAM=no -o PidFile=none &
jump_pid=$!; pids+=($!)

# STORE=postgres: the cluster's store in a private PostgreSQL server
# (initdb as the postgres OS user in $work, a free port, stopped by PID)
# instead of SQLite in the data directory.
storage_args=()
if [ "${STORE:-sqlite}" = postgres ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  chmod o+x "$work"  # the server's directory is inside
  install -d -o postgres -g postgres -m 700 "$work/pg"
  as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
  "${as_pg[@]}" "$pgbin/initdb" -D "$work/pg/data" -U jaunt -A trust --no-sync -E UTF8 --locale=C >/dev/null
  pg_port=$(port)
  # As a production database would run: fsync and synchronous commit on.
  "${as_pg[@]}" "$pgbin/postgres" -D "$work/pg/data" -p "$pg_port" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$work/pg" -c max_connections=200 -c shared_buffers=256MB >"$work/pg.log" 2>&1 &
  pg_pid=$!
  for _ in $(seq 1 100); do "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.1; done
  psql -X -q -h "$work/pg" -p "$pg_port" -U jaunt -d postgres -c "CREATE DATABASE jaunt"
  storage_args=(--storage-uri "postgres://jaunt@127.0.0.1:$pg_port/jaunt?sslmode=disable")
fi

# (c), (d): a cluster, a direct node and a tunnel node.
proxy_port=$(port)
# INSTANCES=2 (with STORE=postgres): two auth+proxy instances on the one
# database behind HAProxy (TCP, round robin) at $proxy_port, the address
# everything else uses; auth_pids lists the instances.
instance() {  # data dir, listen port
  # SSH_RELAY=tls measures the relay inside TLS (the proxy's ssh_relay setting).
  # Every load generator connects from 127.0.0.1: no per-address limits.
  "$bin/jaunt" start --data-dir "$1" --cluster-name bench --listen "127.0.0.1:$2" \
    --public-addr "127.0.0.1:$proxy_port" --ssh-relay "${SSH_RELAY:-raw}" --second-factor off --max-login-attempts 1000000 \
    --max-connections 0 --max-connections-per-ip 0 --max-pending-per-ip 0 \
    "${storage_args[@]}" --log-level warn >"$1.log" 2>&1 &
}
if [ "${INSTANCES:-1}" = 2 ]; then
  [ "${STORE:-sqlite}" = postgres ] || { echo "bench: INSTANCES=2 needs STORE=postgres" >&2; exit 1; }
  a_port=$(port); b_port=$(port)
  instance "$work/auth" "$a_port"; auth_pid=$!; pids+=($!)
  for _ in $(seq 1 100); do "$bin/jctl" --data-dir "$work/auth" status >/dev/null 2>&1 && break; sleep 0.1; done
  instance "$work/auth2" "$b_port"; auth2_pid=$!; pids+=($!)
  for _ in $(seq 1 100); do "$bin/jctl" --data-dir "$work/auth2" status >/dev/null 2>&1 && break; sleep 0.1; done
  auth_pids="$auth_pid $auth2_pid"
  printf 'global\n  maxconn 9000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\nfrontend jaunt\n  bind 127.0.0.1:%s\n  default_backend instances\nbackend instances\n  balance roundrobin\n  server a 127.0.0.1:%s\n  server b 127.0.0.1:%s\n' \
    "$proxy_port" "$a_port" "$b_port" >"$work/haproxy.cfg"
  haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null && break; sleep 0.1; done
else
  instance "$work/auth" "$proxy_port"; auth_pid=$!; pids+=($!)
  auth_pids="$auth_pid"
  for _ in $(seq 1 100); do "$bin/jctl" --data-dir "$work/auth" status >/dev/null 2>&1 && break; sleep 0.1; done
fi
# RSS (KiB) and CPU ticks of every auth+proxy instance, summed; and the
# database server's CPU ticks (its own, its sessions', reaped or not).
rss_kib_sum() { for p in $auth_pids; do awk '/^VmRSS/ {print $2}' "/proc/$p/status"; done | awk '{s += $1} END {print s}'; }
cpu_ticks_sum() { for p in $auth_pids; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s += $1} END {print s}'; }
db_ticks() {
  [ -n "${pg_pid:-}" ] || { echo 0; return; }
  { awk '{print $14 + $15 + $16 + $17}' "/proc/$pg_pid/stat"
    for c in $(pgrep -P "$pg_pid"); do awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null; done; } | awk '{s += $1} END {print s}'
}
pin=$("$bin/jctl" --data-dir "$work/auth" status | awk '/CA pin/ {print $3}')
token=$("$bin/jctl" --data-dir "$work/auth" tokens add --type=node | awk '/invite token/ {print $4}')
"$bin/jaunt" start --roles=node --data-dir "$work/n1" --token="$token" --proxy="127.0.0.1:$proxy_port" --ca-pin="$pin" \
  --nodename direct --ssh-listen 127.0.0.1:0 --advertise-addr 127.0.0.1:0 --log-level warn >"$work/n1.log" 2>&1 &
direct_pid=$!; pids+=($!)
"$bin/jaunt" start --roles=node --data-dir "$work/n2" --token="$token" --proxy="127.0.0.1:$proxy_port" --ca-pin="$pin" \
  --nodename tunnel --log-level warn >"$work/n2.log" 2>&1 &
tunnel_pid=$!; pids+=($!)
# (e) an agentless node: a third sshd, joined with `jaunt join openssh`
# (its own config file, which the join edits).
osh_port=$(port)
ssh-keygen -q -t ed25519 -N '' -f "$work/osh_hostkey"
printf 'Port %s\nListenAddress 127.0.0.1\nHostKey %s\nPasswordAuthentication no\nUsePAM no\nPidFile none\nAuthorizedKeysFile none\nSubsystem sftp internal-sftp\n' \
  "$osh_port" "$work/osh_hostkey" >"$work/osh_sshd_config"
/usr/sbin/sshd -D -f "$work/osh_sshd_config" &
osh_pid=$!; pids+=($!)
"$bin/jaunt" join openssh --proxy="127.0.0.1:$proxy_port" --token="$token" --ca-pin="$pin" \
  --address="127.0.0.1:$osh_port" --nodename=osh --openssh-config="$work/osh_sshd_config" --data-dir="$work/osh" \
  --sshd-check-command="/usr/sbin/sshd -t -f" --sshd-restart-command="kill -HUP $osh_pid" >/dev/null
invite=$("$bin/jctl" --data-dir "$work/auth" users add bench --roles=access --logins="$user")
export JSH_HOME="$work/jsh"
echo 'bench password 123' | "$bin/jsh" signup --proxy="127.0.0.1:$proxy_port" --ca-pin="$pin" --password-stdin \
  --token="$(echo "$invite" | grep -o 'token=[^ ]*' | cut -d= -f2)" >/dev/null
echo 'bench password 123' | "$bin/jsh" login --proxy="127.0.0.1:$proxy_port" --ca-pin="$pin" --user=bench --password-stdin >/dev/null
"$bin/jsh" config >"$work/jaunt_ssh_config"
for _ in $(seq 1 100); do
  [ "$("$bin/jsh" ls --format=names | wc -l)" -ge 3 ] && \
    ssh -F "$work/jaunt_ssh_config" -o BatchMode=yes "$user@tunnel.bench" true 2>/dev/null && \
    ssh -F "$work/jaunt_ssh_config" -o BatchMode=yes "$user@osh.bench" true 2>/dev/null && break
  sleep 0.2
done

# (f) LEAF=1: a leaf cluster ("leafc", its own auth+proxy and a direct
# node "ldirect") trusting this one; the bench user reaches it through
# this cluster's proxy with the same login ("jaunt-leaf").
if [ "${LEAF:-0}" = 1 ]; then
  leaf_port=$(port)
  "$bin/jaunt" start --data-dir "$work/leaf" --cluster-name leafc --listen "127.0.0.1:$leaf_port" \
    --public-addr "127.0.0.1:$leaf_port" --ssh-relay "${SSH_RELAY:-raw}" --second-factor off \
    --max-connections 0 --max-connections-per-ip 0 --max-pending-per-ip 0 --log-level warn >"$work/leaf.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do "$bin/jctl" --data-dir "$work/leaf" status >/dev/null 2>&1 && break; sleep 0.1; done
  lpin=$("$bin/jctl" --data-dir "$work/leaf" status | awk '/CA pin/ {print $3}')
  ltoken=$("$bin/jctl" --data-dir "$work/leaf" tokens add --type=node | awk '/invite token/ {print $4}')
  "$bin/jaunt" start --roles=node --data-dir "$work/ln1" --token="$ltoken" --proxy="127.0.0.1:$leaf_port" --ca-pin="$lpin" \
    --nodename ldirect --ssh-listen 127.0.0.1:0 --advertise-addr 127.0.0.1:0 --log-level warn >"$work/ln1.log" 2>&1 &
  pids+=($!)
  printf "kind: role\nmetadata: {name: leaf-access}\nspec:\n  allow:\n    logins: ['{{internal.logins}}']\n    node_labels: {'*': '*'}\n" >"$work/leaf-role.yaml"
  "$bin/jctl" --data-dir "$work/leaf" create -f "$work/leaf-role.yaml" >/dev/null
  ttoken=$("$bin/jctl" --data-dir "$work/auth" tokens add --type=trusted_cluster | awk '/invite token/ {print $4}')
  printf 'kind: trusted_cluster\nmetadata: {name: bench}\nspec:\n  token: %s\n  proxy_addr: 127.0.0.1:%s\n  ca_pin: %s\n  role_map:\n    - {remote: access, local: [leaf-access]}\n' \
    "$ttoken" "$proxy_port" "$pin" >"$work/trusted_cluster.yaml"
  "$bin/jctl" --data-dir "$work/leaf" create -f "$work/trusted_cluster.yaml" >/dev/null
  "$bin/jsh" config >"$work/jaunt_ssh_config"
  for _ in $(seq 1 100); do
    ssh -F "$work/jaunt_ssh_config" -o BatchMode=yes "$user@ldirect.leafc" true 2>/dev/null && break
    sleep 0.2
  done
fi

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
"$bin/jsh" puttyconfig "$user@osh" >/dev/null
if [ "${LEAF:-0}" = 1 ]; then "$bin/jsh" puttyconfig --leaf leafc "$user@ldirect" >/dev/null; fi
puttygen "$work/userkey" -O private -o "$work/userkey.ppk"
hostfp=$(ssh-keygen -lf "$work/hostkey.pub" -E sha256 | awk '{print $2}')

direct_opts=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -i "$work/userkey" -P "$sshd_port")
jump_opts=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -i "$work/userkey"
  -J "$user@127.0.0.1:$jump_port" -P "$sshd_port")
jaunt_opts=(-F "$work/jaunt_ssh_config" -o BatchMode=yes -o LogLevel=ERROR)
node_opts=(-F "$work/node_ssh_config" -o BatchMode=yes -o LogLevel=ERROR)
# (Not a command substitution in the assignment: under `set -e` its
# failing test ended every script run without SETUPS.)
default_setups="direct-sshd proxyjump jaunt-direct jaunt-tunnel jaunt-openssh node-only"
if [ "${LEAF:-0}" = 1 ]; then default_setups+=" jaunt-leaf"; fi
SETUPS=${SETUPS:-$default_setups}
# The bastion hop needs the same options for itself: through ssh_config.
printf 'Host 127.0.0.1\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  IdentityFile %s\n  LogLevel ERROR\n' \
  "$work/userkey" >"$work/jump_config"
jump_opts=(-F "$work/jump_config" "${jump_opts[@]}")
# CIPHER=aes128-gcm@openssh.com (say) makes every OpenSSH client of every
# setup use that cipher (OpenSSH's -c), to compare setups cipher for cipher.
if [ -n "${CIPHER:-}" ]; then
  for a in direct_opts jump_opts jaunt_opts node_opts; do eval "$a+=(-c \"\$CIPHER\")"; done
fi
# PUTTY_CIPHER=aes,aesgcm,chacha20,3des,WARN,des,blowfish,arcfour (say): the
# same for PuTTY, in its saved sessions and its defaults (direct sshd).
if [ -n "${PUTTY_CIPHER:-}" ]; then
  printf 'Cipher=%s\n' "$PUTTY_CIPHER" >"$PUTTYDIR/sessions/Default%20Settings"
  sed -i "s/^Cipher=.*/Cipher=$PUTTY_CIPHER/" "$PUTTYDIR"/sessions/*
fi


# Seconds for one command, as a decimal.
timed() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || { echo "bench: failed: $*" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
# "median min max" of numbers on stdin, one decimal.
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f %.1f %.1f", m, a[1], a[NR]}'; }
machine() { echo "date: $(date -u +%F) machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(ssh -V 2>&1); $(plink -V 2>/dev/null | head -1)"; }
