#!/usr/bin/env python3
"""terraform_consistency.py - the platform stack installs what the shipping checks install.

terraform/platform cannot be planned here (no helm provider), so this checks
what it would install, from Terraform's own evaluation of its locals.tf
(`terraform console`, run by test_60_terraform.sh in a scratch tree whose
deploy/, helm/, values/ and charts/ are links to the source tree):

  - the Strimzi resources are every document of deploy/*.yaml, unchanged, the
    same files test_20_apiserver.sh applies; rendered through the stack's
    pass-through chart (`helm template`) they come out equal;
  - the exporter release's chart is helm/ai-finops-exporter, the chart
    test_20 installs; rendered with the stack's values it passes `helm lint
    --strict` and kubeconform -strict, and its ServiceMonitor, PrometheusRule,
    dashboard and Kafka address match the other releases (kube-prometheus-
    stack's release label and Grafana namespace, the Kafka cluster of deploy/);
  - OpenCost queries kube-prometheus-stack's Prometheus service and is scraped
    by it; Prometheus selects by the release label;
  - the pinned Strimzi and kube-prometheus-stack chart versions are the
    releases whose CRDs test_20 admits the objects against
    (tests/platform/schemas/README.md);
  - main.tf's helm_release resources take chart, version, namespace and values
    from those locals, in dependency order.

Usage: terraform_consistency.py ROOT LOCALS_JSON WORK HELM KUBECONFORM [KUBECONFORM_ARG...]
Prints one line per check; exits 1 with FAIL lines when any check fails.
"""
import glob
import json
import os
import re
import subprocess
import sys

import hcl2
import yaml

root, locals_json, work, helm, kubeconform = sys.argv[1:6]
kc_args = sys.argv[6:]
failures = []


def check(ok, what, detail=""):
    if ok:
        print(f"  ok: {what}")
    else:
        failures.append(what)
        print(f"FAIL: {what}{': ' + detail if detail else ''}")


def real(p):
    return os.path.realpath(p)


