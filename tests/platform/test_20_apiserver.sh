#!/usr/bin/env bash
# test_20_apiserver.sh - the chart and deploy/ admitted by a real
# kube-apiserver (etcd + kube-apiserver on loopback, scripts/k8s-local.sh;
# no kubelet or controllers, so objects are stored and validated but no pod
# runs). The Strimzi 1.2 and prometheus-operator CRDs are applied first;
# `helm install` of the chart, once per value set (default and each
# ci/*-values.yaml) into its own namespace; `kubectl apply` of deploy/ with
# strict server-side field validation; every object must then exist. The
# `helm test` pod (from `helm get hooks`) must be admitted
# (`kubectl apply --dry-run=server`), and a broken manifest must be refused.
# Then everything is uninstalled and must be gone.
set -euo pipefail
root=${FINOPS_ROOT:?} work=${FINOPS_WORK:?} tools=${FINOPS_TOOLS:?}
chart="$root/helm/ai-finops-exporter"
schemas="${FINOPS_CRD_DIR:-$root/tests/platform/schemas}"
k8s="$root/scripts/k8s-local.sh"

fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x "$k8s" ] || fail "scripts/k8s-local.sh is missing"
[ -d "$schemas/strimzi-1.2.0" ] && [ -d "$schemas/prometheus-operator" ] || fail "no CRDs in $schemas"
helm=$("$tools" path helm)
"$tools" ensure etcd kube-apiserver

cleanup() { "$k8s" stop "$work/k8s" >/dev/null 2>&1 || true; }
trap cleanup EXIT
start=$(date +%s)
# The chart creates the ServiceAccount its pods name, so the ServiceAccount
# admission plugin (off by default in k8s-local.sh) can check it.
K8S_LOCAL_DISABLE_ADMISSION="" "$k8s" start "$work/k8s"
KUBECONFIG=$("$k8s" kubeconfig "$work/k8s")
export KUBECONFIG
echo "API server up in $(( $(date +%s) - start )) s: $(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"

# Applied server-side, then polled until Established (`kubectl wait` errors
# out while a new CRD has no status yet).
"$k8s" crds "$work/k8s" "$schemas" >/dev/null
echo "CRDs established: $(kubectl get crd -o name | tr '\n' ' ')"

exists() { # NAMESPACE|"" MANIFEST-FILE: every object of the file must be stored
  local expected got ns=()
  [ -z "$1" ] || ns=(-n "$1")
  expected=$(python3 -c 'import sys,yaml; print(sum(1 for d in yaml.safe_load_all(open(sys.argv[1])) if d))' "$2")
  kubectl get "${ns[@]}" -f "$2" -o name >"$2.stored"
  got=$(wc -l <"$2.stored")
  [ "$got" -eq "$expected" ] || fail "$2: $got of $expected objects stored"
  echo "  $got objects stored: $(sed 's#/.*##; s#\..*##' "$2.stored" | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}')"
}

echo "== deploy/ (namespace kafka)"
kubectl create namespace kafka >/dev/null
for f in "$root"/deploy/*.yaml; do echo "---"; cat "$f"; done >"$work/deploy.yaml"
kubectl apply --validate=strict -n kafka -f "$work/deploy.yaml"
exists kafka "$work/deploy.yaml"

value_sets=(default)
for f in "$chart"/ci/*-values.yaml; do value_sets+=("$(basename "$f" -values.yaml)"); done
namespaces=()
for set in "${value_sets[@]}"; do
  ns="finops-$set"
  namespaces+=("$ns")
  args=()
  [ "$set" = default ] || args=(-f "$chart/ci/$set-values.yaml")
  echo "== helm install ($set, namespace $ns)"
  kubectl create namespace "$ns" >/dev/null
  # The custom value set puts its dashboard in "monitoring".
  kubectl get namespace monitoring >/dev/null 2>&1 || kubectl create namespace monitoring >/dev/null
  "$helm" install finops "$chart" -n "$ns" "${args[@]}" >"$work/install-$set.log" ||
    { cat "$work/install-$set.log"; fail "helm install ($set)"; }
  grep -q "helm test finops -n $ns" "$work/install-$set.log" || { cat "$work/install-$set.log"; fail "NOTES.txt not shown ($set)"; }
  "$helm" status finops -n "$ns" -o json | python3 -c 'import json,sys; s=json.load(sys.stdin)["info"]["status"]; assert s=="deployed", s'
  "$helm" get manifest finops -n "$ns" >"$work/manifest-$set.yaml"
  exists "" "$work/manifest-$set.yaml"
  "$helm" get hooks finops -n "$ns" >"$work/hooks-$set.yaml"
  grep -q 'helm.sh/hook: test' "$work/hooks-$set.yaml" || fail "no helm test hook ($set)"
  kubectl apply --dry-run=server --validate=strict -f "$work/hooks-$set.yaml" >"$work/hook-$set.log" ||
    { cat "$work/hook-$set.log"; fail "the helm test pod is not admitted ($set)"; }
  echo "  helm test pod admitted: $(cat "$work/hook-$set.log")"
done

echo "== a broken manifest is refused"
sed -e '0,/partitions: 10/s//partitions: "ten"/' "$work/deploy.yaml" >"$work/broken.yaml"
if kubectl apply --dry-run=server --validate=strict -n kafka -f "$work/broken.yaml" >"$work/broken.log" 2>&1; then
  fail "the API server accepted partitions: \"ten\""
fi
grep -q 'KafkaTopic "ai-costs" is invalid: spec.partitions' "$work/broken.log" ||
  { cat "$work/broken.log"; fail "refused for another reason"; }
echo "  refused: $(grep -m1 'is invalid' "$work/broken.log" | cut -c1-220)"
# The test pod is admitted because the chart's ServiceAccount exists: one
# naming a missing ServiceAccount is not.
sed -e 's/serviceAccountName: .*/serviceAccountName: no-such-account/' "$work/hooks-default.yaml" >"$work/hook-no-sa.yaml"
if kubectl apply --dry-run=server -f "$work/hook-no-sa.yaml" >"$work/hook-no-sa.log" 2>&1; then
  fail "a pod naming a missing ServiceAccount was admitted (is the ServiceAccount admission plugin on?)"
fi
echo "  refused: $(grep -m1 -i 'error' "$work/hook-no-sa.log" | cut -c1-220)"

echo "== uninstall"
for i in "${!value_sets[@]}"; do
  "$helm" uninstall finops -n "${namespaces[$i]}" >/dev/null
  left=$(kubectl get -f "$work/manifest-${value_sets[$i]}.yaml" -o name --ignore-not-found | wc -l)
  [ "$left" -eq 0 ] || fail "${value_sets[$i]}: $left objects left after helm uninstall"
done
kubectl delete -n kafka -f "$work/deploy.yaml" >/dev/null
left=$(kubectl get -n kafka -f "$work/deploy.yaml" -o name --ignore-not-found | wc -l)
[ "$left" -eq 0 ] || fail "deploy/: $left objects left after delete"
echo "everything admitted by kube-apiserver and removed again"
