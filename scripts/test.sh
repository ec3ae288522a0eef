#!/usr/bin/env bash
# Runs every test of the workspace. On a fresh Debian machine, run as root: it
# first installs the system packages the tests use (PuTTY's puttygen,
# OpenSSH's ssh-keygen, a C compiler for the bundled SQLite).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v puttygen >/dev/null 2>&1 || need+=(putty-tools)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: missing ${need[*]}; install them (apt-get install ${need[*]}) or run this as root" >&2
    exit 1
  fi
  echo "scripts/test.sh: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "scripts/test.sh: cargo not found; install Rust with rustup" >&2; exit 1; }

# Reuse one build directory outside the clone, so fresh clones build fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/jaunt-target}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
