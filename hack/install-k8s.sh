#!/usr/bin/env bash
# Builds the real Kubernetes components the tests and the local run use, from their Go modules at
# the versions pinned in hack/versions.sh, and caches each under ~/.cache/rsg/<component>-<version>/bin:
#   kubernetes-<v>: kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (the
#                   newest and the floor release, so kubectl always matches the server it talks
#                   to; the newest also gets agnhost, the Kubernetes project's test webhook
#                   server, for the admission benchmark)
#   etcd-<v>:       etcd
#   kwok-<v>:       kwok (simulated nodes and pod lifecycle)
#   lws-<v>:        the LeaderWorkerSet controller (bin/lws-controller), its CRD (crd.yaml) and
#                   its webhook configurations (webhooks.yaml), from sigs.k8s.io/lws
#   keda-<v>:       the KEDA operator (bin/keda-operator), its metrics API server
#                   (bin/keda-adapter) and its CRDs (crds.yaml), from github.com/kedacore/keda/v2
#   metrics-server-<v>: metrics-server (bin/metrics-server), from sigs.k8s.io/metrics-server, for
#                   CPU-driven HPAs (it reads the pods' usage that kwok simulates)
# Idempotent: a component whose binaries are cached (and report the pinned version) is not rebuilt.
# A cold run downloads a few hundred MB of Go modules and takes several minutes per release on 2 cores.
# Prints nothing but progress on stderr; `hack/install-k8s.sh --print-env` prints the cache paths
# as shell assignments (RSG_K8S_BIN, RSG_K8S_FLOOR_BIN, RSG_ETCD_BIN, RSG_KWOK_BIN, RSG_LWS_DIR,
# RSG_KEDA_DIR, RSG_METRICS_SERVER_BIN).
set -euo pipefail
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/versions.sh
source "$HACK/versions.sh"

CACHE="${RSG_CACHE:-$HOME/.cache/rsg}"
K8S_NEWEST_BIN="$CACHE/kubernetes-$K8S_NEWEST_VERSION/bin"
K8S_FLOOR_BIN="$CACHE/kubernetes-$K8S_FLOOR_VERSION/bin"
ETCD_BIN="$CACHE/etcd-$ETCD_VERSION/bin"
KWOK_BIN="$CACHE/kwok-$KWOK_VERSION/bin"
LWS_DIR="$CACHE/lws-$LWS_VERSION"
KEDA_DIR="$CACHE/keda-$KEDA_VERSION"
METRICS_SERVER_BIN="$CACHE/metrics-server-$METRICS_SERVER_VERSION/bin"

if [ "${1:-}" = "--print-env" ]; then
  printf 'RSG_K8S_BIN=%q\nRSG_K8S_FLOOR_BIN=%q\nRSG_ETCD_BIN=%q\nRSG_KWOK_BIN=%q\nRSG_LWS_DIR=%q\nRSG_KEDA_DIR=%q\nRSG_METRICS_SERVER_BIN=%q\n' \
    "$K8S_NEWEST_BIN" "$K8S_FLOOR_BIN" "$ETCD_BIN" "$KWOK_BIN" "$LWS_DIR" "$KEDA_DIR" "$METRICS_SERVER_BIN"
  exit 0
fi

log() { echo "[install-k8s] $*" >&2; }

command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || {
  log "Go is missing: install Go 1.26 or later (these machines have it at /usr/local/go)"
  exit 1
}
export PATH="/usr/local/go/bin:$PATH"
# The machine's own toolchain, never one downloaded on the fly; no VCS stamping of the wrappers.
export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false" CGO_ENABLED=0

reports() { # reports <binary> <version text>: the binary runs and prints that version
  local flags=(--version)
  [ "$(basename "$1")" = kubectl ] && flags=(version --client)
  [ -x "$1" ] || return 1
  # Read the whole output first: grep -q stopping early would end the writer with SIGPIPE.
  local printed
  printed="$("$1" "${flags[@]}" 2>/dev/null)" || return 1
  grep -qF "$2" <<<"$printed"
}

