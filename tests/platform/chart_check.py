#!/usr/bin/env python3
"""chart_check.py RENDERED.yaml CHART_DIR OUT_DIR - what the Helm chart promises,
checked on one `helm template` output (test_10_chart.sh; test_20_apiserver.sh
reuses the extracted hook pod).

Writes into OUT_DIR what the other checks run for real: config.yaml (the
ConfigMap's, exactly), client.properties (the chart-made Secret's, if any),
hook.sh and hook-pod.yaml (the `helm test` pod's script and manifest),
producer.sh (the producer's credential wrapper, if any). Exits 1 with the
failed promise."""
import json
import math
import os
import re
import sys

import yaml

rendered, chart, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def one(kind, pred=lambda d: True):
    found = [d for d in docs if d["kind"] == kind and pred(d)]
    check(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0] if found else None


def hook(d):
    return (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"


def component(name):
    return lambda d: d["metadata"]["labels"].get("app.kubernetes.io/component") == name


values = yaml.safe_load(open(os.path.join(chart, "values.yaml")))
value_set = os.path.basename(out)  # "default" or the NAME of ci/NAME-values.yaml
ci_path = os.path.join(chart, "ci", value_set + "-values.yaml")
ci = yaml.safe_load(open(ci_path)) if os.path.exists(ci_path) else {}


def setting(section, key):
    """The value set's setting, else the chart default."""
    return (ci.get(section) or {}).get(key, values[section][key])


dep = one("Deployment", component("exporter"))
cm = one("ConfigMap", lambda d: "config.yaml" in d.get("data", {}))
svc = one("Service")
sa = one("ServiceAccount")
sm = one("ServiceMonitor")
rule = one("PrometheusRule")
dash = one("ConfigMap", lambda d: "grafana_dashboard" in d["metadata"]["labels"])
pdb = one("PodDisruptionBudget")
test_pod = one("Pod", hook)
secrets = [d for d in docs if d["kind"] == "Secret"]
producers = [d for d in docs if d["kind"] == "Deployment"
             and d["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component", "").startswith("producer")]
if failures:
    print("\n".join("FAIL: " + f for f in failures))
    sys.exit(1)

# The daemon's configuration, exactly as the pods get it.
config_text = cm["data"]["config.yaml"]
open(os.path.join(out, "config.yaml"), "w").write(config_text)
config = yaml.safe_load(config_text)
kafka = config["kafka"]
props = kafka.get("properties") or {}
secret_words = ("password", "secret", "sasl.jaas.config", "ssl.key.pem", "token")
spec = dep["spec"]["template"]["spec"]
(c,) = spec["containers"]
# A credential-like key may only hold a ${env:NAME} reference to a variable
# the container takes from a Secret (kafkaPassword), never a value.
ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")


def from_secret(container, name):
    return any(e.get("name") == name and "secretKeyRef" in (e.get("valueFrom") or {})
               for e in container.get("env") or [])


leaks = [k for k in props if any(w in k for w in secret_words)
         and not ((m := ENV_REF.match(str(props[k]))) and from_secret(c, m.group(1)))]
check(not leaks, f"credential-like keys in the ConfigMap with a value, not a ${{env:}} reference to a Secret: "
      f"{sorted(leaks)}")
for p in producers:
    (pc,) = p["spec"]["template"]["spec"]["containers"]
    refs = {m.group(1) for v in props.values() if (m := ENV_REF.match(str(v)))}
    check(all(from_secret(pc, r) for r in refs), f"producer lacks the Secret variables {sorted(refs)}")
pod_sc, sc = spec["securityContext"], c["securityContext"]
check(pod_sc.get("runAsNonRoot") is True and pod_sc.get("runAsUser") == 65532
      and pod_sc.get("runAsGroup") == 65532, f"pod securityContext {pod_sc}")
check(pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccomp")
check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation")
check(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities drop ALL")
check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "container seccomp")
check(spec.get("automountServiceAccountToken") is False, "pod automountServiceAccountToken")
check(sa.get("automountServiceAccountToken") is False, "ServiceAccount automountServiceAccountToken")
check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness on /healthz")
check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness on /readyz")
check(c["args"] == ["--config", "/etc/ai-finops/config.yaml"], f"args {c['args']}")
check(c.get("resources", {}).get("requests") and c["resources"].get("limits"), "resources")
(port,) = c["ports"]
listen_port = int(str(config["web"]["listen_address"]).rsplit(":", 1)[1])
check(port["name"] == "metrics" and port["containerPort"] == listen_port,
      f"container port {port} vs listen_address {config['web']['listen_address']}")
mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
check(mounts.get("/etc/ai-finops/config.yaml", {}).get("subPath") == "config.yaml", "config mount")
check(all(m.get("readOnly") for m in c["volumeMounts"]), "every mount read-only")
ann = dep["spec"]["template"]["metadata"]["annotations"]
check(len(ann.get("checksum/config", "")) == 64, "checksum/config annotation")

# Grace period: the final checkpoint's timeout, rounded up, plus the extra;
# always longer than that timeout.
timeout_ms = kafka.get("shutdown_timeout_ms", 10000)
extra = setting("terminationGrace", "extraSeconds")
want_grace = math.ceil(timeout_ms / 1000) + extra
check(spec["terminationGracePeriodSeconds"] == want_grace,
      f"terminationGracePeriodSeconds {spec['terminationGracePeriodSeconds']} != {want_grace}")
check(spec["terminationGracePeriodSeconds"] * 1000 > timeout_ms,
      f"grace {spec['terminationGracePeriodSeconds']} s not longer than kafka.shutdown_timeout_ms {timeout_ms}")

# Checkpointed delivery (docs/delivery.md): none of the removed options, no
# transactional id shared by every pod, a state topic, and a new-series hold
# that spans more than two scrape intervals (2 x interval + 5 s unless the
# value set says otherwise; 0 turns it off).
removed = {"commit_mode", "commit_interval_ms", "shutdown_scrape_wait_ms", "commit_metadata_max_bytes",
           "commit_replicas"}
check(not removed & set(kafka), f"removed options in the config: {sorted(removed & set(kafka))}")
check("transactional_id" not in kafka, "a transactional_id every pod would share")
check(kafka.get("state_topic") and kafka["state_topic"] not in kafka["topics"] + [kafka.get("dlq_topic")],
      f"state_topic {kafka.get('state_topic')!r}")
interval_ms = int(setting("serviceMonitor", "interval").rstrip("s")) * 1000
hold = (config.get("counters") or {}).get("new_series_hold_ms")
ci_hold = (ci.get("config") or {}).get("counters", {}).get("new_series_hold_ms")
want_hold = ci_hold if ci_hold is not None else 2 * interval_ms + 5000
check(hold == want_hold, f"counters.new_series_hold_ms {hold} != {want_hold}")
check(hold == 0 or (hold is not None and hold > 2 * interval_ms),
      f"counters.new_series_hold_ms {hold} not above twice the interval ({interval_ms} ms)")

# Brokers: the Strimzi bootstrap service unless set.
check(":" in kafka["brokers"], f"brokers {kafka['brokers']}")
if value_set == "default":
    check(kafka["brokers"] == "ai-finops-kafka-bootstrap.kafka.svc:9092", f"brokers {kafka['brokers']}")
    check(kafka["topics"] == ["ai-costs", "ai-api-costs", "gpu-utilization-events", "focus-billing"], "topics")
# Every topic given a kind is subscribed (else the daemon refuses to start),
# and the default subscription reads GPU samples and FOCUS rows.
kinds = (config.get("events") or {}).get("topic_kinds") or {}
check(set(kinds) <= set(kafka["topics"]), f"events.topic_kinds names unsubscribed topics "
      f"{sorted(set(kinds) - set(kafka['topics']))}")
if value_set == "default":
    check(kinds == {"gpu-utilization-events": "gpu_utilization", "focus-billing": "focus"},
          f"events.topic_kinds {kinds}")
    check("properties_file" not in kafka and not secrets, "no credentials by default")

# Credentials: a Secret mounted as the properties file, never the ConfigMap.
vols = {v["name"]: v for v in spec["volumes"]}
if "properties_file" in kafka:
    check(kafka["properties_file"] == "/etc/ai-finops/kafka/client.properties", "properties_file path")
    cred = vols.get("kafka-credentials", {}).get("secret")
    check(cred is not None, "credentials volume")
    check(mounts.get("/etc/ai-finops/kafka") is not None, "credentials mount")
    if cred:
        check(cred["items"][0]["path"] == "client.properties", "credentials file name")
        made = [s for s in secrets if s["metadata"]["name"] == cred["secretName"]]
        if made:
            key = cred["items"][0]["key"]
            text = made[0]["stringData"][key]
            open(os.path.join(out, "client.properties"), "w").write(text)
            pairs = [line.split("=", 1) for line in text.splitlines() if "=" in line]
            leaked = [k for k, v in pairs if any(w in k for w in secret_words) and v.strip() in config_text]
            check(not leaked, f"Secret values also in the ConfigMap: {leaked}")
else:
    check("kafka-credentials" not in vols, "credentials volume without properties_file")

# Service, ServiceMonitor, rules, dashboard, PDB.
check(svc["spec"]["ports"][0]["name"] == "metrics", "Service port named metrics")
check(svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"], "Service selects the exporter")
want_release = setting("serviceMonitor", "releaseLabel")
check(sm["metadata"]["labels"].get("release") == want_release,
      f"ServiceMonitor release label {sm['metadata']['labels'].get('release')} != {want_release}")
ep = sm["spec"]["endpoints"][0]
check(ep["port"] == "metrics" and ep["path"] == config["web"].get("telemetry_path", "/metrics"), f"endpoint {ep}")
check(ep["interval"] == setting("serviceMonitor", "interval"), f"interval {ep['interval']}")


def relabel(labels, rules):
    """Prometheus's relabeling (replace, labeldrop, labelkeep, keep, drop) of one label set;
    None when dropped. Regexes are anchored; an empty result of replace removes the label."""
    labels = dict(labels)
    for r in rules:
        action = r.get("action", "replace").lower()
        regex = re.compile("^(?:%s)$" % r.get("regex", "(.*)"))
        if action in ("labeldrop", "labelkeep"):
            keep = action == "labelkeep"
            labels = {k: v for k, v in labels.items() if bool(regex.match(k)) == keep}
            continue
        value = r.get("separator", ";").join(labels.get(n, "") for n in r.get("sourceLabels", []))
        m = regex.match(value)
        if action == "keep" and not m or action == "drop" and m:
            return None
        if action == "replace" and m:
            repl = r.get("replacement", "$1")
            new = re.sub(r"\$\{?(\d+)\}?", lambda g: m.group(int(g.group(1))) or ""
                         if int(g.group(1)) <= regex.groups else "", repl)
            if new:
                labels[r["targetLabel"]] = new
            else:
                labels.pop(r["targetLabel"], None)
        elif action not in ("replace", "keep", "drop"):
            failures.append(f"relabel action {action} not simulated here")
    return {k: v for k, v in labels.items() if v != ""}  # an empty label is no label


# metricRelabelings: a sharded series keeps its identity across pods (no
# per-pod target label), everything else keeps its target labels.
target = {"job": "finops-ai-finops-exporter", "namespace": "ai-finops", "instance": "10.0.0.7:9400",
          "pod": "finops-ai-finops-exporter-5d8f7c9b4-x2x1q", "container": "exporter", "endpoint": "metrics",
          "service": "finops-ai-finops-exporter"}
mr = ep.get("metricRelabelings") or []
sharded = dict(target, __name__="ai_finops_cost_dollars_total", team="ml", project="chat", source="openai-api",
               shard="ai-costs-3")
got = relabel(sharded, mr)
want = {k: v for k, v in sharded.items() if k not in ("instance", "pod", "container", "endpoint", "service")}
check(got == want, f"metricRelabelings turn a shard series into {got}, want {want}")
for name in ("ai_finops_kafka_applied_offset", "ai_finops_exporter_build_info", "process_cpu_seconds_total"):
    plain = dict(target, __name__=name, topic="ai-costs", partition="3")
    check(relabel(plain, mr) == plain, f"metricRelabelings change {name} (no shard): {relabel(plain, mr)}")
empty_shard = dict(target, __name__="ai_finops_events_total", outcome="accepted", shard="")
check(relabel(empty_shard, mr) == {k: v for k, v in empty_shard.items() if k != "shard"},
      "metricRelabelings act on an empty shard label")
check(all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()),
      "ServiceMonitor selects the Service")
alerts = yaml.safe_load(open(os.path.join(chart, "files", "alerts.yaml")))
check([g["name"] for g in rule["spec"]["groups"]] == [g["name"] for g in alerts["groups"]], "rule groups")
n_rules = sum(len(g["rules"]) for g in alerts["groups"])
check(sum(len(g["rules"]) for g in rule["spec"]["groups"]) == n_rules, "every rule embedded")
cap = (config.get("counters") or {}).get("max_series", 100000)
caps = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]
        if r.get("record") == "ai_finops:counters_max_series"]
