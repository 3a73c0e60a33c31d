#!/usr/bin/env bash
# test_60_terraform.sh - the Terraform of terraform/, as far as this machine
# can check it:
#  - `terraform fmt -check -recursive` over terraform/;
#  - tflint (scripts/tools.sh tflint: its bundled terraform ruleset, the
#    recommended preset plus naming/documentation rules, from each stack's
#    .tflint.hcl) on terraform/cluster and terraform/platform;
#  - terraform/cluster: `terraform init -backend=false` + `terraform validate`
#    against the real hashicorp/aws 5.100.0 provider schema, installed only
#    from the filesystem mirror /opt/tf-plugins through terraform/.terraformrc,
#    and every validation block: the defaults and a GPU/2-zone variant are
#    accepted, a bad value of each variable is refused with its message;
#  - terraform/platform (its helm provider cannot be had here): Terraform
#    evaluates its locals.tf (`terraform console`), and
#    tests/platform/terraform_consistency.py checks that it installs deploy/
#    and helm/ai-finops-exporter, the ones test_20_apiserver.sh installs into
#    a real API server, that the releases fit together (release label,
#    Prometheus service, Grafana namespace, Kafka address, CRD versions), and
#    that main.tf uses those locals in dependency order; then its two local
#    releases (the Strimzi resources, the exporter chart) are `helm install`ed
#    with exactly those values into a real kube-apiserver (scripts/k8s-local.sh)
#    with the Strimzi and prometheus-operator CRDs, and every object is stored.
# Terraform's data, plugin cache and lock files stay under FINOPS_WORK: the
# source tree is left as it was. Without terraform or without the mirror the
# checks that need them are skipped (exit 77) after the others ran.
set -euo pipefail
root=${FINOPS_ROOT:?} work=${FINOPS_WORK:?} tools=${FINOPS_TOOLS:?}
tfroot="$root/terraform"
mirror=/opt/tf-plugins
HCL2_VERSION=8.1.4

fail() { echo "FAIL: $*" >&2; exit 1; }
# inputs DIR EXPECT -var...: `terraform console` in DIR with those variables
# must report EXPECT ("ok": no error at all; else the validation's message).
# The console prints errors but exits 0, so its output is what counts.
inputs() {
  local dir=$1 expect=$2 out; shift 2
  out=$(cd "$dir" && echo 'var.region' | "$tf" console -no-color "$@" 2>&1) || true
  if [ "$expect" = ok ]; then
    ! grep -q 'Error' <<<"$out" || { echo "$out" >&2; fail "$dir: $* refused"; }
    echo "  accepted: ${*:-defaults}"
  else
    grep -q 'Invalid value for variable' <<<"$out" && grep -qF "$expect" <<<"$out" ||
      { echo "$out" >&2; fail "$dir: $* not refused with \"$expect\""; }
    echo "  refused: $* ($expect)"
  fi
}
[ -d "$tfroot/cluster" ] && [ -d "$tfroot/platform" ] || fail "terraform/cluster and terraform/platform must exist"

# Terraform must never read the user's CLI config or write into the tree.
export TF_CLI_CONFIG_FILE="$tfroot/.terraformrc"
export TF_DATA_DIR="$work/tf-data" TF_PLUGIN_CACHE_DIR="$work/tf-plugin-cache" TF_IN_AUTOMATION=1
unset TF_WORKSPACE TF_CLI_ARGS TF_CLI_ARGS_init TF_CLI_ARGS_validate
mkdir -p "$TF_PLUGIN_CACHE_DIR"
find "$tfroot" | LC_ALL=C sort >"$work/tree-before.txt"

