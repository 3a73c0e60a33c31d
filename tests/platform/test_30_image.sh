#!/usr/bin/env bash
# test_30_image.sh - the container image, for real: hadolint on every
# Dockerfile we ship; `podman build` of the top-level Dockerfile (layers
# cached by podman between runs); the image's user is 65532:65532 and it
# carries no FINOPS_PRICES_DIR (the installed binary must find its tables
# itself); then the image runs with --read-only --user 65532 --cap-drop=ALL
# against a real local broker (scripts/kafka-local.sh, host network on
# loopback), ai-finops-loadgen (the build tree's) produces events with exact
# totals, and the container's /metrics must equal them exactly, series by
# series (tests/platform/totals.py). Prints the image size and build time.
set -euo pipefail
root=${FINOPS_ROOT:?} build=${FINOPS_BUILD:?} work=${FINOPS_WORK:?} tools=${FINOPS_TOOLS:?}
image=localhost/ai-finops-exporter:platform-test
name="finops-test30-$$"
events=${FINOPS_IMAGE_TEST_EVENTS:-30000}

eval "$("$tools" podman-env)"
"$tools" ensure base-image >/dev/null

container_started=
cleanup() {
  if [ -n "$container_started" ]; then
    podman logs "$name" >"$work/exporter.log" 2>&1 || true
    podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
  fi
  "$root/scripts/kafka-local.sh" stop "$work/kafka" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "hadolint"
hadolint=$("$tools" path hadolint)
(cd "$root" && "$hadolint" Dockerfile docker/local/kafka/Dockerfile docker/local/prometheus/Dockerfile)
echo "hadolint: clean"

old_id=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
start=$(date +%s)
if ! podman build -t "$image" -f "$root/Dockerfile" "$root" >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log"
  echo "FAIL podman build (log: $work/build.log)"
  exit 1
fi
id=$(podman image inspect --format '{{.Id}}' "$image")
# the previous build of this tag, now untagged, is ours to drop
if [ -n "$old_id" ] && [ "$old_id" != "$id" ]; then podman rmi "$old_id" >/dev/null 2>&1 || true; fi
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image $image: $((size / 1000000)) MB ($size bytes), built in $(($(date +%s) - start)) s"

fail=0
user=$(podman image inspect --format '{{.Config.User}}' "$image")
if [ "$user" = "65532:65532" ]; then echo "PASS image user is $user"; else echo "FAIL image user is '$user', want 65532:65532"; fail=1; fi
if podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$image" | grep -q '^FINOPS_PRICES_DIR='; then
  echo "FAIL the image sets FINOPS_PRICES_DIR (the installed binary must find its tables itself)"; fail=1
else
  echo "PASS no FINOPS_PRICES_DIR in the image"
fi

echo "local broker"
boot=$("$root/scripts/kafka-local.sh" start "$work/kafka" | tail -n 1)
"$root/scripts/kafka-local.sh" create-topic "$work/kafka" ai-costs:4 ai-costs-dlq:1 >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

echo "podman run --read-only --user 65532 --cap-drop=ALL --network=host $image"
container_started=1 # before the run: a run that fails after creating it leaves one (rm -f is idempotent)
podman run -d --name "$name" --read-only --user 65532 --cap-drop=ALL \
  --security-opt no-new-privileges --network=host "$image" \
  --kafka.brokers="$boot" --kafka.topics=ai-costs --kafka.dlq-topic=ai-costs-dlq \
  --kafka.group-id="platform-image-$$" --web.listen-address="127.0.0.1:$port" >/dev/null

"$build/ai-finops-loadgen" --brokers "$boot" --topic ai-costs --count "$events" \
  --priced-ratio 0.5 --bad-ratio 0.005 --seed 30 --quiet --totals "$work/totals.json"
echo "ai-finops-loadgen delivered $events events to ai-costs on $boot"

if ! python3 "$root/tests/platform/totals.py" "$work/totals.json" "http://127.0.0.1:$port/metrics" \
     --timeout 600 --save "$work/metrics.txt"; then
  fail=1
fi
if grep -q '^ai_finops_price_dollars{' "$work/metrics.txt" 2>/dev/null; then
  echo "PASS the container serves the bundled price tables"
else
  echo "FAIL no ai_finops_price_dollars in the container's /metrics"; fail=1
fi
state=$(podman inspect --format '{{.State.Status}}' "$name")
if [ "$state" = running ]; then echo "PASS container still running"; else echo "FAIL container is $state"; fail=1; fi
if [ $fail -ne 0 ]; then
  podman logs "$name" 2>&1 | tail -n 30
  exit 1
fi
echo "image check passed"