def docs_of(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def render(name, chart, namespace, values, tag):
    files = []
    for i, v in enumerate(values):
        p = os.path.join(work, f"{tag}-values-{i}.yaml")
        with open(p, "w") as f:
            f.write(v)
        files.append(p)
    args = [a for p in files for a in ("-f", p)]
    out = os.path.join(work, f"{tag}-rendered.yaml")
    lint = subprocess.run([helm, "lint", "--strict", chart, "-n", namespace] + args,
                          capture_output=True, text=True)
    check(lint.returncode == 0, f"{tag}: helm lint --strict with the stack's values",
          (lint.stdout + lint.stderr)[-600:])
    r = subprocess.run([helm, "template", name, chart, "-n", namespace] + args,
                       capture_output=True, text=True)
    check(r.returncode == 0, f"{tag}: helm template with the stack's values", r.stderr[-600:])
    with open(out, "w") as f:
        f.write(r.stdout)
    return out, [d for d in yaml.safe_load_all(r.stdout) if d]


with open(locals_json) as f:
    L = json.load(f)

# ---- what test_20 installs, read from test_20 itself
t20 = open(os.path.join(root, "tests/platform/test_20_apiserver.sh")).read()
check('chart="$root/helm/ai-finops-exporter"' in t20,
      "test_20 installs the chart helm/ai-finops-exporter")
check('for f in "$root"/deploy/*.yaml' in t20, "test_20 applies deploy/*.yaml")
t20_deploy = sorted(glob.glob(os.path.join(root, "deploy", "*.yaml")))
t20_chart = os.path.join(root, "helm", "ai-finops-exporter")

# ---- Strimzi resources
check(real(L["deploy_dir"]) == real(os.path.join(root, "deploy")),
      "the stack reads deploy/ of this tree", f"{real(L['deploy_dir'])}")
check([os.path.join(real(L["deploy_dir"]), f) for f in L["deploy_files"]] ==
      [real(p) for p in t20_deploy],
      f"the stack reads the same files test_20 applies ({', '.join(L['deploy_files'])})",
      f"stack {L['deploy_files']} vs test_20 {[os.path.basename(p) for p in t20_deploy]}")
deploy_docs = [d for p in t20_deploy for d in docs_of(p)]
tf_docs = L["strimzi_manifests"]
check(tf_docs == deploy_docs,
      f"file()/yamldecode() gives every document of deploy/, unchanged ({len(tf_docs)} objects)",
      f"{len(tf_docs)} from Terraform, {len(deploy_docs)} in deploy/; first difference: " +
      next((json.dumps([a, b])[:400] for a, b in zip(tf_docs, deploy_docs) if a != b), "count"))
kafka = [d for d in deploy_docs if d.get("kind") == "Kafka"]
check(len(kafka) == 1 and L["kafka_cluster"] == kafka[0]["metadata"]["name"],
      f"Kafka cluster name {L['kafka_cluster']!r} is the one in deploy/")

sr = L["strimzi_resources"]
check(real(sr["chart"]) == real(os.path.join(root, "terraform/platform/charts/strimzi-resources")),
      "Strimzi resources go through terraform/platform/charts/strimzi-resources")
_, rendered = render(sr["release"], sr["chart"], sr["namespace"], sr["values"], "strimzi-resources")


def key(d):
    return (d["apiVersion"], d["kind"], d["metadata"]["name"])


check(sorted(rendered, key=key) == sorted(deploy_docs, key=key),
      f"the pass-through chart renders exactly deploy/'s {len(deploy_docs)} objects",
      f"rendered {sorted(map(key, rendered))} vs {sorted(map(key, deploy_docs))}")
check(sr["namespace"] == L["strimzi"]["namespace"],
      f"Strimzi resources in the operator's namespace {sr['namespace']!r}")
strimzi_values = {}
for v in L["strimzi"]["values"]:
    strimzi_values.update(yaml.safe_load(v) or {})
check(strimzi_values.get("watchAnyNamespace") is False and not strimzi_values.get("watchNamespaces"),
      "the Strimzi operator watches its own namespace (where the resources go)")

# ---- chart versions = the CRDs test_20 admits against
schemas_readme = open(os.path.join(root, "tests/platform/schemas/README.md")).read()
check(os.path.isdir(os.path.join(root, f"tests/platform/schemas/strimzi-{L['strimzi']['version']}")),
      f"strimzi-kafka-operator {L['strimzi']['version']} = the Strimzi CRDs test_20 applies (schemas/strimzi-{L['strimzi']['version']})")
kps = L["kube_prometheus_stack"]
check(f"kube-prometheus-stack {kps['version']}" in schemas_readme,
      f"kube-prometheus-stack {kps['version']} = the release the prometheus-operator CRDs in schemas/ come from")

# ---- kube-prometheus-stack: release label, Prometheus service, Grafana sidecar
kv = {}
for v in kps["values"]:
    kv.update(yaml.safe_load(v) or {})
pspec = kv.get("prometheus", {}).get("prometheusSpec", {})
check(pspec.get("serviceMonitorSelectorNilUsesHelmValues", True) is True and "serviceMonitorSelector" not in pspec,
      "Prometheus selects ServiceMonitors by release label")
check(pspec.get("ruleSelectorNilUsesHelmValues", True) is True and "ruleSelector" not in pspec,
      "Prometheus selects PrometheusRules by release label")
# kube-prometheus-stack.fullname: the release name when it contains the chart
# name, else release-chart; cut at 26 characters.
fullname = kv.get("fullnameOverride") or (
    kps["release"] if "kube-prometheus-stack" in kps["release"] else f"{kps['release']}-kube-prometheus-stack")
fullname = fullname[:26].rstrip("-")
prom_service = f"{fullname}-prometheus"
sidecar = kv.get("grafana", {}).get("sidecar", {}).get("dashboards", {})
check(sidecar.get("enabled", True) and sidecar.get("label", "grafana_dashboard") == "grafana_dashboard"
      and str(sidecar.get("labelValue", "1")) == "1" and not sidecar.get("searchNamespace"),
      "Grafana's sidecar loads ConfigMaps labelled grafana_dashboard=1 from its own namespace")

# ---- OpenCost
oc = {}
for v in L["opencost"]["values"]:
    d = yaml.safe_load(v) or {}
    oc = {**oc, **d, "opencost": {**oc.get("opencost", {}), **d.get("opencost", {})}}
internal = oc["opencost"].get("prometheus", {}).get("internal", {})
check(internal.get("enabled") is True and internal.get("serviceName") == prom_service
      and internal.get("namespaceName") == kps["namespace"] and int(internal.get("port", 0)) == 9090,
      f"OpenCost queries {prom_service}.{kps['namespace']}:9090",
      json.dumps(internal))
ocsm = oc["opencost"].get("metrics", {}).get("serviceMonitor", {})
check(ocsm.get("enabled") is True and ocsm.get("additionalLabels", {}).get("release") == kps["release"],
      f"OpenCost's ServiceMonitor carries release={kps['release']} (node_total_hourly_cost reaches Prometheus)",
      json.dumps(ocsm))

# ---- the exporter chart
ex = L["exporter"]
check(real(ex["chart"]) == real(t20_chart), "the exporter release installs helm/ai-finops-exporter, as test_20 does",
      real(ex["chart"]))
ex_out, ex_docs = render(ex["release"], ex["chart"], ex["namespace"], ex["values"], "exporter")
kc = subprocess.run([kubeconform, "-strict", "-summary", "-output", "text"] + kc_args + [ex_out],
                    capture_output=True, text=True)
summary = (kc.stdout + kc.stderr).strip().splitlines()[-1:] or [""]
check(kc.returncode == 0 and "Invalid: 0, Errors: 0, Skipped: 0" in summary[0],
      f"kubeconform -strict of the exporter release ({summary[0]})", (kc.stdout + kc.stderr)[-800:])
by_kind = {}
for d in ex_docs:
    by_kind.setdefault(d["kind"], []).append(d)
for kind in ("ServiceMonitor", "PrometheusRule"):
    objs = by_kind.get(kind, [])
    check(len(objs) == 1 and objs[0]["metadata"].get("labels", {}).get("release") == kps["release"],
          f"the exporter's {kind} carries release={kps['release']}",
          json.dumps([o["metadata"].get("labels") for o in objs]))
dash = [d for d in by_kind.get("ConfigMap", [])
        if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
check(len(dash) == 1 and dash[0]["metadata"].get("namespace") == kps["namespace"],
      f"the dashboard ConfigMap is in Grafana's namespace {kps['namespace']!r}",
      json.dumps([d["metadata"] for d in dash])[:300])
want_brokers = f"{L['kafka_cluster']}-kafka-bootstrap.{L['strimzi']['namespace']}.svc:9092"
cfg = [yaml.safe_load(d["data"]["config.yaml"]) for d in by_kind.get("ConfigMap", [])
       if "config.yaml" in d.get("data", {})]
check(len(cfg) == 1 and cfg[0]["kafka"]["brokers"] == want_brokers,
      f"the exporter reads {want_brokers}", json.dumps([c.get("kafka", {}).get("brokers") for c in cfg]))
topics = {d["metadata"]["name"] for d in deploy_docs if d["kind"] == "KafkaTopic"}
if cfg:
    wanted = set(cfg[0]["kafka"]["topics"]) | {cfg[0]["kafka"].get("dlq_topic"), cfg[0]["kafka"].get("state_topic")}
    check(wanted <= topics, f"its topics, dead-letter and state topics are KafkaTopics of deploy/ ({', '.join(sorted(wanted))})",
          f"missing {sorted(wanted - topics)}")

# ---- main.tf uses those locals, in dependency order
with open(os.path.join(root, "terraform/platform/main.tf")) as f:
    main = hcl2.load(f)
releases = {}
for block in main.get("resource", []):
    for rtype, by_name in block.items():
        for name, body in by_name.items():
            if rtype.strip('"') == "helm_release":
                releases[name.strip('"')] = body
want = {"strimzi": "strimzi", "kafka": "strimzi_resources", "kube_prometheus_stack": "kube_prometheus_stack",
        "opencost": "opencost", "exporter": "exporter"}
check(set(releases) == set(want), f"main.tf has the releases {', '.join(sorted(want))}", str(sorted(releases)))


def expr(v):
    return v if isinstance(v, str) else json.dumps(v)


for res, loc in want.items():
    body = releases.get(res, {})
    fields = ["name", "namespace", "chart", "values"] + (
        ["repository", "version"] if "repository" in L[loc] else [])
    field_name = {"name": "release"}
    bad = [fld for fld in fields
           if expr(body.get(fld)) != f"${{local.{loc}.{field_name.get(fld, fld)}}}"]
    check(not bad, f"helm_release.{res} takes {', '.join(fields)} from local.{loc}",
          "; ".join(f"{b} = {expr(body.get(b))}" for b in bad))


def deps(res):
    return {d.strip("${}").split(".")[1] for d in releases.get(res, {}).get("depends_on", [])}


check("strimzi" in deps("kafka"), "the Strimzi resources come after the operator (its CRDs)")
check("kube_prometheus_stack" in deps("opencost"), "OpenCost comes after kube-prometheus-stack")
check({"kafka", "kube_prometheus_stack"} <= deps("exporter"),
      "the exporter comes after the Kafka resources and kube-prometheus-stack")

if failures:
    print(f"{len(failures)} consistency check(s) failed")
    sys.exit(1)
print("platform stack consistent with the shipping checks")