# Kubernetes' go.mod points its ~30 staging modules (k8s.io/api, k8s.io/apiserver, ...) at local
# paths and requires them at v0.0.0, so `go install` refuses it. A wrapper module that requires
# k8s.io/kubernetes and replaces each staging module with its published v0.<minor>.<patch> builds
# the commands; the version is stamped with the ldflags Kubernetes' own build uses.
build_kubernetes() { # build_kubernetes <version> <bin dir> <extra packages...>
  local version=$1 bin=$2
  shift 2
  local work="$CACHE/build/kubernetes-$version"
  local commands=(kube-apiserver kube-controller-manager kube-scheduler kubectl "$@")
  local missing=false name
  for name in "${commands[@]}"; do
    [ "$name" = agnhost ] && { [ -x "$bin/agnhost" ] || missing=true; continue; }
    reports "$bin/$name" "v$version" || missing=true
  done
  if ! $missing; then
    log "kubernetes v$version cached in $bin"
    return
  fi
  log "building kubernetes v$version (${commands[*]}) from its Go module"
  mkdir -p "$work" "$bin"
  local gomod
  gomod="$(cd "$work" && go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
  [ -f "$gomod" ] || { log "could not download k8s.io/kubernetes@v$version"; exit 1; }
  local staging_version="v0.${version#*.}"
  {
    echo "module rsg.local/build/kubernetes"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes v$version"
    echo
    echo "replace ("
    sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9.-]*\) => ./staging/src/.*$|\1|p' "$gomod" | sort -u |
      while read -r module; do echo "	$module => $module $staging_version"; done
    echo ")"
  } >"$work/go.mod"
  local major=${version%%.*} minor=${version#*.}
  minor=${minor%%.*}
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  local packages=()
  for name in "${commands[@]}"; do
    case "$name" in
      agnhost) packages+=(k8s.io/kubernetes/test/images/agnhost) ;;
      *) packages+=("k8s.io/kubernetes/cmd/$name") ;;
    esac
  done
  (cd "$work" && go build -mod=mod -trimpath -ldflags "$ldflags" -o "$bin/" "${packages[@]}") \
    >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; log "building kubernetes v$version failed (log: $work/build.log)"; exit 1; }
  for name in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    reports "$bin/$name" "v$version" || { log "$bin/$name does not report v$version"; exit 1; }
  done
  log "kubernetes v$version built into $bin"
}

# etcd's server module replaces its sibling modules with local paths too; a two-line main that
# calls etcdmain.Main, in a module requiring the published server module, is the etcd binary.
build_etcd() {
  if reports "$ETCD_BIN/etcd" "etcd Version: $ETCD_VERSION"; then
    log "etcd $ETCD_VERSION cached in $ETCD_BIN"
    return
  fi
  log "building etcd $ETCD_VERSION from its Go module"
  local work="$CACHE/build/etcd-$ETCD_VERSION"
  mkdir -p "$work" "$ETCD_BIN"
  cat >"$work/main.go" <<'GO'
// The etcd server, built from go.etcd.io/etcd/server/v3 at the pinned version.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  printf 'module rsg.local/build/etcd\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" >"$work/go.mod"
  (cd "$work" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "$ETCD_BIN/etcd" .) \
    >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; log "building etcd failed (log: $work/build.log)"; exit 1; }
  reports "$ETCD_BIN/etcd" "etcd Version: $ETCD_VERSION" || { log "$ETCD_BIN/etcd does not report $ETCD_VERSION"; exit 1; }
  log "etcd $ETCD_VERSION built into $ETCD_BIN"
}

build_kwok() {
  if [ -x "$KWOK_BIN/kwok" ]; then
    log "kwok $KWOK_VERSION cached in $KWOK_BIN"
    return
  fi
  log "building kwok $KWOK_VERSION from its Go module"
  mkdir -p "$KWOK_BIN" "$CACHE/build"
  GOBIN="$KWOK_BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" \
    >"$CACHE/build/kwok-$KWOK_VERSION.log" 2>&1 || { tail -n 40 "$CACHE/build/kwok-$KWOK_VERSION.log" >&2; log "building kwok failed"; exit 1; }
  log "kwok $KWOK_VERSION built into $KWOK_BIN"
}

# The LeaderWorkerSet module has no replace directives, but `go install …@version` asks the proxy
# for the module's version list, which it refuses: a wrapper module requiring the pinned version
# builds its command (package sigs.k8s.io/lws/cmd). The CRD and the webhook configurations are
# taken from the same module's config/, so they always match the controller.
build_lws() {
  if [ -x "$LWS_DIR/bin/lws-controller" ] && [ -f "$LWS_DIR/crd.yaml" ] && [ -f "$LWS_DIR/webhooks.yaml" ]; then
    log "LeaderWorkerSet $LWS_VERSION cached in $LWS_DIR"
    return
  fi
  log "building the LeaderWorkerSet controller $LWS_VERSION from its Go module"
  local work="$CACHE/build/lws-$LWS_VERSION"
  mkdir -p "$work" "$LWS_DIR/bin"
  printf 'module rsg.local/build/lws\n\ngo 1.26\n\nrequire sigs.k8s.io/lws v%s\n' "$LWS_VERSION" >"$work/go.mod"
  (cd "$work" && go build -mod=mod -trimpath -ldflags "-s -w" -o "$LWS_DIR/bin/lws-controller" sigs.k8s.io/lws/cmd) \
    >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; log "building LeaderWorkerSet failed (log: $work/build.log)"; exit 1; }
  local module_dir
  module_dir="$(cd "$work" && go list -m -f '{{.Dir}}' sigs.k8s.io/lws)"
  [ -d "$module_dir/config" ] || { log "could not find sigs.k8s.io/lws@v$LWS_VERSION's config/"; exit 1; }
  cp "$module_dir/config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml" "$LWS_DIR/crd.yaml"
  cp "$module_dir/config/webhook/manifests.yaml" "$LWS_DIR/webhooks.yaml"
  log "LeaderWorkerSet $LWS_VERSION built into $LWS_DIR"
}

