#!/usr/bin/env bash
# test_10_chart.sh - the Helm chart and the Strimzi resources, offline:
#  - `helm lint --strict` with the default values and each ci/*-values.yaml;
#  - `helm template` of the same value sets, every object (the `helm test`
#    pod included) validated by kubeconform -strict against Kubernetes 1.33
#    and the Strimzi / prometheus-operator CRD schemas (no schema may be
#    missing), then checked for what the chart promises (tests/platform/
#    chart_check.py: hardening, probes, grace period, config path, checksum,
#    credentials only in the Secret, release label, rules, dashboard label);
#  - the daemon itself (FINOPS_BUILD) accepts every rendered config.yaml with
#    --check-config, with the rendered Secret as its kafka.properties_file;
#  - the `helm test` pod's script run against a real local daemon: it passes,
#    and fails when /metrics is not there; the producer's credential wrapper
#    turns a properties file into the right -X flags;
#  - values.schema.json and the template guards refuse bad values;
#  - deploy/ validated the same way; a broken copy of a manifest must fail.
set -euo pipefail
root=${FINOPS_ROOT:?} build=${FINOPS_BUILD:?} work=${FINOPS_WORK:?} tools=${FINOPS_TOOLS:?}
chart="$root/helm/ai-finops-exporter"
here="$root/tests/platform"

helm=$("$tools" path helm)
kubeconform=$("$tools" path kubeconform)
mapfile -t kc_args < <("$tools" kubeconform-args)
"$helm" version --short

fail() { echo "FAIL: $*" >&2; exit 1; }

validate() { # FILE: every object must validate, none skipped
  local out
  out=$("$kubeconform" -strict -summary -output text "${kc_args[@]}" "$1" 2>&1) || {
    echo "$out" >&2
    return 1
  }
  echo "$out" | tail -n 1
  grep -q 'Invalid: 0, Errors: 0, Skipped: 0' <<<"$out" || { echo "$out" >&2; return 1; }
}

value_sets=(default)
for f in "$chart"/ci/*-values.yaml; do value_sets+=("$(basename "$f" -values.yaml)"); done
[ ${#value_sets[@]} -ge 4 ] || fail "expected 3 value sets in $chart/ci, found $((${#value_sets[@]} - 1))"

# The daemon's listener of the hook check below; the test pod's script is
# run against it.
daemon_pid=
cleanup() { [ -z "$daemon_pid" ] || kill "$daemon_pid" 2>/dev/null || true; }
trap cleanup EXIT

for set in "${value_sets[@]}"; do
  args=()
  [ "$set" = default ] || args=(-f "$chart/ci/$set-values.yaml")
  echo "== $set"
  "$helm" lint --strict "$chart" "${args[@]}" >"$work/lint-$set.log" 2>&1 || {
    cat "$work/lint-$set.log"
    fail "helm lint --strict ($set)"
  }
  tail -n 1 "$work/lint-$set.log"
  "$helm" template finops "$chart" -n ai-finops "${args[@]}" >"$work/$set.yaml" ||
    fail "helm template ($set)"
  validate "$work/$set.yaml" || fail "kubeconform ($set)"
  python3 "$here/chart_check.py" "$work/$set.yaml" "$chart" "$work/$set" ||
    fail "chart content ($set)"
  # The rendered configuration, as the pod runs it, accepted by the daemon.
  props=("--kafka.properties-file=")
  if [ -s "$work/$set/client.properties" ]; then
    props=("--kafka.properties-file=$work/$set/client.properties")
  elif grep -q properties_file "$work/$set/config.yaml"; then
    printf 'sasl.username=ai-finops-exporter\nsasl.password=example\n' >"$work/$set/sample.properties"
    props=("--kafka.properties-file=$work/$set/sample.properties")
  fi
  # KAFKA_SASL_PASSWORD: what a kafkaPassword Secret gives the pod.
  KAFKA_SASL_PASSWORD=example "$build/ai-finops-exporter" --config "$work/$set/config.yaml" "${props[@]}" --check-config ||
    fail "the daemon refuses the rendered config.yaml ($set)"
done

echo "== helm test pod against a real daemon"
"$build/ai-finops-loadgen" --output "$work/events.jsonl" --count 50 --quiet --totals /dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$build/ai-finops-exporter" --input "$work/events.jsonl" --web.listen-address "127.0.0.1:$port" \
  >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
# The pod's script, pointed at the local daemon instead of the Service.
sed -e "s/^host=.*/host=127.0.0.1/" -e "s/^port=.*/port=$port/" "$work/default/hook.sh" >"$work/hook-local.sh"
grep -q "^host=127.0.0.1$" "$work/hook-local.sh" || fail "hook script has no host= line to point"
bash "$work/hook-local.sh" || fail "the helm test script fails against a healthy daemon"
sed -e 's#GET %s HTTP#GET %s/missing HTTP#' "$work/hook-local.sh" >"$work/hook-404.sh"
if bash "$work/hook-404.sh" >"$work/hook-404.log" 2>&1; then
  fail "the helm test script passes on a 404"
