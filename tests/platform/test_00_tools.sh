#!/usr/bin/env bash
# test_00_tools.sh - the cached tool script works: every tool is ensured (built
# on the first run, cached after), reports the pinned version, and the
# validators catch what they must: kubeconform (strict, Kubernetes 1.33 + CRD
# schemas) accepts good manifests and rejects a broken Deployment, a misspelt
# field, a Strimzi KafkaTopic with a wrong field type and an unknown kind;
# hadolint flags a bad Dockerfile; helm renders for Kubernetes 1.33; podman
# runs the local debian:bookworm-slim; k8s-local.sh starts a real API server,
# takes the CRDs and stops. Env from tests/platform/run.sh: FINOPS_ROOT,
# FINOPS_TOOLS, FINOPS_WORK.
set -euo pipefail
: "${FINOPS_ROOT:?}" "${FINOPS_TOOLS:?}" "${FINOPS_WORK:?}"
W="$FINOPS_WORK"
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

t0=$SECONDS
names=(podman base-image helm kubeconform k8s-schemas crd-schemas hadolint etcd kube-apiserver)
"$FINOPS_TOOLS" ensure "${names[@]}"
echo "ensure all: $((SECONDS - t0)) s"
"$FINOPS_TOOLS" version "${names[@]}"

# ---- pinned versions
expect_version() {   # NAME WANT
  local got
  got="$("$FINOPS_TOOLS" version "$1" | awk '{print $2}')"
  [[ "$got" == "$2" ]] && ok "$1 $got" || bad "$1 version '$got', want '$2'"
}
expect_version helm v3.21.4
expect_version kubeconform v0.7.0
expect_version etcd 3.6.17
expect_version kube-apiserver v1.33.13
expect_version hadolint 2.15.1

HELM="$("$FINOPS_TOOLS" path helm)"
KC="$("$FINOPS_TOOLS" path kubeconform)"
HADOLINT="$("$FINOPS_TOOLS" path hadolint)"
mapfile -t KC_ARGS < <("$FINOPS_TOOLS" kubeconform-args)

# ---- helm believes the cluster is Kubernetes 1.33 (not 1.20)
mkdir -p "$W/chart/templates"
printf 'apiVersion: v2\nname: probe\nversion: 0.1.0\n' >"$W/chart/Chart.yaml"
printf 'kube: {{ .Capabilities.KubeVersion.Version }}\n' >"$W/chart/templates/NOTES.txt"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\ndata:\n  kube: "{{ .Capabilities.KubeVersion.Version }}"\n' \
  >"$W/chart/templates/cm.yaml"
kube="$("$HELM" template probe "$W/chart" | sed -n 's/^  kube: "\(.*\)"$/\1/p')"
[[ "$kube" == v1.33.* ]] && ok "helm renders for Kubernetes $kube" || bad "helm renders for Kubernetes '$kube', want v1.33.x"

# ---- kubeconform
cat >"$W/good.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: exporter}
spec:
  replicas: 2
  selector: {matchLabels: {app: exporter}}
  template:
    metadata: {labels: {app: exporter}}
    spec:
      containers:
      - name: exporter
        image: ai-finops-exporter:dev
        ports: [{containerPort: 9464, name: metrics}]
        readinessProbe: {httpGet: {path: /readyz, port: metrics}}
        livenessProbe: {httpGet: {path: /healthz, port: 9464}}
---
apiVersion: v1
kind: Service
metadata: {name: exporter}
spec:
  selector: {app: exporter}
  ports: [{name: metrics, port: 9464, targetPort: metrics}]
---
apiVersion: kafka.strimzi.io/v1
kind: KafkaTopic
metadata: {name: ai-costs, labels: {strimzi.io/cluster: finops}}
spec:
  partitions: 10
  replicas: 3
  config: {retention.ms: 86400000, min.insync.replicas: 2}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: exporter, labels: {release: kube-prometheus-stack}}
spec:
  selector: {matchLabels: {app: exporter}}
  endpoints: [{port: metrics, interval: 30s}]
