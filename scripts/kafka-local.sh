#!/usr/bin/env bash
# kafka-local.sh — run a real single-node Apache Kafka broker (KRaft, broker
# and controller in one JVM) on 127.0.0.1, without Docker.
#
# The broker's jars come from Maven Central through Maven and are cached in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/ai-finops-exporter/kafka-<version>/libs
# so only the first run needs Maven and the network.
#
# Usage:
#   kafka-local.sh fetch                      download/cache the jars only
#   kafka-local.sh start DIR [--sasl-ssl]     format DIR, start, print bootstrap
#                                             (--sasl-ssl: also a SASL_SSL listener)
#   kafka-local.sh create-topic DIR NAME PARTITIONS
#   kafka-local.sh create-topic DIR NAME:PARTITIONS [NAME:PARTITIONS...]
#   kafka-local.sh stop DIR                   SIGTERM, SIGKILL after 30 s
#   kafka-local.sh restart DIR                same data, same ports
#   kafka-local.sh status DIR                 exit 0 running, 3 stopped
#   kafka-local.sh bootstrap DIR              print host:port
#   kafka-local.sh sasl-bootstrap DIR         print host:port of the SASL_SSL listener
#
# DIR layout: server.properties, bootstrap, broker.pid, data/ (log.dirs),
# logs/server.log (broker log), logs/stdout.log (JVM console), logs/format.log.
# With --sasl-ssl also: sasl_bootstrap, and tls/ with ca.pem (the CA clients
# trust: ssl.ca.location), ca.key, server.pem (the broker's PEM keystore: key +
# chain) and server.crt. The plaintext listener stays as without the option
# (inter-broker, controller, topic creation); the SASL_SSL listener accepts
# SCRAM-SHA-512 and SCRAM-SHA-256 for the users of KAFKA_LOCAL_SCRAM_USERS,
# whose credentials are written into the KRaft metadata at format time.
#
# Environment (all optional):
#   KAFKA_LOCAL_VERSION        Kafka release to use (default below)
#   KAFKA_LOCAL_JAVA           java binary (default: java on PATH, Java >= 17)
#   KAFKA_LOCAL_HEAP_OPTS      broker heap (default -Xms256m -Xmx1g)
#   KAFKA_LOCAL_JVM_OPTS       extra broker JVM options
#   KAFKA_LOCAL_START_TIMEOUT  seconds to wait for the broker (default 300: a busy
#                              2-core machine took over 60 s; only a broken broker
#                              waits that long)
#   KAFKA_LOCAL_STOP_TIMEOUT   seconds between SIGTERM and SIGKILL (default 30)
#   KAFKA_LOCAL_EXTRA_PROPS    file whose lines are appended to server.properties
#   KAFKA_LOCAL_SCRAM_USERS    with --sasl-ssl: space-separated USER:PASSWORD pairs
#                              ([A-Za-z0-9._-] only; default finops:finops-secret)
#   KAFKA_LOCAL_TLS_DAYS       with --sasl-ssl: validity of the generated certificates
#                              (default 30)
#   KAFKA_LOCAL_USE_TOPIC_COMMAND=1  create topics one by one with Kafka's
#                              TopicCommand instead of the one-JVM Admin helper
#                              (also used automatically when there is no javac)
set -euo pipefail

# Kafka 4.3.1: the newest release on Maven Central in the 4.1-4.3 lines that
# Strimzi 1.2 supports (4.4.0 is out but outside them). Log4j is the version
# Kafka's own distribution ships.
KAFKA_VERSION="${KAFKA_LOCAL_VERSION:-4.3.1}"
LOG4J_VERSION="2.25.3"

PROG="kafka-local.sh"
SCRIPT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
ASSETS="$SCRIPT_DIR/kafka"
CACHE_ROOT="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/ai-finops-exporter"
KCACHE="$CACHE_ROOT/kafka-$KAFKA_VERSION"
LIBS="$KCACHE/libs"
FETCHED_MARK="$KCACHE/.fetched"