fi
echo "helm test script: passes on the daemon, fails on a 404 ($(tail -n 1 "$work/hook-404.log"))"

echo "== producer credential wrapper"
wrapper="$work/sasl-producer/producer.sh"
[ -s "$wrapper" ] || fail "no producer wrapper rendered for sasl-producer"
printf '# creds\n\n  sasl.username = exporter\r\n! other\nsasl.password=p=w d \n' >"$work/producer.properties"
sed -e "s#/etc/ai-finops/kafka/client.properties#$work/producer.properties#" \
  -e 's#exec /usr/local/bin/ai-finops-loadgen#printf "%s\\n"#' "$wrapper" >"$work/producer-local.sh"
got=$(bash "$work/producer-local.sh" --topic t)
want=$(printf '%s\n' --topic t -X sasl.username=exporter -X 'sasl.password=p=w d ')
[ "$got" = "$want" ] || fail "producer wrapper gave:"$'\n'"$got"$'\n'"want:"$'\n'"$want"
echo "producer wrapper: -X flags as expected"

echo "== values refused"
refused() { # DESCRIPTION EXPECTED-TEXT HELM-ARGS...
  local what=$1 expect=$2; shift 2
  if "$helm" template finops "$chart" "$@" >"$work/refused.log" 2>&1; then
    fail "$what: accepted"
  fi
  grep -q -- "$expect" "$work/refused.log" || { cat "$work/refused.log"; fail "$what: not for '$expect'"; }
  echo "refused as expected: $what: $(grep -m1 -- "$expect" "$work/refused.log" | cut -c1-160)"
}
refused 'replicaCount: "two"' replicaCount --set replicaCount=two
refused 'a password in the ConfigMap' 'config.kafka.properties' --set config.kafka.properties.sasl\\.password=x
refused 'an unknown top-level value' 'replicas' --set replicas=2
refused 'a removed option (kafka.commit_mode)' 'commit_mode' --set config.kafka.commit_mode=scrape
refused 'a transactional id every pod would share' 'would be shared by every pod' \
  --set config.kafka.transactional_id=exporter
refused 'a new-series hold not above twice the scrape interval' 'must be longer than twice serviceMonitor.interval' \
  --set config.counters.new_series_hold_ms=30000
refused 'a grace period no longer than the final checkpoint' 'extraSeconds' --set terminationGrace.extraSeconds=0
refused 'credentials enabled without a Secret' 'kafkaCredentials.enabled needs' --set kafkaCredentials.enabled=true
refused 'a password Secret without a name' 'kafkaPassword.secretName is required' --set kafkaPassword.enabled=true
refused 'a scraper reservation without scrapers' 'reserves connections for config.web.scrapers' \
  --set config.web.scraper_connections=4
refused 'a scraper reservation not below max_connections' 'must be below config.web.max_connections' \
  --set 'config.web.scrapers={10.0.0.0/8}' --set config.web.max_connections=8 \
  --set config.web.scraper_connections=8
refused 'a scraper range that is no address' 'scrapers' --set 'config.web.scrapers={prometheus.monitoring}'

