#!/usr/bin/env bash
# Builds the release packages into dist/ (or $OUT):
#   jaunt_<version>_<arch>.deb   the daemon and jctl, the systemd unit
#                                (/lib/systemd/system/jaunt.service), shell
#                                completions and manual pages; its postinst
#                                makes /var/lib/jaunt (0700) and, when absent,
#                                a commented /etc/jaunt/jaunt.yaml from
#                                `jaunt configure` for this host
#   jsh_<version>_<arch>.deb     the client alone
#   jsh-<version>-windows-x86_64.zip   jsh.exe, for PuTTY and WinSCP users
# Packages are built with dpkg-deb from a staging tree (no other tool).
#
#   scripts/package.sh                      release build, all three
#   JAUNT_BIN_DIR=dir NO_WINDOWS=1 scripts/package.sh   package binaries built already
# DEB_COMPRESS: dpkg-deb's compressor (xz; the tests use none, for speed).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/jaunt-target}"
out=$(mkdir -p "${OUT:-dist}" && cd "${OUT:-dist}" && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
if [ -n "${JAUNT_BIN_DIR:-}" ]; then
  bin=$JAUNT_BIN_DIR
else
  cargo build --release --locked -p jaunt-cli
  bin="$CARGO_TARGET_DIR/release"
fi
compress=${DEB_COMPRESS:-xz}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# Completions and manual pages for binary $1 into staging root $2.
extras() {
  local b=$1 root=$2
  install -d "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/man/man1"
  "$bin/$b" completion bash >"$root/usr/share/bash-completion/completions/$b"
  "$bin/$b" completion zsh >"$root/usr/share/zsh/vendor-completions/_$b"
  "$bin/$b" completion fish >"$root/usr/share/fish/vendor_completions.d/$b.fish"
  "$bin/$b" man | gzip -9n >"$root/usr/share/man/man1/$b.1.gz"
}

# control file: package, description, section.
control() {
  local root=$1 name=$2 summary=$3 section=$4
  install -d "$root/DEBIAN"
  cat >"$root/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: $arch
Maintainer: Jaunt developers <jaunt@localhost>
Section: $section
Priority: optional
Depends: libc6
Homepage: https://localhost/jaunt
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Description: $summary
 Jaunt: certificate-based SSH access. Users sign in once, get
 short-lived certificates and reach every server through one proxy with
 jsh, OpenSSH or PuTTY; every session is authorized by role, audited and
 recorded.
EOF
}

# --- jaunt: daemon and jctl ---------------------------------------------
root="$stage/jaunt"
install -D -m 755 "$bin/jaunt" "$root/usr/bin/jaunt"
install -D -m 755 "$bin/jctl" "$root/usr/bin/jctl"
install -d "$root/lib/systemd/system"
"$bin/jaunt" install systemd --exe=/usr/bin/jaunt --output="$root/lib/systemd/system/jaunt.service" >/dev/null
chmod 644 "$root/lib/systemd/system/jaunt.service"
extras jaunt "$root"
extras jctl "$root"
control "$root" jaunt "certificate-based SSH access: the auth, proxy and node daemon, and jctl" admin
# DPKG_ROOT: set by dpkg for an install into another root.
cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  install -d -m 0700 "${DPKG_ROOT:-}/var/lib/jaunt"
  install -d -m 0755 "${DPKG_ROOT:-}/etc/jaunt"
  if [ ! -e "${DPKG_ROOT:-}/etc/jaunt/jaunt.yaml" ]; then
    "${DPKG_ROOT:-}/usr/bin/jaunt" configure --data-dir=/var/lib/jaunt -o "${DPKG_ROOT:-}/etc/jaunt/jaunt.yaml" >/dev/null
    chmod 0640 "${DPKG_ROOT:-}/etc/jaunt/jaunt.yaml"
  fi
  if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
  fi
  echo "jaunt: edit /etc/jaunt/jaunt.yaml, then: systemctl enable --now jaunt"
fi
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
# The cluster's data (its CAs, users, audit log) stays unless purged.
if [ "$1" = purge ]; then
  rm -rf "${DPKG_ROOT:-}/var/lib/jaunt" "${DPKG_ROOT:-}/etc/jaunt/jaunt.yaml"
fi
EOF
chmod 755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
dpkg-deb --root-owner-group -Z"$compress" --build "$root" "$out/jaunt_${version}_${arch}.deb" >/dev/null

# --- jsh: the client ------------------------------------------------------
root="$stage/jsh"
install -D -m 755 "$bin/jsh" "$root/usr/bin/jsh"
extras jsh "$root"
control "$root" jsh "certificate-based SSH access: the jsh client" net
dpkg-deb --root-owner-group -Z"$compress" --build "$root" "$out/jsh_${version}_${arch}.deb" >/dev/null

# --- jsh.exe for Windows ----------------------------------------------------
if [ -z "${NO_WINDOWS:-}" ]; then
  cargo build --release --locked -p jaunt-cli --bin jsh --no-default-features --target x86_64-pc-windows-gnu
  exe="$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/release/jsh.exe"
  python3 - "$exe" "$out/jsh-${version}-windows-x86_64.zip" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as z:
    z.write(sys.argv[1], "jsh.exe")
EOF
fi
ls -1 "$out"
