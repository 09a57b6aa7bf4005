#!/usr/bin/env bash
# The test command: installs what the tests need (hack/install-deps.sh, which builds and caches the
# Kubernetes components of hack/versions.sh), checks formatting and lints, then runs
#   1. every test (unit, handler, end-to-end) against the newest Kubernetes release pinned, and
#   2. the end-to-end subset named below against the oldest supported release (the manual's floor).
# Each end-to-end test binary starts its own etcd + kube-apiserver (+ controller manager,
# kube-scheduler and kwok nodes where it needs pods). Every failure is shown (--no-fail-fast),
# and the command fails if any test did.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/versions.sh
hack/install-deps.sh
eval "$(hack/install-k8s.sh --print-env)"
export RSG_ETCD_BIN RSG_KWOK_BIN RSG_LWS_DIR RSG_KEDA_DIR RSG_METRICS_SERVER_BIN

# What runs on the floor release too: CRD install and both webhooks as shipped, GroupReplication
# 0 <-> N with Services, InplaceScaling, an autoscaling/v2 HPA on the scale subresource, rolling
# update, the tenant boundary's refusals, and admission records (RSGs stored past the webhooks).
FLOOR_SUBSET=(
  admission_e2e
  group_replication_e2e
  inplace_scaling_e2e
  rolling_update_e2e
  samples_e2e
  tenant_boundary_e2e
  rbac_e2e
  admission_record_e2e
)

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

failed=0
echo "== cargo test: everything, on Kubernetes $K8S_NEWEST_VERSION"
RSG_K8S_BIN="$RSG_K8S_BIN" cargo test --locked --no-fail-fast --all-targets || failed=1

floor_targets=()
for target in "${FLOOR_SUBSET[@]}"; do floor_targets+=(--test "$target"); done
echo "== cargo test: the floor subset, on Kubernetes $K8S_FLOOR_VERSION"
RSG_K8S_BIN="$RSG_K8S_FLOOR_BIN" cargo test --locked --no-fail-fast "${floor_targets[@]}" || failed=1

if [ "$failed" -ne 0 ]; then
  echo "== some tests failed (see above)" >&2
  exit 1
fi
echo "== all tests passed on Kubernetes $K8S_NEWEST_VERSION and the subset on $K8S_FLOOR_VERSION"
