#!/usr/bin/env bash
# Installs the real Kubernetes components the tests run against and caches them:
#   etcd (Debian package etcd-server), kube-apiserver and kube-controller-manager
#   (built from Debian's kubernetes 1.20 source package), and agnhost (the
#   Kubernetes project's test webhook server, used by the admission benchmark).
# Idempotent: a second run finds the cached binaries and returns in seconds.
# Cache directory: $RSG_K8S_CACHE (default ~/.cache/rsg/k8s-1.20); binaries land in $RSG_K8S_CACHE/bin.
set -euo pipefail

CACHE="${RSG_K8S_CACHE:-$HOME/.cache/rsg/k8s-1.20}"
BIN="$CACHE/bin"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

log() { echo "[install-k8s] $*" >&2; }

# The version the binaries are stamped with (the source package's), so the API server reports
# it at /version (Helm checks a chart's kubeVersion against it).
K8S_VERSION=1.20.2

reports_version() {
  "$BIN/$1" --version 2>/dev/null | grep -q "v$K8S_VERSION\$"
}

have_all() {
  command -v etcd >/dev/null 2>&1 &&
    [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] && [ -x "$BIN/agnhost" ] &&
    reports_version kube-apiserver && reports_version kube-controller-manager
}

if have_all; then
  log "cached in $BIN"
  exit 0
fi

mkdir -p "$BIN" "$CACHE/src"

if [ ! -f /etc/apt/sources.list.d/rsg-deb-src.sources ]; then
  log "adding a deb-src entry for Debian bookworm main"
  $SUDO tee /etc/apt/sources.list.d/rsg-deb-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
log "apt-get update"
$SUDO apt-get update -qq
log "installing build dependencies and etcd"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  etcd-server golang-1.19-go rsync golang-github-modern-go-reflect2-dev dpkg-dev openssl make >/dev/null

GOBIN_DIR="$(dirname "$(dpkg -L golang-1.19-go | grep -E '/bin/go$' | head -n1)")"
export PATH="$GOBIN_DIR:$PATH"
log "using $(go version)"

cd "$CACHE/src"
SRC_DIR="$(find . -maxdepth 1 -type d -name 'kubernetes-1.20*' | head -n1)"
if [ -z "$SRC_DIR" ]; then
  log "fetching the kubernetes source package"
  apt-get source --download-only kubernetes >/dev/null
  dpkg-source -x --no-check kubernetes_*.dsc >/dev/null
  SRC_DIR="$(find . -maxdepth 1 -type d -name 'kubernetes-1.20*' | head -n1)"
fi
SRC_DIR="$(cd "$SRC_DIR" && pwd)"

# The vendored reflect2 1.0.1 crashes the apiserver under Go >= 1.18; use Debian's newer copy.
REFLECT2_SRC="$(dpkg -L golang-github-modern-go-reflect2-dev | grep -E '/github.com/modern-go/reflect2$' | head -n1)"
if [ ! -f "$SRC_DIR/vendor/github.com/modern-go/reflect2/.rsg-replaced" ]; then
  log "replacing vendored reflect2 with $REFLECT2_SRC"
  rm -rf "$SRC_DIR/vendor/github.com/modern-go/reflect2"
  cp -r "$REFLECT2_SRC" "$SRC_DIR/vendor/github.com/modern-go/reflect2"
  rm -f "$SRC_DIR/vendor/github.com/modern-go/reflect2/go.mod"
  touch "$SRC_DIR/vendor/github.com/modern-go/reflect2/.rsg-replaced"
fi

GOPATH_DIR="$CACHE/gopath"
mkdir -p "$GOPATH_DIR/src/k8s.io"
ln -sfn "$SRC_DIR" "$GOPATH_DIR/src/k8s.io/kubernetes"
export GOPATH="$GOPATH_DIR" GO111MODULE=off GOFLAGS="" GOCACHE="$CACHE/gocache"

cd "$GOPATH_DIR/src/k8s.io/kubernetes"
if [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
  log "make generated_files (a few minutes)"
  make generated_files >"$CACHE/generated_files.log" 2>&1 || { tail -n 50 "$CACHE/generated_files.log"; exit 1; }
fi
# What the Kubernetes build itself stamps (hack/lib/version.sh), for the vendored packages.
version_ldflags=""
for pkg in k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version k8s.io/kubernetes/vendor/k8s.io/component-base/version; do
  version_ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=${K8S_VERSION%%.*}"
  minor="${K8S_VERSION#*.}"
  version_ldflags+=" -X $pkg.gitMinor=${minor%%.*} -X $pkg.gitTreeState=clean"
done
for cmd in kube-apiserver kube-controller-manager; do
  if [ ! -x "$BIN/$cmd" ] || ! reports_version "$cmd"; then
    log "building $cmd v$K8S_VERSION (a few minutes)"
    go build -ldflags "$version_ldflags" -o "$BIN/$cmd" "./cmd/$cmd"
  fi
done
if [ ! -x "$BIN/agnhost" ]; then
  log "building agnhost"
  go build -o "$BIN/agnhost" ./test/images/agnhost
fi
have_all || { log "etcd or a binary is still missing"; exit 1; }
log "done: $BIN"
