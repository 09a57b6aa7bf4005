#!/usr/bin/env bash
# The main job: starts a local cluster on loopback (etcd, kube-apiserver, kube-controller-manager
# and kube-scheduler of the newest Kubernetes release in hack/versions.sh, and kwok playing
# kubelet for six simulated nodes in three zones, so pods are placed and become Running and
# Ready), runs rsg against it with both webhooks registered, applies the samples in
# manifests/samples/, and shows what rsg does. Ctrl-C stops everything.
#   --once   apply the samples, show the result, and exit (a smoke run).
# State (logs, kubeconfig, certificates) goes to .local/ and is wiped at start.
set -euo pipefail
cd "$(dirname "$0")/.."
ONCE=false
[ "${1:-}" = "--once" ] && ONCE=true

hack/install-deps.sh
eval "$(hack/install-k8s.sh --print-env)"
echo "[run-local] building rsg"
cargo build --locked --quiet
RSG="$PWD/target/debug/rsg"
K8S_BIN="$RSG_K8S_BIN"
# kubectl of the same release as the server.
export PATH="$K8S_BIN:$PATH"
STATE="$PWD/.local"
APISERVER_PORT="${RSG_LOCAL_APISERVER_PORT:-16443}"
ETCD_PORT="${RSG_LOCAL_ETCD_PORT:-12379}"
RSG_PORT="${RSG_LOCAL_RSG_PORT:-19443}"
TOKEN="rsg-local-admin-token"
RSG_TOKEN="rsg-local-serviceaccount-token"

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo "[run-local] stopping"
  # Newest first, each waited for: rsg releases its Lease while the apiserver still runs.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM

rm -rf "$STATE"
mkdir -p "$STATE"
export KUBECONFIG="$STATE/kubeconfig"

wait_until() { # wait_until <seconds> <description> <command...>
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "[run-local] timed out waiting for $what (logs in $STATE)" >&2; exit 1; fi
    sleep 0.5
  done
}

echo "[run-local] starting etcd on 127.0.0.1:$ETCD_PORT"
"$RSG_ETCD_BIN/etcd" --name=default --data-dir="$STATE/etcd" --log-level=warn \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster="default=http://127.0.0.1:$((ETCD_PORT + 1))" >"$STATE/etcd.log" 2>&1 &
pids+=($!)

openssl genrsa -out "$STATE/sa.key" 2048 2>/dev/null
# The admin, and rsg's identity: the ServiceAccount of manifests/install with its groups, so
# rsg runs with exactly the RBAC a cluster install grants.
cat >"$STATE/tokens.csv" <<TOKENS
$TOKEN,admin,admin,system:masters
$RSG_TOKEN,system:serviceaccount:rsg-system:rsg,rsg-uid,"system:serviceaccounts,system:serviceaccounts:rsg-system"
TOKENS
echo "[run-local] starting kube-apiserver on https://127.0.0.1:$APISERVER_PORT"
"$K8S_BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" --cert-dir="$STATE/apiserver-certs" \
  --secure-port="$APISERVER_PORT" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
  --service-cluster-ip-range=10.0.0.0/24 --enable-aggregator-routing=true --authorization-mode=RBAC --token-auth-file="$STATE/tokens.csv" \
  --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$STATE/sa.key" \
  --service-account-signing-key-file="$STATE/sa.key" --allow-privileged=true \
  --disable-admission-plugins=ServiceAccount --enable-priority-and-fairness=false >"$STATE/kube-apiserver.log" 2>&1 &
pids+=($!)

cat >"$KUBECONFIG" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:$APISERVER_PORT", certificate-authority: "$STATE/apiserver-certs/apiserver.crt"}
users:
- name: admin
  user: {token: $TOKEN}
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
KC
wait_until 90 "the apiserver certificate" test -s "$STATE/apiserver-certs/apiserver.crt"
wait_until 90 "kube-apiserver" kubectl get --raw /readyz
wait_until 30 "the default namespace" kubectl get namespace default

echo "[run-local] starting kube-controller-manager (Deployments, StatefulSets, HPA, garbage collection, nodes)"
"$K8S_BIN/kube-controller-manager" --kubeconfig="$KUBECONFIG" --leader-elect=false \
  --secure-port=$((APISERVER_PORT + 1)) --bind-address=127.0.0.1 \
  --controllers=horizontalpodautoscaling,garbagecollector,deployment,replicaset,statefulset,nodelifecycle \
  >"$STATE/kube-controller-manager.log" 2>&1 &