START_TIMEOUT="${KAFKA_LOCAL_START_TIMEOUT:-300}"
STOP_TIMEOUT="${KAFKA_LOCAL_STOP_TIMEOUT:-30}"
HEAP_OPTS="${KAFKA_LOCAL_HEAP_OPTS:--Xms256m -Xmx1g}"
# Short-lived tools (storage format, topic creation): start fast, small heap.
TOOL_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto
  -Djava.awt.headless=true "-Dlog4j2.configurationFile=$ASSETS/log4j2-tools.xml")

die() { echo "$PROG: error: $*" >&2; exit 1; }
note() { echo "$PROG: $*" >&2; }

usage() {
  sed -n '/^# Usage:/,/^# DIR layout/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------- java/maven

JAVA=""
find_java() {
  [[ -n "$JAVA" ]] && return 0
  JAVA="${KAFKA_LOCAL_JAVA:-$(command -v java || true)}"
  [[ -n "$JAVA" && -x "$JAVA" ]] || die "java not found (install a JDK >= 17 or set KAFKA_LOCAL_JAVA)"
  local v major
  v="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
  major="${v%%.*}"
  [[ "$major" == 1 ]] && major="$(echo "$v" | cut -d. -f2)"
  [[ "$major" =~ ^[0-9]+$ ]] || die "cannot tell the version of $JAVA (got '$v')"
  ((major >= 17)) || die "Kafka $KAFKA_VERSION needs Java >= 17, $JAVA is $v"
}

have_jars() { [[ -f "$FETCHED_MARK" ]] && compgen -G "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; }

fetch() {
  have_jars && return 0
  command -v mvn >/dev/null || die "mvn (Maven) is needed once to download Kafka $KAFKA_VERSION into $LIBS"
  mkdir -p "$KCACHE"
  # One fetch at a time per version, even with parallel test runs.
  exec 8>"$KCACHE/.lock"
  if command -v flock >/dev/null; then flock 8; fi
  if have_jars; then exec 8>&-; return 0; fi
  note "fetching Apache Kafka $KAFKA_VERSION from Maven Central (first run only)..."
  local work t0
  t0=$SECONDS
  work="$(mktemp -d "$KCACHE/fetch.XXXXXX")"
  cp "$ASSETS/pom.xml" "$work/pom.xml"
  if ! (cd "$work" && mvn -B -q -Dstyle.color=never -f pom.xml \
        "-Dkafka.version=$KAFKA_VERSION" "-Dlog4j.version=$LOG4J_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime \
        "-DoutputDirectory=$work/libs") >"$work/mvn.log" 2>&1; then
    tail -n 40 "$work/mvn.log" >&2
    rm -rf "$work"
    die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (see above)"
  fi
  compgen -G "$work/libs/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null \
    || { rm -rf "$work"; die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing"; }
  rm -rf "$LIBS"
  mv "$work/libs" "$LIBS"
  rm -rf "$work"
  find "$LIBS" -name '*.jar' -printf '%f\n' | sort >"$FETCHED_MARK"
  exec 8>&-
  note "cached $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) in $LIBS in $((SECONDS - t0)) s"
}

# Compiles scripts/kafka/CreateTopics.java once per source version; prints the
# class directory, or nothing when no javac is around.
helper_classes() {
  local src="$ASSETS/CreateTopics.java" javac sum dir
  [[ -z "${KAFKA_LOCAL_USE_TOPIC_COMMAND:-}" ]] || return 0
  javac="$(dirname "$(readlink -f "$JAVA")")/javac"
  [[ -x "$javac" ]] || javac="$(command -v javac || true)"
  [[ -n "$javac" && -f "$src" ]] || return 0
  sum="$(cksum <"$src" | cut -d' ' -f1)"
  dir="$KCACHE/helper-$sum"
  if [[ ! -f "$dir/CreateTopics.class" ]]; then
    local tmp
    tmp="$(mktemp -d "$KCACHE/helper.XXXXXX")"
    if "$javac" -nowarn -d "$tmp" -cp "$LIBS/*" "$src" >"$tmp/javac.log" 2>&1; then
      rm -f "$tmp/javac.log"
      # Atomic; if a parallel run got there first, keep its copy.
      mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
    else
      note "warning: could not compile $src, falling back to TopicCommand:"
      cat "$tmp/javac.log" >&2
      rm -rf "$tmp"
      return 0
    fi
  fi
  echo "$dir"
}

# ---------------------------------------------------------------- broker dir

# Canonical absolute path of DIR (created if missing when $2 == create).
broker_dir() {
  local d="${1:-}"
  [[ -n "$d" ]] || usage
  if [[ "${2:-}" == create ]]; then mkdir -p "$d" || die "cannot create $d"; fi
  [[ -d "$d" ]] || die "$d is not a directory"
  (cd "$d" && pwd -P)
}

# PID of the broker of DIR if it is running, else nothing (and status 1).
broker_pid() {
  local dir="$1" pid state
  [[ -f "$dir/broker.pid" ]] || return 1
  pid="$(tr -dc '0-9' <"$dir/broker.pid")"
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/stat" ]]; then
    # A zombie (exited, parent has not reaped it) is not running.
    state="$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)"
    [[ "$state" != Z ]] || return 1
    # Guard against a recycled PID: it must be a Kafka broker for this DIR.
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $dir/server.properties" || return 1
  fi
  echo "$pid"
}

pid_alive() {
  local pid="$1" state
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/stat" ]]; then
    state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
    [[ "$state" != Z ]] || return 1
  fi
  return 0
}

free_ports() {  # prints N free TCP ports on 127.0.0.1
  local n="$1"
  if command -v python3 >/dev/null; then
    python3 - "$n" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
  else
    # No python3: probe random high ports until enough refuse a connection.
    local ports=() p
    while ((${#ports[@]} < n)); do
      p=$((20000 + RANDOM % 30000))
      [[ " ${ports[*]-} " == *" $p "* ]] && continue
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then ports+=("$p"); fi
    done
    echo "${ports[*]}"
  fi
}

cluster_id() {  # Kafka Uuid: 16 random bytes, URL-safe base64 without padding
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" == -* || "$id" == AAAAAAAAAAAAAAAAAAAAA[AQ] ]] || break
  done
  echo "$id"
}

# True once the broker on host:port answers an ApiVersions request.
api_versions_ok() {
  local host="${1%:*}" port="${1##*:}"
  if command -v python3 >/dev/null; then
    python3 - "$host" "$port" <<'EOF' 2>/dev/null
import socket, struct, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    s.settimeout(2)
    cid = b"kafka-local"
    req = struct.pack(">hhih", 18, 0, 7, len(cid)) + cid   # ApiVersions v0
    s.sendall(struct.pack(">i", len(req)) + req)
    def rd(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b
    n, = struct.unpack(">i", rd(4))
    corr, err = struct.unpack(">ih", rd(n)[:6])
    sys.exit(0 if corr == 7 and err == 0 else 1)
except Exception:
    sys.exit(1)
EOF
  else
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
  fi
}

fail_start() {
  local dir="$1" pid="$2" log_off="$3" why="$4" log="$1/logs/server.log"
  echo "$PROG: $why" >&2
  if [[ -s "$log" ]] && tail -c +"$((log_off + 1))" "$log" | grep -qE '^\[[^]]*\] (ERROR|FATAL) '; then
    echo "--- errors in $log:" >&2
    tail -c +"$((log_off + 1))" "$log" | grep -A1 -E '^\[[^]]*\] (ERROR|FATAL) ' | grep -v '^--$' | head -n 30 >&2
  fi
  echo "--- last lines of $log:" >&2
  tail -c +"$((log_off + 1))" "$log" 2>/dev/null | tail -n 20 >&2 || true
  if [[ -s "$dir/logs/stdout.log" ]]; then
    echo "--- last lines of $dir/logs/stdout.log:" >&2
    tail -n 20 "$dir/logs/stdout.log" >&2
  fi
  if pid_alive "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do pid_alive "$pid" || break; sleep 0.1; done
  fi
  rm -f "$dir/broker.pid"
  exit 1
}

# Launches the broker of an already formatted DIR and waits until it serves.
launch() {
  local dir="$1" boot log_off pid t0 deadline
  boot="$(cat "$dir/bootstrap")"
  mkdir -p "$dir/logs"
  touch "$dir/logs/server.log"
  log_off="$(stat -c %s "$dir/logs/server.log")"
  # A port taken by someone else makes the broker fail late and verbosely.
  local p
  for p in $(sed -n 's/^listeners=//p' "$dir/server.properties" | grep -oE ':[0-9]+' | tr -d :); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      die "port $p of $dir/server.properties is in use by another process (lsof -i :$p)"
    fi
  done
  local -a jvm
  read -r -a jvm <<<"$HEAP_OPTS ${KAFKA_LOCAL_JVM_OPTS:-}"
  t0="$(date +%s.%N)"
  # shellcheck disable=SC2016
  "$JAVA" "${jvm[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true "-Dkafka.logs.dir=$dir/logs" \
    "-Dlog4j2.configurationFile=$ASSETS/log4j2-broker.xml" \
    -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/logs/stdout.log" 2>&1 &
  pid=$!
  disown "$pid" 2>/dev/null || true
  echo "$pid" >"$dir/broker.pid"
  deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    pid_alive "$pid" || fail_start "$dir" "$pid" "$log_off" "the broker exited during startup"
    # Ready = the broker logged that it finished starting (it is unfenced)
    # and answers requests on its listener.
    if tail -c +"$((log_off + 1))" "$dir/logs/server.log" | grep -q "Kafka Server started" \
       && api_versions_ok "$boot"; then
      break
    fi
    ((SECONDS < deadline)) || fail_start "$dir" "$pid" "$log_off" "the broker did not come up within ${START_TIMEOUT} s"
    sleep 0.1
  done
  note "broker pid $pid ready on $boot in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s (logs: $dir/logs)"
  echo "$boot"
}

# Generates a CA and a server certificate for 127.0.0.1/localhost signed by
# it, in DIR/tls (openssl CLI; EC P-256 keys, fast to make). The broker reads
# server.pem as a PEM keystore: the unencrypted PKCS#8 key, then the chain.
make_tls() {
  local tls="$1/tls" days="${KAFKA_LOCAL_TLS_DAYS:-30}"
  command -v openssl >/dev/null || die "--sasl-ssl needs the openssl command"
  mkdir -p "$tls"
  (
    set -e
    cd "$tls"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout ca.key -out ca.pem -days "$days" -subj "/CN=kafka-local test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout server.key -out server.csr -subj "/CN=localhost"
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
      "extendedKeyUsage=serverAuth" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
      -days "$days" -extfile server.ext -out server.crt
    openssl pkcs8 -topk8 -nocrypt -in server.key -out server.p8
    cat server.p8 server.crt >server.pem
    rm -f server.csr server.ext server.p8 ca.srl
    chmod 644 ca.pem server.crt
  ) >"$1/logs/tls.log" 2>&1 || { cat "$1/logs/tls.log" >&2; die "generating certificates in $tls failed"; }
}

# --add-scram arguments of the storage format, one a line, for
# KAFKA_LOCAL_SCRAM_USERS (both mechanisms for each user).
scram_args() {
  local pair user pass mech
  for pair in ${KAFKA_LOCAL_SCRAM_USERS:-finops:finops-secret}; do
    user="${pair%%:*}"; pass="${pair#*:}"
    [[ "$pair" == *:* && "$user" =~ ^[A-Za-z0-9._-]+$ && "$pass" =~ ^[A-Za-z0-9._-]+$ ]] \
      || return 1
    for mech in SCRAM-SHA-512 SCRAM-SHA-256; do
      printf '%s\n' --add-scram "$mech=[name=\"$user\",password=\"$pass\"]"
    done
  done
}

cmd_start() {
  local dir port cport sport="" cid pid sasl=0
  if [[ "${2:-}" == --sasl-ssl ]]; then
    sasl=1
  elif [[ -n "${2:-}" ]]; then
    die "unknown option '${2}' of start (known: --sasl-ssl)"
  fi
  dir="$(broker_dir "${1:-}" create)"
  if pid="$(broker_pid "$dir")"; then
    note "broker already running in $dir (pid $pid)"
    cat "$dir/bootstrap"
    return 0
  fi
  [[ ! -e "$dir/data/meta.properties" ]] \
    || die "$dir already holds a formatted broker; use '$PROG restart $dir' to reuse it, or remove it"
  fetch
  find_java
  read -r port cport sport <<<"$(free_ports 3)"
  [[ -n "$port" && -n "$cport" && -n "$sport" ]] || die "could not find free TCP ports on 127.0.0.1"
  cid="$(cluster_id)"
  mkdir -p "$dir/data" "$dir/logs"
  local -a scram=()
  if ((sasl)); then
    local args
    args="$(scram_args)" || die "KAFKA_LOCAL_SCRAM_USERS: each entry must be USER:PASSWORD of [A-Za-z0-9._-]"
    mapfile -t scram <<<"$args"
    make_tls "$dir"
  fi
  cat >"$dir/server.properties" <<EOF
# Generated by $PROG start on $(date -u +%Y-%m-%dT%H:%M:%SZ); Kafka $KAFKA_VERSION.
# Single node: broker and KRaft controller in one process, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.network.threads=2
num.io.threads=4
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  if ((sasl)); then
    # Inter-broker and controller traffic stay on PLAINTEXT; the SASL_SSL
    # listener is an extra one for clients.
    sed -i -e "s|^listeners=PLAINTEXT://127.0.0.1:$port,|&SASL_SSL://127.0.0.1:$sport,|" \
      -e "s|^advertised.listeners=.*|&,SASL_SSL://127.0.0.1:$sport|" \
      -e "s|^listener.security.protocol.map=.*|&,SASL_SSL:SASL_SSL|" "$dir/server.properties"
    cat >>"$dir/server.properties" <<EOF
# --sasl-ssl: SCRAM over TLS, certificates in $dir/tls
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$dir/tls/server.pem
listener.name.sasl_ssl.ssl.client.auth=none
EOF
    echo "127.0.0.1:$sport" >"$dir/sasl_bootstrap"
  fi
  if [[ -n "${KAFKA_LOCAL_EXTRA_PROPS:-}" ]]; then
    [[ -f "$KAFKA_LOCAL_EXTRA_PROPS" ]] || die "KAFKA_LOCAL_EXTRA_PROPS=$KAFKA_LOCAL_EXTRA_PROPS is not a file"
    { echo "# from $KAFKA_LOCAL_EXTRA_PROPS"; cat "$KAFKA_LOCAL_EXTRA_PROPS"; } >>"$dir/server.properties"
  fi
  echo "127.0.0.1:$port" >"$dir/bootstrap"
  if ! "$JAVA" "${TOOL_OPTS[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format \
        -t "$cid" -c "$dir/server.properties" "${scram[@]}" >"$dir/logs/format.log" 2>&1; then
    cat "$dir/logs/format.log" >&2
    die "formatting KRaft storage in $dir/data failed"
  fi
  launch "$dir"
}

cmd_restart() {
  local dir
  dir="$(broker_dir "${1:-}")"
  [[ -f "$dir/server.properties" && -f "$dir/bootstrap" && -e "$dir/data/meta.properties" ]] \
    || die "$dir holds no broker; run '$PROG start $dir' first"
  if broker_pid "$dir" >/dev/null; then cmd_stop "$dir"; fi
  fetch
  find_java
  launch "$dir"
}

cmd_stop() {
  local dir pid i
  dir="$(broker_dir "${1:-}")"
  if ! pid="$(broker_pid "$dir")"; then
    rm -f "$dir/broker.pid"
    note "no broker running in $dir"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    pid_alive "$pid" || break
    sleep 0.1
  done
  if pid_alive "$pid"; then
    note "broker pid $pid did not stop within ${STOP_TIMEOUT} s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do pid_alive "$pid" || break; sleep 0.1; done
    pid_alive "$pid" && die "broker pid $pid survived SIGKILL"
  fi
  rm -f "$dir/broker.pid"
  note "broker pid $pid stopped"
}

cmd_status() {
  local dir pid
  dir="$(broker_dir "${1:-}")"
  if pid="$(broker_pid "$dir")"; then
    echo "running pid=$pid bootstrap=$(cat "$dir/bootstrap")"
    return 0
  fi
  echo "stopped"
  return 3
}

cmd_bootstrap() {
  local dir
  dir="$(broker_dir "${1:-}")"
  [[ -f "$dir/bootstrap" ]] || die "$dir holds no broker"
  cat "$dir/bootstrap"
}

cmd_sasl_bootstrap() {
  local dir
  dir="$(broker_dir "${1:-}")"
  [[ -f "$dir/sasl_bootstrap" ]] || die "$dir holds no broker started with --sasl-ssl"
  cat "$dir/sasl_bootstrap"
}

cmd_create_topic() {
  local dir boot classes
  dir="$(broker_dir "${1:-}")"
  shift || true
  (($# >= 1)) || usage
  local -a specs=()
  if (($# == 2)) && [[ "$1" != *:* && "$2" =~ ^[0-9]+$ ]]; then
    specs=("$1:$2")
  else
    specs=("$@")
  fi
  local s name parts
  for s in "${specs[@]}"; do
    name="${s%:*}"; parts="${s##*:}"
    [[ "$s" == *:* ]] || parts=1
    [[ "$name" =~ ^[A-Za-z0-9._-]{1,249}$ ]] || die "bad topic name '$name'"
    if ! [[ "$parts" =~ ^[0-9]{1,6}$ ]] || ((10#$parts < 1)); then
      die "bad partition count '$parts' for topic $name"
    fi
  done
  broker_pid "$dir" >/dev/null || die "no broker running in $dir (start it first)"
  boot="$(cat "$dir/bootstrap")"
  fetch
  find_java
  classes="$(helper_classes)"
  if [[ -n "$classes" ]]; then
    "$JAVA" "${TOOL_OPTS[@]}" -cp "$LIBS/*:$classes" CreateTopics "$boot" "${specs[@]}" \
      || die "creating topics ${specs[*]} failed"
    return 0
  fi
  for s in "${specs[@]}"; do
    name="${s%:*}"; parts="${s##*:}"
    [[ "$s" == *:* ]] || parts=1
    "$JAVA" "${TOOL_OPTS[@]}" -cp "$LIBS/*" org.apache.kafka.tools.TopicCommand \
      --bootstrap-server "$boot" --create --if-not-exists --topic "$name" \
      --partitions "$parts" --replication-factor 1 \
      || die "creating topic $name failed"
  done
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    fetch) fetch; note "Kafka $KAFKA_VERSION jars in $LIBS" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    restart) cmd_restart "$@" ;;
    status) cmd_status "$@" ;;
    bootstrap) cmd_bootstrap "$@" ;;
    sasl-bootstrap) cmd_sasl_bootstrap "$@" ;;
    create-topic | create-topics) cmd_create_topic "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

main "$@"
