#!/usr/bin/env bash
# test_40_compose.sh - the compose stack, for real: docker-compose 1.29 against
# podman's Docker API (`podman system service` on a private socket) brings up
# docker/compose.yaml with docker/compose.local.yaml (Kafka and Prometheus
# images built here from the same Debian base; Grafana is not run, see
# docker/README.md) under a unique project name, builds every image (layers
# cached by podman between runs), and waits for the stack's load generator to
# finish. Then: the exporter's /metrics equals the sum of the three
# loadgens' printed totals (cost events, GPU utilization samples with
# repeated/overlapping intervals, FOCUS rows) exactly, every series of every
# family (tests/platform/totals.py), and the stack's Prometheus reports
# up{job="ai-finops-exporter"} == 1 through its HTTP API. Finally
# `down -v --rmi local` and a check that no container, network or volume of
# the project is left. Torn down on every exit (trap). The images stay
# tagged (ai-finops-exporter:compose, ai-finops-kafka-local,
# ai-finops-prometheus-local) so the next run's builds are cache hits.
set -euo pipefail
root=${FINOPS_ROOT:?} work=${FINOPS_WORK:?} tools=${FINOPS_TOOLS:?}
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ai-finops-exporter"
project="finops-test40-$$"
events=${FINOPS_COMPOSE_TEST_EVENTS:-20000}
t_start=$(date +%s)

eval "$("$tools" podman-env)"
"$tools" ensure base-image >/dev/null

# The local Kafka image's build context: docker/local/kafka/ plus the jars
# scripts/kafka-local.sh caches (copied with their times, so an unchanged
# context keeps its cached layers).
"$root/scripts/kafka-local.sh" fetch
kafka_libs="$cache/kafka-4.3.1/libs"
ctx="$cache/compose-kafka-context"
mkdir -p "$ctx/libs"
cp -a "$root/docker/local/kafka/." "$ctx/"
cp -a -u "$kafka_libs"/*.jar "$ctx/libs/"
for jar in "$ctx/libs"/*.jar; do [ -e "$kafka_libs/${jar##*/}" ] || rm -f "$jar"; done
export FINOPS_KAFKA_CONTEXT="$ctx"

read -r FINOPS_EXPORTER_PORT FINOPS_PROMETHEUS_PORT FINOPS_KAFKA_PORT FINOPS_GRAFANA_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
export FINOPS_EXPORTER_PORT FINOPS_PROMETHEUS_PORT FINOPS_KAFKA_PORT FINOPS_GRAFANA_PORT
export FINOPS_LOADGEN_COUNT="$events" FINOPS_LOADGEN_RATE=4000 FINOPS_LOADGEN_SEED=40
export FINOPS_LOADGEN_GPU_COUNT=${FINOPS_COMPOSE_TEST_GPU_SAMPLES:-5000} FINOPS_LOADGEN_GPU_RATE=2000
export FINOPS_LOADGEN_FOCUS_COUNT=${FINOPS_COMPOSE_TEST_FOCUS_ROWS:-5000} FINOPS_LOADGEN_FOCUS_RATE=2000

sock="$work/podman.sock"
# Until the full teardown below is armed: stop the service if starting it fails.
trap '"$tools" podman-service-stop "$sock" || true' EXIT
DOCKER_HOST=$("$tools" podman-service "$sock")
export DOCKER_HOST
export COMPOSE_HTTP_TIMEOUT=600
compose=(docker-compose --ansi never -f "$root/docker/compose.yaml" -f "$root/docker/compose.local.yaml" -p "$project")

leftovers() {  # containers, networks, volumes labelled with the project
  local label="label=com.docker.compose.project=$project"
  podman ps -a --filter "$label" --format '{{.Names}}'
  podman network ls --filter "$label" --format '{{.Name}}'
  podman volume ls --filter "$label" --format '{{.Name}}'
}
torn_down=
teardown() {
  local rc=$?
  if [ -z "$torn_down" ]; then
    "${compose[@]}" logs --no-color >"$work/stack.log" 2>&1 || true
    "${compose[@]}" down -v --rmi local --remove-orphans -t 10 >>"$work/down.log" 2>&1 || true
    local left; left=$(leftovers || true)
    if [ -n "$left" ]; then
      echo "teardown left behind: $left" >&2
      echo "$left" | while read -r x; do
        podman rm -f "$x" >/dev/null 2>&1 || podman network rm "$x" >/dev/null 2>&1 || podman volume rm -f "$x" >/dev/null 2>&1 || true
      done
    fi
  fi
  "$tools" podman-service-stop "$sock" || true
  exit $rc
}
trap teardown EXIT

echo "docker-compose config"
"${compose[@]}" config -q

echo "docker-compose up -d --build (project $project)"
t0=$(date +%s)
if ! "${compose[@]}" up -d --build >"$work/up.log" 2>&1; then
  tail -n 40 "$work/up.log"
  echo "FAIL docker-compose up (log: $work/up.log)"
  exit 1
fi
echo "stack up in $(($(date +%s) - t0)) s (build log: $work/up.log)"
if [ -n "$(podman ps -a --filter "label=com.docker.compose.project=$project" \
      --filter label=com.docker.compose.service=grafana --format '{{.Names}}')" ]; then
  echo "FAIL grafana is running in the test stack (the override keeps it out)"
  exit 1
fi

