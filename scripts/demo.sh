#!/usr/bin/env bash
# demo.sh - the main job on a fresh machine: installs dependencies, builds
# the exporter and the load generator, starts a local single-node Apache
# Kafka (no Docker), creates the topics, produces realistic cost events into
# ai-costs with ai-finops-loadgen (half priced by the exporter from usage,
# some malformed), GPU utilization samples into gpu-utilization-events (some
# repeating or overlapping an interval) and FOCUS cloud-billing rows into
# focus-billing, runs the exporter against them, checks that the AI spend,
# the GPU idle cost, the cloud cost and the credits it counted equal what was
# produced to the nano-dollar, prints where /metrics is, and keeps serving
# until Ctrl-C (then stops everything).
# --once exits after printing (for smoke tests).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
once=0
[ "${1:-}" = "--once" ] && once=1

"$root/scripts/setup.sh"
echo "demo: building"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target ai-finops-exporter ai-finops-loadgen >/dev/null

state="${XDG_CACHE_HOME:-$HOME/.cache}/ai-finops-exporter/demo"
kafka_dir="$state/kafka"
mkdir -p "$state"
port=${FINOPS_DEMO_PORT:-9400}
daemon_pid=
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  "$root/scripts/kafka-local.sh" stop "$kafka_dir" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "demo: starting a local Kafka broker (first run downloads Apache Kafka from Maven Central)"
rm -rf "$kafka_dir" # a fresh broker each run, so the totals are this run's
boot=$("$root/scripts/kafka-local.sh" start "$kafka_dir" | tail -n 1)
"$root/scripts/kafka-local.sh" create-topic "$kafka_dir" ai-costs:8 ai-api-costs:8 \
  gpu-utilization-events:8 focus-billing:8 ai-costs-dlq:1 >/dev/null

count=${FINOPS_DEMO_EVENTS:-200000}
"$root/build/ai-finops-loadgen" --brokers "$boot" --topic ai-costs --count "$count" \
  --priced-ratio 0.5 --bad-ratio 0.005 --seed 42 --quiet --totals "$state/totals.json"
gpu_count=${FINOPS_DEMO_GPU_SAMPLES:-20000} focus_count=${FINOPS_DEMO_FOCUS_ROWS:-20000}
"$root/build/ai-finops-loadgen" --brokers "$boot" --kind gpu_utilization --topic gpu-utilization-events \
  --count "$gpu_count" --dup-ratio 0.05 --seed 42 --quiet --totals "$state/totals-gpu.json"
"$root/build/ai-finops-loadgen" --brokers "$boot" --kind focus --topic focus-billing \
  --count "$focus_count" --seed 42 --quiet --totals "$state/totals-focus.json"
lines=$((count + gpu_count + focus_count))
echo "demo: ai-finops-loadgen produced $count events to ai-costs, $gpu_count GPU samples to" \
  "gpu-utilization-events and $focus_count FOCUS rows to focus-billing on $boot"

# The demo reads /metrics with curl, not with Prometheus: no new-series
# hold (a Prometheus needs one, docs/delivery.md). /metrics shows the last
# checkpoint (every second, to the state topic ai-finops-state, which the
# exporter creates), summed here over the shard label.
"$root/build/ai-finops-exporter" --kafka.brokers="$boot" \
  --kafka.topics=ai-costs,ai-api-costs,gpu-utilization-events,focus-billing \
  --events.topic-kinds=gpu-utilization-events=gpu_utilization --events.topic-kinds=focus-billing=focus \
  --counters.new-series-hold-ms=0 \
  --web.listen-address="127.0.0.1:$port" &
daemon_pid=$!

count=0
deadline=$(($(date +%s) + 600))
while [ "$(date +%s)" -lt "$deadline" ]; do
  kill -0 "$daemon_pid" 2>/dev/null || { echo "demo: the exporter exited" >&2; exit 1; }
  count=$( (curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null || true) |
    awk '/^ai_finops_events_total/ {s += $2} END {print s + 0}')
  [ "${count:-0}" -ge "$lines" ] && break
  sleep 0.5
done

curl -fsS "http://127.0.0.1:$port/metrics" > "$state/scrape.txt"
echo
echo "Consumed $count of $lines events from Kafka. Top spend by team/project/source (and shard):"
grep '^ai_finops_cost_dollars_total' "$state/scrape.txt" | sort -t' ' -k2 -g -r | head -n 10 || true
python3 - "$state/scrape.txt" "$state/totals.json" "$state/totals-gpu.json" "$state/totals-focus.json" <<'PY'
import json, sys
from decimal import Decimal
totals = [json.load(open(f)) for f in sys.argv[2:]]
lines = open(sys.argv[1]).read().splitlines()
print()
for what, key, fam in (("AI spend", "cost_nanos", "ai_finops_cost_dollars_total"),
                       ("GPU idle cost", "gpu_idle_cost_nanos", "ai_finops_gpu_idle_cost_dollars_total"),
                       ("cloud cost (FOCUS)", "cloud_cost_nanos", "ai_finops_cloud_cost_dollars_total"),
                       ("cloud credits (FOCUS)", "credit_nanos", "ai_finops_credit_dollars_total")):
    produced = sum(s["value"] for t in totals for s in t.get(key, []))
    counted = sum(int(Decimal(line.rsplit(" ", 1)[1]) * 10**9) for line in lines if line.startswith(fam + "{"))
    verdict = "exact" if produced == counted else "MISMATCH"
    print(f"{what}: produced ${Decimal(produced) / 10**9}, counted ${Decimal(counted) / 10**9}: {verdict}")
PY
curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^ai_finops_(events_total|dlq_produced|kafka_checkpoints_total)' || true
echo
echo "Metrics: http://127.0.0.1:$port/metrics   (health: /healthz, ready: /readyz)"
echo "Rejected events are in the dead-letter topic: kcat -b $boot -t ai-costs-dlq -C -e -f '%h %s\\n'"
if [ $once -eq 1 ]; then
  exit 0
fi
echo "Serving until Ctrl-C."
wait "$daemon_pid"
