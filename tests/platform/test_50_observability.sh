#!/usr/bin/env bash
# test_50_observability.sh - the alerts and the dashboard, for real and without
# containers:
#  1. promtool check rules on helm/ai-finops-exporter/files/alerts.yaml, and
#     promtool test rules on tests/platform/rules_test.yaml (every alert firing
#     and not firing);
#  2. observability_e2e.py: the daemon started with the exact config.yaml of
#     the chart's ConfigMap against a local Kafka, Debian's Prometheus scraping
#     it as the chart's ServiceMonitor says, with alerts.yaml loaded, and an
#     OpenCost stand-in; the spend Prometheus stored equals the load
#     generator's totals exactly, per series identified by its shard and not
#     by the pod (the ServiceMonitor's metricRelabelings), also by counter
#     semantics (the new-series hold), every rule evaluates, and every query
#     of files/dashboard.json returns data not split by shard.
# Run by tests/platform/run.sh (env FINOPS_ROOT, FINOPS_BUILD, FINOPS_TOOLS,
# FINOPS_WORK); everything it starts is stopped when it ends.
set -euo pipefail
root="${FINOPS_ROOT:?run through tests/platform/run.sh}"
build="${FINOPS_BUILD:?}"
work="${FINOPS_WORK:?}"
tools="${FINOPS_TOOLS:-$root/scripts/tools.sh}"
chart="$root/helm/ai-finops-exporter"
rules="$chart/files/alerts.yaml"

for bin in promtool prometheus; do
  command -v "$bin" >/dev/null || "$root/scripts/setup.sh"
done

e2e_pid=
cleanup() {
  # observability_e2e.py stops its own children (and they die with it), so
  # only it needs stopping here.
  if [ -n "$e2e_pid" ] && kill -0 "$e2e_pid" 2>/dev/null; then
    kill -TERM "$e2e_pid" 2>/dev/null || true
    wait "$e2e_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "observability: promtool check rules"
promtool check rules "$rules"
echo "observability: promtool test rules"
promtool test rules "$root/tests/platform/rules_test.yaml"

helm="$("$tools" path helm)"
echo "observability: end to end (helm $("$helm" version --short 2>/dev/null), $(prometheus --version 2>&1 | head -n 1))"
python3 "$root/tests/platform/observability_e2e.py" --root "$root" --build "$build" --work "$work" \
  --helm "$helm" &
e2e_pid=$!
rc=0
wait "$e2e_pid" || rc=$?
e2e_pid=
exit "$rc"