fail=0
check() { if [ "$1" = 0 ]; then echo "PASS $2"; else echo "FAIL $2${3:+: $3}"; fail=1; fi; }

# Each loadgen exits after its count and prints its totals.
totals_files=()
for svc in loadgen loadgen-gpu loadgen-focus; do
  lg=$("${compose[@]}" ps -q "$svc")
  [ -n "$lg" ] || { echo "FAIL no $svc container"; exit 1; }
  deadline=$(($(date +%s) + 900))
  while [ "$(podman inspect --format '{{.State.Status}}' "$lg")" != exited ]; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
      echo "FAIL $svc still running after 900 s"; podman logs --tail 20 "$lg"; exit 1
    fi
    sleep 1
  done
  code=$(podman inspect --format '{{.State.ExitCode}}' "$lg")
  podman logs "$lg" >"$work/$svc.log" 2>&1
  check "$([ "$code" = 0 ] && echo 0 || echo 1)" "$svc exited 0" "exit $code: $(tail -n 5 "$work/$svc.log")"
  [ "$code" = 0 ] || exit 1
  # its stdout is the totals JSON (stderr has at most "retrying" lines)
  sed -n '/^{/,$p' "$work/$svc.log" >"$work/$svc.totals.json"
  python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); print("%s totals: %d events delivered (%d valid, %d bad), %d failed" % (sys.argv[2], t["events"]["produced"], t["events"]["valid"], t["events"]["bad"], t["events"]["failed"]))' "$work/$svc.totals.json" "$svc"
  totals_files+=("$work/$svc.totals.json")
done

hold_ms=$(sed -n 's/^ *new_series_hold_ms: *\([0-9]*\).*/\1/p' "$root/docker/exporter/config.yaml")
[ -n "$hold_ms" ] || { echo "FAIL no counters.new_series_hold_ms in docker/exporter/config.yaml"; exit 1; }
if ! python3 "$root/tests/platform/totals.py" "${totals_files[@]}" \
     "http://127.0.0.1:$FINOPS_EXPORTER_PORT/metrics" --timeout 600 --hold-ms "$hold_ms" --save "$work/metrics.txt"; then
  fail=1
fi

# Prometheus in the stack scrapes the exporter: up == 1 through its HTTP API.
query() {
  curl -fsS --max-time 10 -G "http://127.0.0.1:$FINOPS_PROMETHEUS_PORT/api/v1/query" --data-urlencode "query=$1" 2>/dev/null || true
}
deadline=$(($(date +%s) + 300)) up=""
while :; do
  up=$(query 'up{job="ai-finops-exporter"}' | python3 -c '
import json, sys
try:
    r = json.load(sys.stdin)["data"]["result"]
    print(",".join("%s=%s" % (s["metric"].get("instance"), s["value"][1]) for s in r))
except Exception:
    print("")')
  [ "$up" = "exporter:9400=1" ] && break
  [ "$(date +%s)" -gt "$deadline" ] && break
  sleep 2
done
check "$([ "$up" = "exporter:9400=1" ] && echo 0 || echo 1)" \
  "Prometheus: up{job=\"ai-finops-exporter\"} == 1 (instance exporter:9400)" "got '${up:-no result}'"
n=$(query 'count(ai_finops_events_total{job="ai-finops-exporter"})' | python3 -c '
import json, sys
try:
    r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)
except Exception:
    print(0)')
check "$([ "${n:-0}" -ge 1 ] && echo 0 || echo 1)" "Prometheus holds the exporter's ai_finops_events_total ($n series)"
# The relabelling of prometheus/prometheus.yml: spend series are identified
# by their shard, without the target's instance (up keeps it, checked above).
count_of() {
  query "count($1)" | python3 -c '
import json, sys
try:
    r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)
except Exception:
    print(0)'
}
sharded=$(count_of 'ai_finops_cost_dollars_total{job="ai-finops-exporter",shard!="",instance=""}')
with_instance=$(count_of 'ai_finops_cost_dollars_total{job="ai-finops-exporter",instance!=""}')
check "$([ "${sharded:-0}" -ge 1 ] && [ "${with_instance:-1}" = 0 ] && echo 0 || echo 1)" \
  "Prometheus stores spend per shard without instance ($sharded series; $with_instance with instance)"

# The other kinds reach Prometheus too (the dashboard's GPU idle cost and
# cloud bill panels read these).
for fam in ai_finops_gpu_idle_cost_dollars_total ai_finops_gpu_allocated_seconds_total \
           ai_finops_cloud_cost_dollars_total ai_finops_credit_dollars_total; do
  n=$(count_of "$fam{job=\"ai-finops-exporter\",shard!=\"\"}")
  check "$([ "${n:-0}" -ge 1 ] && echo 0 || echo 1)" "Prometheus holds $fam per shard ($n series)"
done

echo "docker-compose down -v --rmi local"
"${compose[@]}" logs --no-color >"$work/stack.log" 2>&1 || true
"${compose[@]}" down -v --rmi local --remove-orphans -t 10 >"$work/down.log" 2>&1 || { cat "$work/down.log"; fail=1; }
torn_down=1
left=$(leftovers)
check "$([ -z "$left" ] && echo 0 || echo 1)" "nothing of project $project left (containers, networks, volumes)" "$left"
echo "compose check took $(($(date +%s) - t_start)) s"
[ $fail -eq 0 ] || { echo "logs: $work/stack.log"; exit 1; }
echo "compose check passed"
