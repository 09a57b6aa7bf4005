#!/usr/bin/env bash
# Installs everything the tests and the local run need on a fresh Debian machine:
# openssl, curl, iproute2, prometheus and prometheus-pushgateway (for the scale-down tests), the Helm
# library for Python (helm-sdkpy, for the chart tests), then etcd, kwok and the Kubernetes
# binaries (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl) of the releases in
# hack/versions.sh, built from their Go modules by hack/install-k8s.sh (cached after the first run).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# `ip` makes the test host (a network namespace) that aggregated API servers are reached at.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
[ -x /usr/bin/prometheus-pushgateway ] || missing+=(prometheus-pushgateway)
if [ ${#missing[@]} -gt 0 ]; then
  echo "[install-deps] installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# helm-sdkpy declares Python >= 3.12 but works on 3.11 (what these machines have).
HELM_SDKPY_VERSION=0.1.32
if ! python3 -c "import helm_sdkpy" >/dev/null 2>&1; then
  echo "[install-deps] installing helm-sdkpy $HELM_SDKPY_VERSION" >&2
  python3 -m pip install -q --ignore-requires-python --break-system-packages "helm-sdkpy==$HELM_SDKPY_VERSION" 2>/dev/null \
    || python3 -m pip install -q --ignore-requires-python "helm-sdkpy==$HELM_SDKPY_VERSION"
fi
hack/install-k8s.sh
for tool in cargo rustfmt cargo-clippy; do
  command -v "$tool" >/dev/null 2>&1 || { echo "[install-deps] $tool is missing: install the Rust toolchain with rustup (components rustfmt, clippy)" >&2; exit 1; }
done