echo "== tflint"
tflint=$("$tools" path tflint)
"$tflint" --version >"$work/tflint-version.txt"
head -n 2 "$work/tflint-version.txt"
for stack in cluster platform; do
  [ -f "$tfroot/$stack/.tflint.hcl" ] || fail "terraform/$stack/.tflint.hcl missing"
  grep -q 'preset *= *"recommended"' "$tfroot/$stack/.tflint.hcl" || fail "terraform/$stack/.tflint.hcl: not the recommended preset"
  if ! "$tflint" --chdir="$tfroot/$stack" --config=.tflint.hcl --format=compact >"$work/tflint-$stack.log" 2>&1; then
    cat "$work/tflint-$stack.log"
    fail "tflint terraform/$stack"
  fi
  echo "  terraform/$stack: no issues"
done

tf=$(command -v terraform || true)
if [ -z "$tf" ]; then
  echo "SKIP: terraform not found on PATH: fmt, validate and the platform consistency check need it"
  exit 77
fi
"$tf" version >"$work/tf-version.txt"
head -n 1 "$work/tf-version.txt"

echo "== terraform fmt -check -recursive"
if ! "$tf" fmt -check -recursive -diff -no-color "$tfroot" >"$work/fmt.log" 2>&1; then
  cat "$work/fmt.log"
  fail "terraform fmt: the files above are not formatted (terraform fmt -recursive terraform/)"
fi
echo "  all $(find "$tfroot" -name '*.tf' | wc -l) .tf files formatted"

echo "== platform stack: what it installs (terraform console on locals.tf)"
# A scratch tree shaped like the source tree: locals.tf and variables.tf
# copied (they use no provider), deploy/, helm/, values/ and charts/ linked,
# so ${path.module}/../../deploy etc. resolve as in the real stack.
scratch="$work/console/terraform/platform"
mkdir -p "$scratch"
cp "$tfroot/platform/locals.tf" "$tfroot/platform/variables.tf" "$scratch/"
ln -s "$tfroot/platform/values" "$scratch/values"
ln -s "$tfroot/platform/charts" "$scratch/charts"
ln -s "$root/deploy" "$work/console/deploy"
ln -s "$root/helm" "$work/console/helm"
# base64 of the JSON, so the console's string quoting cannot alter it.
expr='base64encode(jsonencode({
  deploy_dir = abspath(local.deploy_dir), deploy_files = local.deploy_files,
  strimzi_manifests = local.strimzi_manifests, kafka_cluster = local.kafka_cluster,
  strimzi = local.strimzi, kube_prometheus_stack = local.kube_prometheus_stack, opencost = local.opencost,
  strimzi_resources = merge(local.strimzi_resources, { chart = abspath(local.strimzi_resources.chart) }),
  exporter = merge(local.exporter, { chart = abspath(local.exporter.chart) }) }))'
(cd "$scratch" && echo "$expr" | tr '\n' ' ' |
  "$tf" console -var 'exporter_image_repository=registry.example/ai-finops-exporter' -var 'cluster_name=ai-finops') \
  >"$work/locals.b64" 2>"$work/console.log" || { cat "$work/console.log"; fail "terraform console on terraform/platform/locals.tf"; }
tr -d '"\n' <"$work/locals.b64" | base64 -d >"$work/locals.json" || fail "console output is not base64: $(head -c 300 "$work/locals.b64")"
echo "  $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["strimzi_manifests"]), "Strimzi objects from", ", ".join(d["deploy_files"]))' "$work/locals.json")"
inputs "$scratch" "must be an image repository without a tag" -var 'exporter_image_repository=registry.example/ai-finops-exporter:0.1.0'
inputs "$scratch" "region must be an AWS region name" -var 'exporter_image_repository=r.example/x' -var 'region=mars'

# python-hcl2 reads main.tf (pinned, from PyPI, cached).
hcl2_dir="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/ai-finops-exporter/python/python-hcl2-$HCL2_VERSION"
if [ ! -f "$hcl2_dir/.stamp" ]; then
  rm -rf "$hcl2_dir.new"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check \
    --target "$hcl2_dir.new" "python-hcl2==$HCL2_VERSION" >&2
  echo "python-hcl2 $HCL2_VERSION" >"$hcl2_dir.new/.stamp"
  rm -rf "$hcl2_dir" && mv "$hcl2_dir.new" "$hcl2_dir"