# KEDA's go.mod pins some dependencies with replace directives (all to published versions),
# which a dependent module does not inherit: the wrapper module copies them, then builds the
# operator and the metrics API server (the "adapter" that serves external.metrics.k8s.io to the
# HPAs KEDA creates). The CRDs come from the same module's config/.
build_keda() {
  local commands=(keda-operator:operator keda-adapter:adapter) missing=() entry
  for entry in "${commands[@]}"; do
    [ -x "$KEDA_DIR/bin/${entry%%:*}" ] || missing+=("$entry")
  done
  if [ ${#missing[@]} -eq 0 ] && [ -f "$KEDA_DIR/crds.yaml" ]; then
    log "KEDA $KEDA_VERSION cached in $KEDA_DIR"
    return
  fi
  log "building KEDA $KEDA_VERSION (${missing[*]%%:*}) from its Go module"
  local work="$CACHE/build/keda-$KEDA_VERSION"
  mkdir -p "$work" "$KEDA_DIR/bin"
  local gomod
  gomod="$(cd "$work" && go mod download -json "github.com/kedacore/keda/v2@v$KEDA_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
  [ -f "$gomod" ] || { log "could not download github.com/kedacore/keda/v2@v$KEDA_VERSION"; exit 1; }
  {
    printf 'module rsg.local/build/keda\n\ngo 1.26\n\nrequire github.com/kedacore/keda/v2 v%s\n\nreplace (\n' "$KEDA_VERSION"
    # Single-line replaces and the lines of replace blocks, all "module => module version".
    sed -n -e 's/^replace \([^(].* => .*\)$/\t\1/p' -e '/^replace (/,/^)/{/=>/p}' "$gomod"
    echo ")"
  } >"$work/go.mod"
  for entry in "${missing[@]}"; do
    (cd "$work" && go build -mod=mod -trimpath -ldflags "-s -w" -o "$KEDA_DIR/bin/${entry%%:*}" "github.com/kedacore/keda/v2/cmd/${entry#*:}") \
      >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; log "building KEDA's ${entry#*:} failed (log: $work/build.log)"; exit 1; }
  done
  local module_dir
  module_dir="$(cd "$work" && go list -m -f '{{.Dir}}' github.com/kedacore/keda/v2)"
  [ -d "$module_dir/config/crd/bases" ] || { log "could not find the KEDA module's config/crd/bases"; exit 1; }
  local crd
  : >"$KEDA_DIR/crds.yaml"
  for crd in "$module_dir"/config/crd/bases/*.yaml; do
    { echo "---"; cat "$crd"; } >>"$KEDA_DIR/crds.yaml"
  done
  log "KEDA $KEDA_VERSION built into $KEDA_DIR"
}

# metrics-server has no replace directives; like LeaderWorkerSet, a wrapper module requiring the
# pinned version builds its command.
build_metrics_server() {
  if reports "$METRICS_SERVER_BIN/metrics-server" "v$METRICS_SERVER_VERSION"; then
    log "metrics-server $METRICS_SERVER_VERSION cached in $METRICS_SERVER_BIN"
    return
  fi
  log "building metrics-server $METRICS_SERVER_VERSION from its Go module"
  local work="$CACHE/build/metrics-server-$METRICS_SERVER_VERSION"
  mkdir -p "$work" "$METRICS_SERVER_BIN"
  printf 'module rsg.local/build/metrics-server\n\ngo 1.26\n\nrequire sigs.k8s.io/metrics-server v%s\n' "$METRICS_SERVER_VERSION" >"$work/go.mod"
  local ldflags="-s -w -X k8s.io/client-go/pkg/version.gitVersion=v$METRICS_SERVER_VERSION"
  (cd "$work" && go build -mod=mod -trimpath -ldflags "$ldflags" -o "$METRICS_SERVER_BIN/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server) \
    >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; log "building metrics-server failed (log: $work/build.log)"; exit 1; }
  reports "$METRICS_SERVER_BIN/metrics-server" "v$METRICS_SERVER_VERSION" || { log "$METRICS_SERVER_BIN/metrics-server does not report v$METRICS_SERVER_VERSION"; exit 1; }
  log "metrics-server $METRICS_SERVER_VERSION built into $METRICS_SERVER_BIN"
}

build_etcd
build_kwok
build_lws
build_keda
build_metrics_server
build_kubernetes "$K8S_NEWEST_VERSION" "$K8S_NEWEST_BIN" agnhost
build_kubernetes "$K8S_FLOOR_VERSION" "$K8S_FLOOR_BIN"
log "done"