echo "== deploy/"
for f in "$root"/deploy/*.yaml; do echo "---"; cat "$f"; done >"$work/deploy.yaml"
validate "$work/deploy.yaml" || fail "kubeconform deploy/"
python3 - "$root/deploy" <<'EOF' || fail "deploy/ content"
import glob, sys, yaml
docs = [d for f in sorted(glob.glob(sys.argv[1] + "/*.yaml")) for d in yaml.safe_load_all(open(f)) if d]
kinds = {}
for d in docs:
    assert d["apiVersion"] == "kafka.strimzi.io/v1", d["apiVersion"]
    kinds.setdefault(d["kind"], []).append(d)
    assert "strimzi.io/kraft" not in (d["metadata"].get("annotations") or {}), "KRaft annotation"
    assert "strimzi.io/node-pools" not in (d["metadata"].get("annotations") or {}), "node-pools annotation"
(kafka,) = kinds["Kafka"]
assert "zookeeper" not in kafka["spec"]
cfg = kafka["spec"]["kafka"]["config"]
assert cfg["default.replication.factor"] == 3 and cfg["min.insync.replicas"] == 2, cfg
(pool,) = kinds["KafkaNodePool"]
assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
assert pool["spec"]["replicas"] == 3 and sorted(pool["spec"]["roles"]) == ["broker", "controller"]
vols = pool["spec"]["storage"]["volumes"]
assert all(v["type"] == "persistent-claim" for v in vols), vols
want = {"ai-costs": (10, 86400000), "ai-api-costs": (10, 86400000),
        "gpu-utilization-events": (10, 86400000), "focus-billing": (3, 604800000), "cost-anomalies": (3, None), "ai-costs-dlq": (None, None),
        "ai-finops-state": (10, None)}
topics = {t["metadata"]["name"]: t for t in kinds["KafkaTopic"]}
assert sorted(topics) == sorted(want), sorted(topics)
for name, (parts, retention) in want.items():
    s = topics[name]["spec"]
    assert topics[name]["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert s["replicas"] == 3 and s["config"]["min.insync.replicas"] == 2, name
    assert parts is None or s["partitions"] == parts, name
    assert retention is None or s["config"]["retention.ms"] == retention, name
# The exporter's checkpoint topic (kafka.state_topic of the chart) is
# compacted, and rolls segments often enough for compaction to keep it small.
state = topics["ai-finops-state"]["spec"]["config"]
assert state["cleanup.policy"] == "compact", state
assert 0 < state["segment.ms"] <= 3600000 and 0 < state["min.cleanable.dirty.ratio"] <= 0.5, state
assert "retention.ms" not in state, "a compacted-only topic keeps every key's latest record"
# Transactions on 3 nodes: the state log survives one node down.
assert cfg["transaction.state.log.replication.factor"] == 3 and cfg["transaction.state.log.min.isr"] == 2, cfg
assert "offset.metadata.max.bytes" not in cfg, "commit metadata is gone"
print("deploy/: Kafka (KRaft, no ZooKeeper), node pool of 3 dual-role nodes, %d topics as specified" % len(topics))
EOF

echo "== a broken manifest is caught"
sed -e '0,/partitions: 10/s//partitions: "ten"/' "$root/deploy/kafka-topics.yaml" >"$work/broken-topics.yaml"
cmp -s "$root/deploy/kafka-topics.yaml" "$work/broken-topics.yaml" && fail "could not break the copy"
if "$kubeconform" -strict "${kc_args[@]}" "$work/broken-topics.yaml" >"$work/broken.log" 2>&1; then
  fail "kubeconform accepted partitions: \"ten\""
fi
grep -q "KafkaTopic ai-costs is invalid.*/spec/partitions" "$work/broken.log" || { cat "$work/broken.log"; fail "kubeconform failed for another reason"; }
echo "kubeconform rejects it: $(sed -E 's#^.* - (KafkaTopic [^ ]+) is invalid: .* - (at .*)#\1: \2#' "$work/broken.log" | head -n 1)"
echo "chart and deploy/: all checks passed"