fi
helm=$("$tools" path helm)
kubeconform=$("$tools" path kubeconform)
mapfile -t kc_args < <("$tools" kubeconform-args)
mkdir -p "$work/consistency"
PYTHONPATH="$hcl2_dir" python3 "$root/tests/platform/terraform_consistency.py" \
  "$root" "$work/locals.json" "$work/consistency" "$helm" "$kubeconform" "${kc_args[@]}" ||
  fail "the platform stack does not install what the shipping checks install"

echo "== platform stack: its two local releases installed into a real kube-apiserver"
# What helm_release.kafka and helm_release.exporter would do, with the same
# release names, namespaces, charts and values (those Terraform computed),
# against the Strimzi 1.2 and prometheus-operator CRDs (test_20's).
k8s="$(dirname "$tools")/k8s-local.sh"   # scripts/, beside tools.sh
schemas="${FINOPS_CRD_DIR:-$root/tests/platform/schemas}"
"$tools" ensure etcd kube-apiserver
cleanup() { "$k8s" stop "$work/k8s" >/dev/null 2>&1 || true; }
trap cleanup EXIT
K8S_LOCAL_DISABLE_ADMISSION="" "$k8s" start "$work/k8s" >/dev/null
KUBECONFIG=$("$k8s" kubeconfig "$work/k8s")
export KUBECONFIG
# Applied server-side, then polled until Established (`kubectl wait` errors
# out while a new CRD has no status yet).
"$k8s" crds "$work/k8s" "$schemas" >/dev/null || fail "CRDs not applied and Established"
install_release() { # NAME KEY(strimzi_resources|exporter) VALUES-PREFIX
  local name ns chart args=() f
  read -r name ns chart < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[sys.argv[2]]; print(r["release"], r["namespace"], r["chart"])' "$work/locals.json" "$2")
  for f in "$work/consistency/$3"-values-*.yaml; do args+=(-f "$f"); done
  "$helm" install "$name" "$chart" -n "$ns" --create-namespace "${args[@]}" >"$work/install-$3.log" 2>&1 ||
    { cat "$work/install-$3.log"; fail "helm install $name (namespace $ns)"; }
  # The release's objects, each with its namespace (the release's unless set).
  "$helm" get manifest "$name" -n "$ns" | python3 -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
for d in docs:
    d["metadata"].setdefault("namespace", sys.argv[1])
yaml.safe_dump_all(docs, sys.stdout)' "$ns" >"$work/manifest-$3.yaml"
  local want got
  want=$(grep -c '^kind:' "$work/manifest-$3.yaml")
  got=$(kubectl get -f "$work/manifest-$3.yaml" -o name | wc -l)
  [ "$got" -eq "$want" ] && [ "$want" -gt 0 ] || fail "$name: $got of $want objects stored"
  echo "  helm install $name -n $ns: $got objects admitted and stored"
}
# kube-prometheus-stack's namespace, where the exporter puts its dashboard.
kubectl create namespace "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kube_prometheus_stack"]["namespace"])' "$work/locals.json")" >/dev/null
install_release ai-finops-kafka strimzi_resources strimzi-resources
install_release ai-finops-exporter exporter exporter
cleanup
trap - EXIT

echo "== cluster stack: terraform init -backend=false + validate (hashicorp/aws from $mirror)"
if [ ! -d "$mirror/registry.terraform.io/hashicorp/aws" ]; then
  echo "SKIP: no provider mirror at $mirror (the machine image ships hashicorp/aws 5.100.0 there);"
  echo "      terraform validate of terraform/cluster not run"
  exit 77
