#!/usr/bin/env bash
# k8s-local.sh - a real Kubernetes API server on 127.0.0.1 without a cluster:
# etcd + kube-apiserver (built and cached by scripts/tools.sh), a static admin
# token, a service-account key pair and a serving certificate made with openssl.
# There is no kubelet, scheduler or controller-manager: objects are admitted with
# full server-side validation (CRDs, admission, RBAC), pods never run.
#
# Usage:
#   k8s-local.sh start DIR        start etcd + kube-apiserver on free loopback ports,
#                                 wait for /readyz, print DIR/kubeconfig (an empty
#                                 cluster each start; no-op when already running)
#   k8s-local.sh stop DIR         stop both (SIGTERM, SIGKILL after 30 s); idempotent
#   k8s-local.sh kubeconfig DIR   print DIR/kubeconfig
#   k8s-local.sh status DIR       exit 0 when both run and /readyz is ok, 3 otherwise
#   k8s-local.sh crds DIR [CRD_DIR]  server-side apply every CRD under CRD_DIR
#                                 (default $FINOPS_CRD_DIR, else tests/platform/schemas),
#                                 wait for Established,
#                                 print the CRD names
#
# DIR layout: kubeconfig, token, pki/ (CA, serving cert, SA keys, tokens.csv),
# etcd/ (data), logs/etcd.log, logs/kube-apiserver.log, etcd.pid,
# kube-apiserver.pid, ports (etcd client, etcd peer, apiserver).
#
# Choices: authorization RBAC, the admin token is in group system:masters.
# The ServiceAccount admission plugin is off by default because nothing here
# creates the `default` ServiceAccount of a namespace (that is the
# controller-manager's job), so a Pod without it would be refused.
#
# Environment (all optional):
#   K8S_LOCAL_START_TIMEOUT   seconds to wait for /readyz (default 300)
#   K8S_LOCAL_STOP_TIMEOUT    seconds between SIGTERM and SIGKILL (default 30)
#   K8S_LOCAL_DISABLE_ADMISSION  --disable-admission-plugins value (default ServiceAccount)
#   K8S_LOCAL_APISERVER_ARGS  extra kube-apiserver arguments (word-split)
#   KUBECTL                   kubectl binary (default: kubectl on PATH)
#   FINOPS_CRD_DIR            default CRD_DIR of `crds` (as in tools.sh)
set -euo pipefail

PROG="k8s-local.sh"
SCRIPT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
TOOLS_SH="$SCRIPT_DIR/tools.sh"
START_TIMEOUT="${K8S_LOCAL_START_TIMEOUT:-300}"
STOP_TIMEOUT="${K8S_LOCAL_STOP_TIMEOUT:-30}"
DISABLE_ADMISSION="${K8S_LOCAL_DISABLE_ADMISSION-ServiceAccount}"
SERVICE_CIDR="10.96.0.0/16"

die() { echo "$PROG: error: $*" >&2; exit 1; }
note() { echo "$PROG: $*" >&2; }

usage() {
  sed -n '/^# Usage:/,/^# DIR layout/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# free_ports N: N distinct free TCP ports on 127.0.0.1 (held until all are picked).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {   # stop_pid PIDFILE NAME
  local pidf="$1" name="$2" pid i
  [[ -f "$pidf" ]] || return 0
  pid="$(cat "$pidf")"
  if kill -0 "$pid" 2>/dev/null; then
    note "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      note "$name did not stop in ${STOP_TIMEOUT}s, SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidf"
}

make_pki() {
  local pki="$1"
  mkdir -p "$pki"
  [[ -f "$pki/serving.crt" && -f "$pki/sa.key" && -f "$pki/tokens.csv" ]] && return 0
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=k8s-local-ca" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -keyout serving.key -out serving.csr \
      -subj "/CN=kube-apiserver" >/dev/null 2>&1
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1" \
      "extendedKeyUsage=serverAuth" "keyUsage=digitalSignature,keyEncipherment" >serving.ext
    openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile serving.ext -out serving.crt >/dev/null 2>&1
    openssl genrsa -out sa.key 2048 >/dev/null 2>&1
    openssl rsa -in sa.key -pubout -out sa.pub >/dev/null 2>&1
    local token
    token="$(openssl rand -hex 24)"
    echo "$token,admin,admin-uid,system:masters" >tokens.csv
    echo "$token" >../token
    chmod 600 ca.key serving.key sa.key tokens.csv ../token
  )
}

