#!/usr/bin/env bash
# test.sh - the one command that runs every test from a fresh clone:
# installs dependencies, then builds and runs three configurations:
#   build/       release-with-debug-info: unit, fuzz-corpus replay, integration
#                (1,000,000-event replay, real Kafka broker, promtool); tests
#                labelled known-gap (an open issue's failing test) would be
#                skipped: today there are none
#   build-asan/  ASan+UBSan: unit, fuzz replay, integration and Kafka at reduced size
#   build-tsan/  TSan: unit tests (the multi-threaded table stress test) and the
#                Kafka tests at reduced size (librdkafka's C11 threads are made
#                visible by tests/support/tsan_c11_threads.c; tests/tsan.supp)
#   platform     tests/platform/run.sh: the container image, the compose stack,
#                the Helm chart and deploy/ against a local kube-apiserver, the
#                alerts and the dashboard against a real Prometheus
# Exits non-zero if any test fails. Timing never fails a test.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

"$root/scripts/setup.sh"

# The platform checks' tools build from source the first time (helm, etcd,
# kube-apiserver: most of an hour on two busy cores; cached afterwards).
# Build them now at the lowest priority, beside the C configurations, and
# wait for them before the platform checks.
mkdir -p "$root/build"
tools_log="$root/build/platform-tools.log"
setsid nice -n 19 "$root/scripts/tools.sh" ensure podman base-image helm kubeconform tflint etcd \
  kube-apiserver k8s-schemas crd-schemas hadolint >"$tools_log" 2>&1 &
tools_pid=$!
# Its own process group: stopped with everything it started if this script
# ends early (a failed build under set -e, Ctrl-C).
trap 'kill -- -"$tools_pid" 2>/dev/null || true' EXIT

status=0
run_config() {
  local dir=$1 label=$2; shift 2
  echo "=== configure $dir ($*)"
  cmake -S "$root" -B "$root/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  echo "=== build $dir"
  cmake --build "$root/$dir" -j"$jobs" >/dev/null
  echo "=== test $dir"
  # known-gap: tests of an open issue that still fail (none today)
  if ! (cd "$root/$dir" && ctest --output-on-failure -j"$jobs" -LE known-gap ${label:+-L "$label"}); then
    status=1
  fi
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp"

run_config build ""
run_config build-asan "unit|fuzz|integration|kafka" -DFINOPS_SANITIZE_ADDRESS=ON
run_config build-tsan "unit|kafka" -DFINOPS_SANITIZE_THREAD=ON

# The platform: image, compose stack, chart, Strimzi resources, API server,
# alerts and dashboard (tests/platform/; tools cached by scripts/tools.sh).
echo "=== test platform"
tools_ok=1
wait "$tools_pid" || tools_ok=0
trap - EXIT
if [ "$tools_ok" = 0 ]; then
  echo "test.sh: building the platform tools failed:"
  tail -n 40 "$tools_log"
  status=1
elif ! "$root/tests/platform/run.sh" "$root/build"; then
  status=1
fi

if [ $status -ne 0 ]; then
  echo "test.sh: FAILED"
else
  echo "test.sh: all configurations passed"
fi
exit $status