fi
# A copy of the stack, so init's .terraform.lock.hcl lands in the scratch dir.
cp -r "$tfroot/cluster" "$work/cluster"
rm -rf "$work/cluster/.terraform" "$work/cluster/.terraform.lock.hcl"
"$tf" -chdir="$work/cluster" init -backend=false -input=false -no-color >"$work/init.log" 2>&1 ||
  { cat "$work/init.log"; fail "terraform init (cluster)"; }
grep -E 'Installed hashicorp/aws|Using previously-installed hashicorp/aws|Reusing previous version' "$work/init.log" | sed 's/^/  /'
"$tf" -chdir="$work/cluster" validate -json -no-color >"$work/validate.json" 2>"$work/validate.err" || true
python3 - "$work/validate.json" <<'EOF' || fail "terraform validate (cluster)"
import json, sys
r = json.load(open(sys.argv[1]))
for d in r.get("diagnostics", []):
    rng = d.get("range") or {}
    print(f"  {d['severity']}: {d['summary']}: {d.get('detail', '')[:300]} "
          f"({rng.get('filename', '?')}:{rng.get('start', {}).get('line', '?')})")
print(f"  valid={r['valid']} errors={r['error_count']} warnings={r['warning_count']}")
sys.exit(0 if r["valid"] and r["error_count"] == 0 and r["warning_count"] == 0 else 1)
EOF
echo "== cluster stack: variable validation"
c="$work/cluster"
inputs "$c" ok
inputs "$c" ok -var 'gpu_node_group={enabled=true}' -var 'az_count=2' -var 'single_nat_gateway=false' -var 'vpc_cidr=10.8.0.0/20'
inputs "$c" "region must be an AWS region name" -var 'region=US-EAST-1'
inputs "$c" "cluster_name must start with a letter" -var 'cluster_name=9-finops'
inputs "$c" "kubernetes_version must be 1.33" -var 'kubernetes_version=1.32'
inputs "$c" "add-on version must look like" -var 'addon_versions={vpc_cni="latest",kube_proxy="v1.33.0-eksbuild.2",coredns="v1.12.1-eksbuild.2",pod_identity_agent="v1.3.8-eksbuild.2",ebs_csi_driver="v1.48.0-eksbuild.1"}'
inputs "$c" "vpc_cidr must be an IPv4 CIDR block from /16 to /20" -var 'vpc_cidr=10.0.0.0/24'
inputs "$c" "az_count must be 2 or 3" -var 'az_count=4'
inputs "$c" "endpoint_public_access_cidrs must be a non-empty list" -var 'endpoint_public_access_cidrs=[]'
inputs "$c" "cluster_admin_arns must hold IAM role or user ARNs" -var 'cluster_admin_arns=["alice"]'
inputs "$c" "node_instance_types must be a non-empty list" -var 'node_instance_types=[]'
inputs "$c" "node_desired_size must lie between" -var 'node_desired_size=5'
inputs "$c" "node_max_size must be at least node_min_size" -var 'node_min_size=5' -var 'node_desired_size=5'
inputs "$c" "node_disk_size_gib must be between 20 and 1000" -var 'node_disk_size_gib=10'
inputs "$c" "gpu_node_group.instance_types must be GPU instance types" -var 'gpu_node_group={enabled=true,instance_types=["m6i.large"]}'
inputs "$c" "gpu_node_group needs 0 <= min_size <= desired_size" -var 'gpu_node_group={enabled=true,desired_size=3,max_size=2}'
inputs "$c" "cluster_log_retention_days must be one of" -var 'cluster_log_retention_days=10'
inputs "$c" "Tag keys must not start with aws:" -var 'tags={"aws:owner"="me"}'

find "$tfroot" | LC_ALL=C sort >"$work/tree-after.txt"
diff "$work/tree-before.txt" "$work/tree-after.txt" >&2 || fail "the checks changed the files under terraform/"
echo "terraform: fmt, tflint, validate and the platform consistency check passed"
