#!/usr/bin/env bash
# run.sh - the platform checks (image, compose stack, Helm chart, Strimzi
# resources, Kubernetes API server, alerts and dashboard), run by
# scripts/test.sh after the C builds. Each tests/platform/test_*.sh is one
# check: exit 0 passed, 77 skipped (it prints why), anything else failed.
# Usage: tests/platform/run.sh BUILD_DIR [NAME_GLOB]
# The checks get FINOPS_ROOT (the source tree), FINOPS_BUILD (a build dir
# holding ai-finops-exporter and ai-finops-loadgen), FINOPS_TOOLS (the
# cached tool script) and FINOPS_WORK (a fresh scratch dir of their own).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export FINOPS_ROOT="$(cd "$here/../.." && pwd)"
export FINOPS_BUILD="$(cd "${1:?usage: run.sh BUILD_DIR [NAME_GLOB]}" && pwd)"
export FINOPS_TOOLS="$FINOPS_ROOT/scripts/tools.sh"
glob="${2:-*}"

failed=() skipped=() passed=()
for check in "$here"/test_$glob.sh; do
  [ -e "$check" ] || continue
  name=$(basename "$check" .sh)
  export FINOPS_WORK="$FINOPS_BUILD/platform/$name"
  rm -rf "$FINOPS_WORK" && mkdir -p "$FINOPS_WORK"
  echo "--- platform: $name"
  start=$(date +%s)
  bash "$check"
  rc=$?
  took=$(( $(date +%s) - start ))
  case $rc in
    0) passed+=("$name"); echo "--- platform: $name passed (${took}s)" ;;
    77) skipped+=("$name"); echo "--- platform: $name SKIPPED (${took}s)" ;;
    *) failed+=("$name"); echo "--- platform: $name FAILED, exit $rc (${took}s)" ;;
  esac
done
echo "platform: ${#passed[@]} passed, ${#skipped[@]} skipped, ${#failed[@]} failed${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
