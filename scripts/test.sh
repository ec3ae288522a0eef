#!/usr/bin/env bash
# Runs every test of the workspace. On a fresh Debian machine, run as root: it
# first installs the system packages the tests use (PuTTY's puttygen,
# OpenSSH's ssh-keygen and sshd, PostgreSQL, a C compiler for the bundled SQLite, the mingw-w64
# toolchain and Wine for the Windows jsh.exe).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v puttygen >/dev/null 2>&1 || need+=(putty-tools)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
# The agentless-node tests run an sshd of their own (never the machine's).
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# The storage tests start private PostgreSQL servers (initdb as the
# package's postgres user; never the machine's own cluster).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
# Two instances behind a real load balancer (tests/shared_store.rs).
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v plink >/dev/null 2>&1 || need+=(putty-tools)
command -v asciinema >/dev/null 2>&1 || need+=(asciinema)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# `systemd-analyze verify` checks the unit `jaunt install systemd` writes.
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The Windows jsh.exe is cross-built and run under Wine (tests/windows.rs).
if [ -z "${JAUNT_SKIP_WINE:-}" ]; then
  command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64-win32)
  command -v wine >/dev/null 2>&1 || need+=(wine wine64)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: missing ${need[*]}; install them (apt-get install ${need[*]}) or run this as root" >&2
    exit 1
  fi
  echo "scripts/test.sh: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# ssh-audit (PyPI) checks the node's SSH algorithms and connection
# throttling (tests/hardening.rs); pinned, as its findings change by version.
if ! python3 -m ssh_audit --help >/dev/null 2>&1 \
   || [ "$(python3 -m pip show ssh-audit 2>/dev/null | sed -n 's/^Version: //p')" != 3.9.0 ]; then
  command -v pip3 >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1 || {
    apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null; }
  echo "scripts/test.sh: installing ssh-audit 3.9.0"
  python3 -m pip install -q --root-user-action=ignore --break-system-packages ssh-audit==3.9.0 2>/dev/null \
    || python3 -m pip install -q --root-user-action=ignore ssh-audit==3.9.0
fi
command -v cargo >/dev/null 2>&1 || { echo "scripts/test.sh: cargo not found; install Rust with rustup" >&2; exit 1; }

# Reuse one build directory outside the clone, so fresh clones build fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/jaunt-target}"

windows=x86_64-pc-windows-gnu
if [ -z "${JAUNT_SKIP_WINE:-}" ]; then
  if ! rustup target list --installed 2>/dev/null | grep -qx "$windows" \
     && ! rustup target add "$windows"; then
    echo "scripts/test.sh: cannot install the Rust target $windows, so the Windows jsh.exe" >&2
    echo "cannot be built or tested. Set JAUNT_SKIP_WINE=1 to run the rest without it." >&2
    exit 1
  fi
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if [ -z "${JAUNT_SKIP_WINE:-}" ]; then
  # jsh alone builds for Windows (the daemon and jctl are Unix-only).
  cargo clippy -p jaunt-cli -p jaunt-client --no-default-features --target "$windows" --locked -- -D warnings
  cargo build -p jaunt-cli --bin jsh --no-default-features --target "$windows" --locked
else
  echo "!!! JAUNT_SKIP_WINE is set: the Windows jsh.exe is neither built nor tested !!!" >&2
fi
# Every test binary runs even when one fails; the failures are listed last.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
if [ "$status" -ne 0 ]; then
  echo
  echo "scripts/test.sh: FAILED tests:"
  grep -E '^test .* \.\.\. FAILED$' "$log" | sed 's/^/  /' || true
  # cargo's own summary: the test binaries that failed or did not build.
  sed -n '/^error: [0-9]* targets\? failed:/,$p' "$log" || true
  exit "$status"
fi
