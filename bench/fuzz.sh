#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets) for SECONDS each
# (default 600), JOBS at a time (default 2), and prints each one's
# executions per second, coverage and findings. Needs a nightly toolchain
# and cargo-fuzz (`cargo install cargo-fuzz`); the product itself builds on
# stable. Crashes land in fuzz/artifacts/<target>/; the corpus in
# fuzz/corpus/<target>/ grows across runs.
#   bench/fuzz.sh [SECONDS] [JOBS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}; jobs=${2:-2}; shift $(( $# > 2 ? 2 : $# )) || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/jaunt-fuzz-target}"
# No sanitizer: the code is safe Rust (unsafe is forbidden but in the
# node's spawn module, which no target reaches); panics are the findings.
cargo +nightly fuzz build -s none >/dev/null
mkdir -p logs
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT INT TERM
run() {  # target
  mkdir -p "corpus/$1"
  cargo +nightly fuzz run -s none "$1" "corpus/$1" -- -max_total_time="$secs" -print_final_stats=1 \
    >"logs/$1.log" 2>&1 && echo "$1: no finding" || echo "$1: FINDING (see fuzz/logs/$1.log, fuzz/artifacts/$1/)"
  local execs cov
  execs=$(grep -o 'exec/s: [0-9]*' "logs/$1.log" | tail -1 | awk '{print $2}')
  cov=$(grep -o 'cov: [0-9]*' "logs/$1.log" | tail -1 | awk '{print $2}')
  echo "$1: ${secs}s, ${execs:-?} exec/s, coverage ${cov:-?} edges, corpus $(ls "corpus/$1" | wc -l) inputs"
}
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
  run "$t" &
  pids+=($!)
done
wait