pids+=($!)
echo "[run-local] starting kube-scheduler and kwok with six simulated nodes (3 zones x 2 racks)"
"$K8S_BIN/kube-scheduler" --kubeconfig="$KUBECONFIG" --leader-elect=false \
  --secure-port=$((APISERVER_PORT + 2)) --bind-address=127.0.0.1 >"$STATE/kube-scheduler.log" 2>&1 &
pids+=($!)
# Pod and node addresses from loopback: nothing sends traffic off this machine.
"$RSG_KWOK_BIN/kwok" --kubeconfig="$KUBECONFIG" --config=tests/support/world/kwok-stages.yaml \
  --manage-all-nodes=true --cidr=127.64.0.0/16 --node-ip=127.0.0.1 \
  --server-address="127.0.0.1:$((APISERVER_PORT + 3))" --node-lease-duration-seconds=40 \
  >"$STATE/kwok.log" 2>&1 &
pids+=($!)
kubectl apply -f tests/support/world/nodes.yaml >/dev/null
wait_until 60 "the nodes to be Ready and schedulable" sh -c \
  "[ \"\$(kubectl get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{.spec.taints}{\"\\n\"}{end}' | grep -cx True)\" = 6 ]"

echo "[run-local] installing the CRDs"
kubectl apply -f manifests/crd/resourcescalinggroups.yaml >/dev/null
kubectl wait --for condition=established --timeout=60s crd/resourcescalinggroups.autoscaling.openfuyao.com crd/resourcescalinggroupgrants.autoscaling.openfuyao.com >/dev/null

echo "[run-local] installing rsg's namespace and RBAC (manifests/install)"
kubectl apply -f manifests/install/00-namespace.yaml -f manifests/install/10-rbac.yaml -f manifests/install/15-user-roles.yaml >/dev/null
sed -e "s|user: {token: $TOKEN}|user: {token: $RSG_TOKEN}|" -e "s|context: {cluster: local, user: admin}|context: {cluster: local, user: admin, namespace: rsg-system}|" \
  "$KUBECONFIG" >"$STATE/rsg-kubeconfig"

echo "[run-local] starting rsg on https://127.0.0.1:$RSG_PORT as system:serviceaccount:rsg-system:rsg"
CA_BUNDLE=$("$RSG" certs --dir "$STATE/webhook-certs" --name 127.0.0.1 --name localhost 2>/dev/null)
KUBECONFIG="$STATE/rsg-kubeconfig" POD_NAME=rsg-local POD_NAMESPACE=rsg-system \
  "$RSG" run --listen "127.0.0.1:$RSG_PORT" --cert-dir "$STATE/webhook-certs" >"$STATE/rsg.log" 2>&1 &
pids+=($!)
RSG_PID=$!
wait_until 60 "rsg /readyz" curl -sf --cacert "$STATE/webhook-certs/ca.crt" "https://127.0.0.1:$RSG_PORT/readyz"

echo "[run-local] registering the webhooks (manifests/install/30-webhooks.yaml, called by URL)"
# The shipped configurations as they are, except that the apiserver calls rsg on this host by
# URL instead of through the rsg Service.
sed -E -e "s|service: \{name: rsg, namespace: rsg-system, path: (/[a-z]+), port: 443\}|url: \"https://127.0.0.1:$RSG_PORT\1\"|" \
  -e "s|CA_BUNDLE|$CA_BUNDLE|g" manifests/install/30-webhooks.yaml | kubectl apply -f - >/dev/null
wait_until 30 "the webhooks to take effect" sh -c \
  "kubectl apply --dry-run=server -f hack/webhook-probe.yaml 2>&1 | grep -q 'denied the request'"

echo "[run-local] applying manifests/samples/"
kubectl apply -f manifests/samples/
kubectl wait --for=condition=Ready --timeout=90s rsg --all -n scaling-system >/dev/null \
  || echo "[run-local] not every sample RSG is Ready yet: see kubectl describe rsg -n scaling-system" >&2
echo
kubectl get rsg,deploy,svc -n scaling-system -o wide
echo
kubectl get pods -n scaling-system -o wide
echo
kubectl get deploy,svc -n production
echo
echo "[run-local] ready. In another shell:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  kubectl get rsg -A; kubectl describe rsg -n scaling-system llm-pd-group"
echo "  kubectl scale rsg -n scaling-system llm-pd-group --replicas=3"
echo "[run-local] logs: $STATE/rsg.log (and the control plane's next to it)"
if $ONCE; then exit 0; fi
echo "[run-local] following rsg's log; Ctrl-C stops everything"
tail -f "$STATE/rsg.log" &
pids+=($!)
wait "$RSG_PID"