EOF
# kcheck NAME WANT_RC GREP: kubeconform -strict on $W/NAME.yaml exits WANT_RC
# and its output matches GREP.
kcheck() {
  local name="$1" want="$2" pat="$3" out rc=0
  out="$("$KC" -strict -summary "${KC_ARGS[@]}" "$W/$name.yaml" 2>&1)" || rc=$?
  if [[ $rc -eq $want ]] && grep -qE -- "$pat" <<<"$out"; then
    ok "kubeconform $name: exit $rc, /$pat/"
  else
    bad "kubeconform $name: exit $rc (want $want), output does not match /$pat/:"
    echo "$out"
  fi
}
kcheck good 0 'Valid: 4, Invalid: 0, Errors: 0, Skipped: 0'
sed 's/^  replicas: 2$/  replicas: "two"/' "$W/good.yaml" >"$W/deploy-type.yaml"
kcheck deploy-type 1 "Deployment exporter is invalid.*/spec/replicas"
sed 's/readinessProbe:/readinesProbe:/' "$W/good.yaml" >"$W/deploy-field.yaml"
kcheck deploy-field 1 "Deployment exporter is invalid.*readinesProbe.*not allowed"
sed 's/partitions: 10/partitions: "ten"/' "$W/good.yaml" >"$W/topic-type.yaml"
kcheck topic-type 1 "KafkaTopic ai-costs is invalid.*/spec/partitions"
sed 's/interval: 30s/intervall: 30s/' "$W/good.yaml" >"$W/sm-field.yaml"
kcheck sm-field 1 "ServiceMonitor exporter is invalid.*intervall.*not allowed"
sed 's/^kind: KafkaTopic$/kind: KafkaTopik/' "$W/good.yaml" >"$W/unknown-kind.yaml"
kcheck unknown-kind 1 "KafkaTopik.*could not find schema"

# ---- hadolint
printf 'FROM debian:bookworm-slim\nRUN apt-get update \\\n && apt-get install -y --no-install-recommends ca-certificates=20230311+deb12u1 \\\n && rm -rf /var/lib/apt/lists/*\nUSER 65532\n' \
  >"$W/Dockerfile.good"
printf 'FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y ca-certificates\n' >"$W/Dockerfile.bad"
if "$HADOLINT" "$W/Dockerfile.good"; then ok "hadolint accepts a clean Dockerfile"; else bad "hadolint rejects a clean Dockerfile"; fi
out="$("$HADOLINT" "$W/Dockerfile.bad" 2>&1)" && rc=0 || rc=$?
if [[ $rc -ne 0 ]] && grep -q DL3015 <<<"$out"; then ok "hadolint flags DL3015 (exit $rc)"; else bad "hadolint missed DL3015 (exit $rc): $out"; fi

# ---- podman and the local base image
eval "$("$FINOPS_TOOLS" podman-env)"
if out="$(podman run --rm --read-only --user 65532:65532 --cap-drop=ALL debian:bookworm-slim \
  sh -c '. /etc/os-release && echo "$VERSION_CODENAME $(id -u)"' 2>&1)" && [[ "$out" == "bookworm 65532" ]]; then
  ok "podman runs debian:bookworm-slim ($out)"
else
  bad "podman run debian:bookworm-slim: $out"
fi

# ---- a real API server: start, CRDs, stop
K="$FINOPS_ROOT/scripts/k8s-local.sh"
trap '"$K" stop "$W/k8s" >/dev/null 2>&1 || true' EXIT
if kcfg="$("$K" start "$W/k8s")"; then
  if kubectl --kubeconfig "$kcfg" get ns default -o name | grep -qx namespace/default; then
    ok "kube-apiserver answers (namespace/default)"
  else
    bad "kubectl get ns default failed"
  fi
  if "$K" crds "$W/k8s"; then
    n="$(kubectl --kubeconfig "$kcfg" get crd -o name | grep -cE 'strimzi.io|monitoring.coreos.com')"
    [[ "$n" -ge 6 ]] && ok "$n CRDs established" || bad "only $n CRDs"
    # the API server validates custom resources against the CRD schema
    sed -n '/^apiVersion: kafka.strimzi.io/,/^---/p' "$W/topic-type.yaml" | sed '/^---/d' >"$W/topic-bad.yaml"
    if out="$(kubectl --kubeconfig "$kcfg" apply --dry-run=server -f "$W/topic-bad.yaml" 2>&1)"; then
      bad "API server admitted a KafkaTopic with partitions: \"ten\": $out"
    else
      grep -q 'spec.partitions' <<<"$out" && ok "API server rejects partitions: \"ten\"" || bad "unexpected error: $out"
    fi
  else
    bad "k8s-local.sh crds failed"
  fi
  "$K" stop "$W/k8s"
  if "$K" status "$W/k8s" >/dev/null; then bad "API server still running after stop"; else ok "k8s-local.sh stop"; fi
else
  bad "k8s-local.sh start failed"
fi

echo "tools: $((SECONDS - t0)) s, $fails failure(s)"
[[ $fails -eq 0 ]]
