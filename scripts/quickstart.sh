#!/usr/bin/env bash
# Builds Jaunt and starts a one-machine cluster (auth + proxy on embedded
# SQLite) in ./.jaunt-demo, creates a first user for you, and prints how to
# sign up and log in. Run it again to get a fresh signup command.
#
#   JAUNT_DEMO_PORT=3080        the proxy's port on 127.0.0.1
#   JAUNT_SECOND_FACTOR=otp     otp (an authenticator app) or off
#   JAUNT_DEMO_USER=$USER       the first user's name (and OS login)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cc >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
  else
    echo "quickstart: a C compiler is needed (apt-get install gcc)" >&2; exit 1
  fi
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/jaunt-target}"
echo "Building jaunt, jsh and jctl..."
cargo build --locked --bins -p jaunt-cli
bin="$CARGO_TARGET_DIR/debug"

dir="${JAUNT_DEMO_DIR:-$PWD/.jaunt-demo}"
port="${JAUNT_DEMO_PORT:-3080}"
factor="${JAUNT_SECOND_FACTOR:-otp}"
user="${JAUNT_DEMO_USER:-${USER:-$(id -un)}}"
data="$dir/data"
mkdir -p "$dir"

if [ -S "$data/admin.sock" ] && "$bin/jctl" --data-dir "$data" status >/dev/null 2>&1; then
  echo "A demo cluster is already running in $dir."
else
  nohup "$bin/jaunt" start --data-dir "$data" --cluster-name demo \
    --listen "127.0.0.1:$port" --public-addr "localhost:$port" \
    --second-factor "$factor" >"$dir/jaunt.log" 2>&1 &
  echo $! >"$dir/jaunt.pid"
  for _ in $(seq 1 100); do
    "$bin/jctl" --data-dir "$data" status >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "$dir/jaunt.pid")" 2>/dev/null; then
      echo "jaunt failed to start:" >&2; cat "$dir/jaunt.log" >&2; exit 1
    fi
    sleep 0.1
  done
fi

# One node, joined through a reverse tunnel, so there is a server to reach.
if [ ! -f "$dir/node/node-identity.json" ] || ! kill -0 "$(cat "$dir/node.pid" 2>/dev/null)" 2>/dev/null; then
  token=$("$bin/jctl" --data-dir "$data" tokens add --type=node --ttl=5m | awk '/invite token/ {print $4}')
  pin=$("$bin/jctl" --data-dir "$data" status | awk '/CA pin/ {print $3}')
  nohup "$bin/jaunt" start --roles=node --data-dir "$dir/node" --token="$token" \
    --proxy="localhost:$port" --ca-pin="$pin" --nodename=demo-node --labels=env=demo \
    >"$dir/node.log" 2>&1 &
  echo $! >"$dir/node.pid"
fi

if "$bin/jctl" --data-dir "$data" users ls | awk 'NR>2 {print $1}' | grep -qx "$user"; then
  invite=$("$bin/jctl" --data-dir "$data" users reset "$user")
else
  invite=$("$bin/jctl" --data-dir "$data" users add "$user" --roles=access,editor --logins="$user")
fi
signup=$(echo "$invite" | grep -o 'jsh signup .*')
pin=$("$bin/jctl" --data-dir "$data" status | awk '/CA pin/ {print $3}')

cat <<MSG

Jaunt cluster "demo" is running: proxy https://localhost:$port, data in $data
with one node, demo-node (logs in $dir; stop both with:
kill \$(cat $dir/jaunt.pid) \$(cat $dir/node.pid)).

Your user "$user" (roles access,editor; login $user) is ready to sign up.

  export PATH="$bin:\$PATH"
  $signup
  jsh login --proxy=localhost:$port --user=$user --ca-pin=$pin
  jsh status
  jsh ls
  jsh ssh $user@demo-node

MSG
if [ "$factor" = otp ]; then
  echo "Signup shows a QR code for an authenticator app; login asks for its current code."
  echo "(For a quick look without a phone: JAUNT_SECOND_FACTOR=off on a fresh .jaunt-demo.)"
fi
