#!/usr/bin/env bash
# The test command: installs what the tests need, then checks formatting and lints and runs
# every test — unit tests, handler tests, and end-to-end tests against a real etcd +
# kube-apiserver started per test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/install-deps.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked --all-targets
