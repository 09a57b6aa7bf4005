#!/usr/bin/env bash
# Fuzzes rsg with libFuzzer (cargo-fuzz, nightly toolchain) and reports the executions of
# each target. Not part of hack/test.sh: the property tests in tests/properties.rs check the
# same properties on stable there.
#
#   hack/fuzz.sh                 every target, 10,000,000 executions each
#   hack/fuzz.sh 1000000         every target, that many executions
#   hack/fuzz.sh 1000000 promql_query prometheus_duration
#
# Corpora live in fuzz/corpus/<target> and grow as the fuzzer finds new paths (commit what
# `cargo fuzz cmin` keeps). A crash is saved under fuzz/artifacts/<target>/: turn it into a
# regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-10000000}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(admission_review prometheus_duration prometheus_response promql_query)

command -v rustup >/dev/null 2>&1 || { echo "rustup is needed for the nightly toolchain" >&2; exit 1; }
rustup toolchain list | grep -q '^nightly' || { echo "no nightly toolchain: rustup toolchain install nightly" >&2; exit 1; }
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "[fuzz] installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

for target in "${TARGETS[@]}"; do
  log="fuzz/target/$target.log"
  mkdir -p fuzz/target
  # Safe Rust: no sanitizer, for speed; panics and aborts are what is looked for.
  if ! cargo +nightly fuzz run --sanitizer none "$target" "fuzz/corpus/$target" -- \
      -runs="$RUNS" -max_len=16384 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "[fuzz] $target FAILED: see $log and fuzz/artifacts/$target/" >&2
    exit 1
  fi
  done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)
  echo "[fuzz] $target: ${done_line:-no summary (see $log)}"
done