check(caps in ([], [f"vector({cap})"]), f"series cap rule {caps} vs counters.max_series {cap}")
check(dash["metadata"]["labels"]["grafana_dashboard"] == "1", "dashboard label")
(dash_json,) = dash["data"].values()
check(json.loads(dash_json) == json.load(open(os.path.join(chart, "files", "dashboard.json"))),
      "dashboard JSON embedded unchanged")
check(pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"], "PDB selector")

# The helm test pod: same hardening; its script is run for real by the test.
tc = test_pod["spec"]["containers"][0]
check(tc["securityContext"].get("readOnlyRootFilesystem") is True, "test pod read-only")
check(tc["command"][:2] == ["/bin/bash", "-c"], "test pod runs a bash script")
open(os.path.join(out, "hook.sh"), "w").write(tc["command"][2])
open(os.path.join(out, "hook-pod.yaml"), "w").write(yaml.safe_dump(test_pod))

# Each producer: its own selector (no two Deployments select the same pods),
# a topic the exporter reads with the kind the producer writes.
selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items()))
             for d in docs if d["kind"] == "Deployment"]
check(len(set(selectors)) == len(selectors), f"Deployments sharing a selector: {selectors}")
for p in producers:
    pc = p["spec"]["template"]["spec"]["containers"][0]
    a = pc["args"]
    pk, pt = a[a.index("--kind") + 1], a[a.index("--topic") + 1]
    check(pt in kafka["topics"] and kinds.get(pt, "cost").split(":")[0] == pk,
          f"producer {p['metadata']['name']} writes {pk} to {pt}, which the exporter reads as "
          f"{kinds.get(pt, 'cost') if pt in kafka['topics'] else 'nothing (not subscribed)'}")
    check(pc["securityContext"].get("readOnlyRootFilesystem") is True, "producer read-only")
    check("--brokers" in pc["args"] and pc["args"][pc["args"].index("--brokers") + 1] == kafka["brokers"],
          "producer uses the exporter's brokers")
    if pc["command"][:2] == ["/bin/bash", "-c"]:
        open(os.path.join(out, "producer.sh"), "w").write(pc["command"][2])

if failures:
    print("\n".join("FAIL: " + f for f in failures))
    sys.exit(1)
print(f"chart content: {len(docs)} objects, every promise holds")