write_kubeconfig() {
  local dir="$1" port="$2" token
  token="$(cat "$dir/token")"
  cat >"$dir/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: k8s-local
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: $dir/pki/ca.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: k8s-local
  context: {cluster: k8s-local, user: admin, namespace: default}
current-context: k8s-local
EOF
  chmod 600 "$dir/kubeconfig.tmp"
  mv -f "$dir/kubeconfig.tmp" "$dir/kubeconfig"
}

readyz() {   # readyz DIR: /readyz answers ok
  local port
  port="$(awk '{print $3}' "$1/ports" 2>/dev/null)" || return 1
  [[ -n "$port" ]] || return 1
  [[ "$(curl -s --max-time 5 --cacert "$1/pki/ca.crt" -H "Authorization: Bearer $(cat "$1/token")" \
    "https://127.0.0.1:$port/readyz" 2>/dev/null)" == ok ]]
}

cmd_start() {
  local dir="${1:?usage: start DIR}"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if alive "$dir/kube-apiserver.pid" && alive "$dir/etcd.pid" && readyz "$dir"; then
    note "already running"
    echo "$dir/kubeconfig"
    return 0
  fi
  cmd_stop "$dir" 2>/dev/null || true
  local etcd apiserver
  etcd="$("$TOOLS_SH" path etcd)"
  apiserver="$("$TOOLS_SH" path kube-apiserver)"
  # Each start is a fresh, empty cluster (ports change, so etcd's stored peer
  # URL would not match); the PKI and token are kept.
  rm -rf "$dir/etcd"
  mkdir -p "$dir/logs" "$dir/etcd"
  make_pki "$dir/pki"

  local ports p_client p_peer p_api
  ports="$(free_ports 3)"
  read -r p_client p_peer p_api <<<"$ports"
  echo "$ports" >"$dir/ports"

  note "starting etcd on 127.0.0.1:$p_client"
  setsid "$etcd" --name k8s-local --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$p_client" --advertise-client-urls "http://127.0.0.1:$p_client" \
    --listen-peer-urls "http://127.0.0.1:$p_peer" --initial-advertise-peer-urls "http://127.0.0.1:$p_peer" \
    --initial-cluster "k8s-local=http://127.0.0.1:$p_peer" --initial-cluster-state new \
    --listen-metrics-urls "" --unsafe-no-fsync --log-level warn \
    >"$dir/logs/etcd.log" 2>&1 </dev/null &
  echo $! >"$dir/etcd.pid"

  local deadline=$((SECONDS + START_TIMEOUT))
  until [[ "$(curl -s --max-time 5 "http://127.0.0.1:$p_client/health" 2>/dev/null)" == *'"health":"true"'* ]]; do
    alive "$dir/etcd.pid" || die "etcd exited; last lines of $dir/logs/etcd.log:
$(tail -n 20 "$dir/logs/etcd.log")"
    ((SECONDS < deadline)) || { cmd_stop "$dir"; die "etcd not healthy after ${START_TIMEOUT}s"; }
    sleep 0.5
  done

  note "starting kube-apiserver on https://127.0.0.1:$p_api"
  local extra=()
  # shellcheck disable=SC2206
  [[ -n "${K8S_LOCAL_APISERVER_ARGS:-}" ]] && extra=(${K8S_LOCAL_APISERVER_ARGS})
  setsid "$apiserver" \
    --etcd-servers "http://127.0.0.1:$p_client" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$p_api" \
    --tls-cert-file "$dir/pki/serving.crt" --tls-private-key-file "$dir/pki/serving.key" \
    --cert-dir "$dir/pki" \
    --token-auth-file "$dir/pki/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-key-file "$dir/pki/sa.pub" \
    --service-account-signing-key-file "$dir/pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --api-audiences https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    ${DISABLE_ADMISSION:+--disable-admission-plugins "$DISABLE_ADMISSION"} \
    --profiling=false --v=1 \
    "${extra[@]}" \
    >"$dir/logs/kube-apiserver.log" 2>&1 </dev/null &
  echo $! >"$dir/kube-apiserver.pid"
  write_kubeconfig "$dir" "$p_api"

  local t0=$SECONDS
  until readyz "$dir"; do
    alive "$dir/kube-apiserver.pid" || { cmd_stop "$dir"; die "kube-apiserver exited; last lines of $dir/logs/kube-apiserver.log:
$(tail -n 20 "$dir/logs/kube-apiserver.log")"; }
    ((SECONDS < deadline)) || { cmd_stop "$dir"; die "kube-apiserver not ready after ${START_TIMEOUT}s (see $dir/logs/kube-apiserver.log)"; }
    sleep 0.5
  done
  note "ready after $((SECONDS - t0)) s"
  echo "$dir/kubeconfig"
}

cmd_stop() {
  local dir="${1:?usage: stop DIR}"
  [[ -d "$dir" ]] || return 0
  stop_pid "$dir/kube-apiserver.pid" kube-apiserver
  stop_pid "$dir/etcd.pid" etcd
}

cmd_status() {
  local dir="${1:?usage: status DIR}"
  if alive "$dir/kube-apiserver.pid" && alive "$dir/etcd.pid" && readyz "$dir"; then
    echo running; return 0
  fi
  echo stopped; return 3
}

cmd_crds() {
  local dir="${1:?usage: crds DIR [CRD_DIR]}"
  local crd_dir="${2:-${FINOPS_CRD_DIR:-$ROOT/tests/platform/schemas}}"
  local kubectl="${KUBECTL:-$(command -v kubectl || true)}"
  [[ -n "$kubectl" ]] || die "kubectl not found (set KUBECTL)"
  [[ -f "$dir/kubeconfig" ]] || die "no $dir/kubeconfig (start first)"
  [[ -d "$crd_dir" ]] || die "CRD directory $crd_dir not found"
  local files=()
  mapfile -t files < <(find "$crd_dir" -type f \( -name '*.yaml' -o -name '*.yml' \) | LC_ALL=C sort)
  ((${#files[@]})) || die "no CRD files under $crd_dir"
  local f args=()
  for f in "${files[@]}"; do args+=(-f "$f"); done
  local kc=("$kubectl" --kubeconfig "$dir/kubeconfig") names=() name
  # Server-side: the Strimzi CRDs are too large for client-side apply's annotation.
  mapfile -t names < <("${kc[@]}" apply --server-side --field-manager k8s-local "${args[@]}" -o name)
  ((${#names[@]})) || die "kubectl apply printed no object names"
  # Poll instead of `kubectl wait`: it fails outright while a new CRD has no
  # status.conditions yet.
  local deadline=$((SECONDS + START_TIMEOUT)) pending
  while :; do
    pending=()
    for name in "${names[@]}"; do
      [[ "$("${kc[@]}" get "$name" -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)" == True ]] ||
        pending+=("$name")
    done
    ((${#pending[@]})) || break
    ((SECONDS < deadline)) || die "not Established after ${START_TIMEOUT}s: ${pending[*]}"
    sleep 0.5
  done
  note "${#names[@]} CRDs applied and Established"
  printf '%s\n' "${names[@]}"
}

main() {
  (($#)) || usage
  local cmd="$1"; shift
  case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kubeconfig) [[ -f "${1:?usage: kubeconfig DIR}/kubeconfig" ]] || die "no $1/kubeconfig"; echo "$(cd "$1" && pwd)/kubeconfig" ;;
    status) cmd_status "$@" ;;
    crds) cmd_crds "$@" ;;
    *) usage ;;
  esac
}

main "$@"
