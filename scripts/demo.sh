#!/usr/bin/env bash
# demo.sh - the main job on a fresh machine: installs dependencies, builds
# the exporter, runs it on the bundled sample of realistic events, prints
# the spend it counted and where /metrics is, and keeps serving until
# Ctrl-C. --once exits after printing (for smoke tests).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
once=0
[ "${1:-}" = "--once" ] && once=1

"$root/scripts/setup.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target ai-finops-exporter >/dev/null

port=${FINOPS_DEMO_PORT:-9400}
events="$root/data/sample-events.jsonl"
"$root/build/ai-finops-exporter" --input "$events" --web.listen-address="127.0.0.1:$port" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT INT TERM

lines=$(grep -cv '^[[:space:]]*$' "$events")
for _ in $(seq 1 100); do
  done_count=$(curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null |
    awk '/^ai_finops_events_total/ {s += $2} END {print s + 0}')
  [ "${done_count:-0}" -ge "$lines" ] && break
  sleep 0.1
done

echo
echo "Counted $done_count events from $events. Top spend by team/project/source:"
curl -fsS "http://127.0.0.1:$port/metrics" |
  grep '^ai_finops_cost_dollars_total' | sort -t' ' -k2 -g -r | head -n 10
curl -fsS "http://127.0.0.1:$port/metrics" | grep '^ai_finops_events' || true
echo
echo "Metrics: http://127.0.0.1:$port/metrics   (health: /healthz, ready: /readyz)"
if [ $once -eq 1 ]; then
  exit 0
fi
echo "Serving until Ctrl-C."
wait $pid
