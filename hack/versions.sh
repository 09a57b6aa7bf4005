# The versions of every outside component the tests and the local run use, pinned in one place.
# hack/install-k8s.sh builds each from its Go module at exactly this version and caches it
# under ~/.cache/rsg/<component>-<version>/; change a line here and the next run rebuilds it.

# The newest Kubernetes patch release (the whole suite runs on it) and the floor the manual
# names (Kubernetes v1.28.0 or later; a named subset of the suite runs on it).
K8S_NEWEST_VERSION=1.37.2
K8S_FLOOR_VERSION=1.28.15
# etcd: one server both releases support (1.28 was released against 3.5, 1.37 against 3.6/3.7;
# the v3 API is the same).
ETCD_VERSION=3.6.15
# kwok: simulated nodes and pod lifecycle, so the real kube-scheduler places pods and they become
# Running and Ready.
KWOK_VERSION=0.8.0
# LeaderWorkerSet: its controller (with its own admission webhooks) and its CRD, both from the
# Go module, so LeaderWorkerSet copies meet the real schema and the real controller runs them.
LWS_VERSION=0.8.0
# KEDA: its operator (activation to and from zero through an RSG's scale subresource) and its
# CRDs, from the Go module. 2.20.2 is the newest release whose go.mod this machine's Go 1.26 builds.
KEDA_VERSION=2.20.2
# metrics-server: the resource metrics API (metrics.k8s.io) for CPU-driven HPAs, reading the pod
# usage kwok simulates.
METRICS_SERVER_VERSION=0.8.0
