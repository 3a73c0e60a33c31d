#!/usr/bin/env python3
"""End to end without containers: the chart's config, a real broker, a real
Prometheus, the alerts and every dashboard query (stdlib only).

Run by test_50_observability.sh:

  1. helm renders the chart: config.yaml from the ConfigMap
     (`helm template t CHART -s templates/configmap.yaml`), and the Service,
     the workload and the ServiceMonitor. YAML is turned into JSON by helm
     itself (a scratch chart doing `fromYaml | toJson`), so no YAML library
     is needed.
  2. A local Kafka (scripts/kafka-local.sh through kafka_broker.py) with the
     topics the config names; build/ai-finops-exporter started with exactly
     that config.yaml, only --kafka.brokers and --web.listen-address on top.
  3. Debian's /usr/bin/prometheus on 127.0.0.1, scraping the exporter with the
     scrape config prometheus-operator generates for the ServiceMonitor (job
     name, path, interval, timeout, honor_labels, the operator's relabelings
     fed with the Service's and the pod's metadata, then the ServiceMonitor's
     own relabelings and metricRelabelings), and alerts.yaml as rule_files.
  4. An OpenCost STAND-IN (observability_opencost_standin.py: fixed values for
     a few OpenCost metric names; OpenCost cannot run here) scraped too.
  5. ai-finops-loadgen produces events (--totals); once Prometheus holds a
     scrape taken a new-series hold (counters.new_series_hold_ms) after the
     one that saw every event counted, the raw samples it stored (range
     selectors through /api/v1/query) must equal the load generator's totals
     exactly. Identity: each series is job, namespace, its own labels and
     `shard` (the input partition; the ServiceMonitor's metricRelabelings
     removed the pod's labels), and each cost/token/GPU series is on the
     shard librdkafka's partitioner puts its team/project key on; outcomes
     and reject reasons are summed over shard. Both the last sample and the
     sum of the increases Prometheus observed (counter semantics: the first
     sample adds nothing, a decrease is a reset) must be exact.
  6. Every rule evaluates without error, every recording rule has data (none
     split by shard), and the active alerts are exactly the ones this run
     should cause.
  6b. ai-finops-loadgen produces GPU utilization samples and FOCUS rows to
     the topics the chart's config maps to those kinds, and Prometheus shows
     GPU idle cost, allocated GPU time, utilization, cloud cost and credits.
  7. Every expr of every panel target of dashboard.json (variables
     substituted: once with All, once with one team/project) returns data
     not split by shard, and every variable's label_values() query returns
     values, through the HTTP API.

Usage: observability_e2e.py --root SRC --build BUILD --work DIR --helm HELM
Exit 0 when every check passed, 1 otherwise.
"""

import argparse
import calendar
import decimal
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)
import kafka_harness as kh  # noqa: E402
from kafka_broker import KafkaBroker  # noqa: E402
from testlib import COST, EVENTS, GPU, REJECTED, TOKENS, Results, free_port  # noqa: E402
import observability_opencost_standin as opencost_standin  # noqa: E402

NAMESPACE = "finops"     # the namespace the chart is rendered into
RELEASE = "t"
# kube-prometheus-stack's Prometheus defaults, used where a ServiceMonitor
# endpoint leaves interval / scrapeTimeout unset.
DEFAULT_INTERVAL = "30s"
DEFAULT_TIMEOUT = "10s"
EVENTS_COUNT = 20000      # small enough that every cost series stays below $10^6
SEED = 50
WAIT = 300                # generous deadline for each condition, seconds
PARTITIONS = 4            # of each input topic

log = kh.log


def die(msg):
    raise SystemExit("observability_e2e: error: " + msg)


# ---------------------------------------------------------------------------
# helm: render, and YAML -> JSON with helm's own parser

YAML2JSON_TEMPLATE = """{{- range $path, $_ := .Files.Glob "docs/*.yaml" }}
---
{{ $.Files.Get $path | fromYaml | toJson }}
{{- end }}
"""


def run(cmd, timeout=300, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, **kw)
    if p.returncode != 0:
        die("%s exited %d:\n%s" % (" ".join(cmd), p.returncode, p.stderr.decode("utf-8", "replace")[-3000:]))
    return p.stdout.decode("utf-8")


def split_docs(text):
    """A multi-document YAML stream -> its documents' texts (comment-only ones dropped)."""
    docs, cur = [], []
    for line in text.split("\n"):
        if line.rstrip() == "---" or line.startswith("--- "):
            docs.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    docs.append("\n".join(cur))
    out = []
    for d in docs:
        body = [ln for ln in d.split("\n") if ln.strip() and not ln.lstrip().startswith("#")]
        if body:
            out.append(d + "\n")
    return out


def yaml_to_json(helm, work, texts):
    """YAML documents (strings) -> Python objects, parsed by helm (sigs.k8s.io/yaml)."""
    chart = os.path.join(work, "yaml2json")
    shutil.rmtree(chart, ignore_errors=True)
    os.makedirs(os.path.join(chart, "docs"))
    os.makedirs(os.path.join(chart, "templates"))
    with open(os.path.join(chart, "Chart.yaml"), "w") as f:
        f.write("apiVersion: v2\nname: yaml2json\nversion: 0.1.0\n")
    with open(os.path.join(chart, "templates", "out.yaml"), "w") as f:
        f.write(YAML2JSON_TEMPLATE)
    for i, t in enumerate(texts):
        with open(os.path.join(chart, "docs", "%05d.yaml" % i), "w") as f:
            f.write(t)
    out = run([helm, "template", "y", chart])
    objs = [json.loads(line) for line in out.split("\n") if line.startswith("{")]
    if len(objs) != len(texts):
        die("yaml2json: %d documents in, %d out" % (len(texts), len(objs)))
    for o in objs:
        if isinstance(o, dict) and set(o) == {"Error"}:
            die("yaml2json: " + o["Error"])
    return objs


def render(helm, chart, *args):
    return run([helm, "template", RELEASE, chart, "--namespace", NAMESPACE] + list(args))


# ---------------------------------------------------------------------------
# ServiceMonitor -> the scrape config prometheus-operator generates

RELABEL_KEYS = {"sourceLabels": "source_labels", "targetLabel": "target_label", "separator": "separator",
                "regex": "regex", "modulus": "modulus", "replacement": "replacement", "action": "action"}


def relabel(rc):
    out = {}
    for k, v in rc.items():
        if k not in RELABEL_KEYS:
            die("relabeling key %r has no translation here" % k)
        out[RELABEL_KEYS[k]] = v.lower() if k == "action" else v
    return out


def sanitize(name):
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def scrape_config(sm, service, workload, address):
    """prometheus-operator's scrape config for endpoint 0 of `sm`, with the
    Kubernetes service discovery replaced by one static target carrying the
    __meta_kubernetes_* labels that discovery would give the pod behind
    `service`. Returns (scrape config, the port name the endpoint selects)."""
    spec = sm["spec"]
    eps = spec.get("endpoints") or []
    if len(eps) != 1:
        die("the ServiceMonitor has %d endpoints; this test translates exactly one" % len(eps))
    ep = eps[0]
    for unsupported in ("tlsConfig", "bearerTokenFile", "bearerTokenSecret", "authorization", "basicAuth",
                        "oauth2", "params", "proxyUrl", "targetPort"):
        if unsupported in ep:
            die("ServiceMonitor endpoint field %r has no translation here" % unsupported)
    if ep.get("scheme", "http") != "http":
        die("ServiceMonitor endpoint scheme %r: only http is translated" % ep["scheme"])
    port = ep.get("port")
    if not port:
        die("the ServiceMonitor endpoint names no port")
    md = sm["metadata"]
    ns = md.get("namespace") or NAMESPACE
    svc_md = service["metadata"]
    svc_ports = service["spec"].get("ports") or []
    # Endpoints carry the Service's port names; the endpoint selects one of them.
    port_names = [p.get("name", "") for p in svc_ports]
    ep_port_name = port if port in port_names else (port_names[0] if port_names else "")
    pod_template = workload["spec"]["template"]
    containers = pod_template["spec"]["containers"]
    pod_name = workload["metadata"]["name"] + "-5d8f7c9b4-e2e00"

    meta = {
        "__meta_kubernetes_namespace": svc_md.get("namespace") or NAMESPACE,
        "__meta_kubernetes_service_name": svc_md["name"],
        "__meta_kubernetes_endpoint_port_name": ep_port_name,
        "__meta_kubernetes_endpoint_address_target_kind": "Pod",
        "__meta_kubernetes_endpoint_address_target_name": pod_name,
        "__meta_kubernetes_pod_name": pod_name,
        "__meta_kubernetes_pod_container_name": containers[0]["name"],
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_ready": "true",
    }
    for k, v in (svc_md.get("labels") or {}).items():
        meta["__meta_kubernetes_service_label_" + sanitize(k)] = v
        meta["__meta_kubernetes_service_labelpresent_" + sanitize(k)] = "true"
    for k, v in (pod_template.get("metadata", {}).get("labels") or {}).items():
        meta["__meta_kubernetes_pod_label_" + sanitize(k)] = v
        meta["__meta_kubernetes_pod_labelpresent_" + sanitize(k)] = "true"

    ns_sel = spec.get("namespaceSelector") or {}
    if ns_sel.get("matchNames") and meta["__meta_kubernetes_namespace"] not in ns_sel["matchNames"]:
        die("the ServiceMonitor's namespaceSelector %r does not select the release namespace" % ns_sel)

    rc = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    sel = spec.get("selector") or {}
    if sel.get("matchExpressions"):
        die("selector.matchExpressions has no translation here")
    for k, v in sorted((sel.get("matchLabels") or {}).items()):
        rc.append({"action": "keep",
                   "source_labels": ["__meta_kubernetes_service_label_" + sanitize(k),
                                     "__meta_kubernetes_service_labelpresent_" + sanitize(k)],
                   "regex": "(%s);true" % v})
    rc.append({"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": port})
    for kind, label in (("Node", "node"), ("Pod", "pod")):
        rc.append({"source_labels": ["__meta_kubernetes_endpoint_address_target_kind",
                                     "__meta_kubernetes_endpoint_address_target_name"],
                   "separator": ";", "regex": kind + ";(.*)", "replacement": "${1}", "target_label": label})
    rc += [{"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
           {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
           {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
           {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
           {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"}]
    for l in spec.get("targetLabels") or []:
        rc.append({"source_labels": ["__meta_kubernetes_service_label_" + sanitize(l)],
                   "target_label": sanitize(l), "regex": "(.+)", "replacement": "${1}"})
    for l in spec.get("podTargetLabels") or []:
        rc.append({"source_labels": ["__meta_kubernetes_pod_label_" + sanitize(l)],
                   "target_label": sanitize(l), "regex": "(.+)", "replacement": "${1}"})
    rc.append({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job",
               "replacement": "${1}"})
    if spec.get("jobLabel"):
        rc.append({"source_labels": ["__meta_kubernetes_service_label_" + sanitize(spec["jobLabel"])],
                   "target_label": "job", "regex": "(.+)", "replacement": "${1}"})
    rc.append({"target_label": "endpoint", "replacement": port})
    rc += [relabel(r) for r in ep.get("relabelings") or []]

    cfg = {
        "job_name": "serviceMonitor/%s/%s/0" % (ns, md["name"]),
        "honor_labels": bool(ep.get("honorLabels", False)),
        "honor_timestamps": bool(ep.get("honorTimestamps", True)),
        "scrape_interval": ep.get("interval") or DEFAULT_INTERVAL,
        "scrape_timeout": ep.get("scrapeTimeout") or DEFAULT_TIMEOUT,
        "metrics_path": ep.get("path") or "/metrics",
        "scheme": "http",
        "static_configs": [{"targets": [address], "labels": meta}],
        "relabel_configs": rc,
    }
    if ep.get("metricRelabelings"):
        cfg["metric_relabel_configs"] = [relabel(r) for r in ep["metricRelabelings"]]
    if ep.get("followRedirects") is not None:
        cfg["follow_redirects"] = bool(ep["followRedirects"])
    if ep.get("enableHttp2") is not None:
        cfg["enable_http2"] = bool(ep["enableHttp2"])
    return cfg


def expected_job(sm, service):
    job = service["metadata"]["name"]
    jl = sm["spec"].get("jobLabel")
    if jl and (service["metadata"].get("labels") or {}).get(jl):
        job = service["metadata"]["labels"][jl]
    return job


def seconds(d):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", d)
    if not m:
        die("cannot read the duration %r" % d)
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


# ---------------------------------------------------------------------------
# processes

class Proc:
    """A child process, killed with the test (parent-death signal)."""

    def __init__(self, name, cmd, log_path):
        self.name, self.cmd, self.log_path = name, cmd, log_path
        prefix = [kh.SETPRIV, "--pdeathsig", "KILL"] if kh.SETPRIV else []
        with open(log_path, "ab") as f:
            f.write(("==== %s\n" % " ".join(cmd)).encode())
            self.p = subprocess.Popen(prefix + cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        log("started %s (pid %d): %s" % (name, self.p.pid, " ".join(cmd)))

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode

    def tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return ""


def wait_until(what, pred, timeout=WAIT, interval=0.5, procs=()):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        for p in procs:
            if not p.alive():
                die("%s exited (%s) while waiting for %s:\n%s" % (p.name, p.p.returncode, what, p.tail()))
        if time.monotonic() > deadline:
            die("timed out after %d s waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Prometheus HTTP API

class Prom:
    def __init__(self, base):
        self.base = base

    def get(self, path, params=None):
        url = self.base + path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                return json.loads(e.read())
            except ValueError:
                return {"status": "error", "error": "HTTP %d" % e.code}
        except (urllib.error.URLError, OSError, ValueError) as e:
            return {"status": "error", "error": str(e)}

    def query(self, expr, t=None):
        params = {"query": expr}
        if t is not None:
            params["time"] = "%.3f" % t
        return self.get("/api/v1/query", params)

    def result(self, expr):
        r = self.query(expr)
        if r.get("status") != "success":
            die("query %s failed: %s" % (expr, r.get("error")))
        return r["data"]["result"]

    def last_samples(self, selector, window="15m"):
        """{labels dict as sorted tuple: (timestamp, value string)}: the last raw
        sample of each series (a range selector returns the stored samples)."""
        out = {}
        for s in self.result("%s[%s]" % (selector, window)):
            ts, v = s["values"][-1]
            out[tuple(sorted(s["metric"].items()))] = (float(ts), v)
        return out


# ---------------------------------------------------------------------------
# the dashboard

VAR_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def re2_escape(s):
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", s)


def substitute(expr, values):
    missing = []

    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in values:
            missing.append(name)
            return m.group(0)
        return values[name]
    out = VAR_RE.sub(repl, expr)
    return out, missing


def panel_targets(dash):
    """(panel title, refId, expr, datasource) of every target, rows' nested panels too."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets") or []:
                out.append((p.get("title", "?"), t.get("refId", "?"), t.get("expr"),
                            t.get("datasource") or p.get("datasource")))
            walk(p.get("panels") or [])
    walk(dash.get("panels") or [])
    return out


# Labels a spend query must not keep: the input partition.
SPLIT_LABELS = {"shard"}

LABEL_VALUES_RE = re.compile(r"\s*label_values\(\s*(?:(.*?)\s*,\s*)?(\w+)\s*\)\s*\Z")


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--helm", required=True)
    ap.add_argument("--prometheus", default="/usr/bin/prometheus")
    ap.add_argument("--chart", help="chart directory (default: ROOT/helm/ai-finops-exporter)")
    ap.add_argument("--dashboard", help="dashboard JSON (default: the chart's files/dashboard.json)")
    ap.add_argument("--rules", help="rules file (default: the chart's files/alerts.yaml)")
    args = ap.parse_args()
    chart = args.chart or os.path.join(args.root, "helm", "ai-finops-exporter")
    dashboard_path = args.dashboard or os.path.join(chart, "files", "dashboard.json")
    rules_path = os.path.abspath(args.rules or os.path.join(chart, "files", "alerts.yaml"))
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    # SIGTERM (the wrapper's trap) unwinds through the finally below.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    res = Results()
    procs = []
    standin = None
    broker = None
    try:
        # -- 1. render ------------------------------------------------------------
        cm_docs = yaml_to_json(args.helm, work, split_docs(
            render(args.helm, chart, "-s", "templates/configmap.yaml")))
        cms = [d for d in cm_docs if d.get("kind") == "ConfigMap" and "config.yaml" in (d.get("data") or {})]
        if len(cms) != 1:
            die("templates/configmap.yaml renders %d ConfigMaps with a config.yaml key, want 1" % len(cms))
        config_text = cms[0]["data"]["config.yaml"]
        config_path = os.path.join(work, "config.yaml")
        with open(config_path, "w") as f:
            f.write(config_text)
        config = yaml_to_json(args.helm, work, [config_text or "{}\n"])[0] or {}
        log("config.yaml from the chart's ConfigMap (%d bytes) -> %s" % (len(config_text), config_path))

        all_docs = yaml_to_json(args.helm, work, split_docs(render(args.helm, chart)))
        by_kind = {}
        for d in all_docs:
            by_kind.setdefault(d.get("kind"), []).append(d)
        sms = by_kind.get("ServiceMonitor") or []
        if len(sms) != 1:
            die("the chart renders %d ServiceMonitors with default values, want 1" % len(sms))
        sm = sms[0]
        workloads = (by_kind.get("Deployment") or []) + (by_kind.get("StatefulSet") or [])
        exporter_workloads = [w for w in workloads
                              if any(c.get("args") and any("--config" in a for a in c["args"])
                                     or "ai-finops-exporter" in (c.get("image") or "")
                                     for c in w["spec"]["template"]["spec"]["containers"])]
        if not exporter_workloads:
            die("no Deployment/StatefulSet running the exporter in the chart")
        workload = exporter_workloads[0]
        sm_sel = (sm["spec"].get("selector") or {}).get("matchLabels") or {}
        services = [s for s in by_kind.get("Service") or []
                    if all((s["metadata"].get("labels") or {}).get(k) == v for k, v in sm_sel.items())]
        if len(services) != 1:
            die("the ServiceMonitor's selector %r matches %d Services, want 1" % (sm_sel, len(services)))
        service = services[0]

        # What ships is what is tested: the chart's PrometheusRule holds the
        # groups of files/alerts.yaml (the series cap set to the config's
        # counters.max_series) and its dashboard ConfigMap files/dashboard.json.
        with open(os.path.join(chart, "files", "alerts.yaml")) as f:
            want_groups = yaml_to_json(args.helm, work, [f.read()])[0]["groups"]
        cap = (config.get("counters") or {}).get("max_series") or config.get("counters.max_series") or 100000
        for g in want_groups:
            for r in g["rules"]:
                if r.get("record") == "ai_finops:counters_max_series":
                    r["expr"] = "vector(%d)" % int(cap)
        prs = by_kind.get("PrometheusRule") or []
        res.check("the chart's PrometheusRule holds the groups of files/alerts.yaml",
                  len(prs) == 1 and prs[0]["spec"].get("groups") == want_groups,
                  "%d PrometheusRule(s), %d groups, series cap %d" % (len(prs), len(want_groups), int(cap)))
        with open(os.path.join(chart, "files", "dashboard.json")) as f:
            want_dash = json.load(f)
        dcms = [d for d in by_kind.get("ConfigMap") or []
                if (d["metadata"].get("labels") or {}).get("grafana_dashboard") == "1"]
        dvals = [v for d in dcms for v in (d.get("data") or {}).values()]
        res.check("the chart's grafana_dashboard ConfigMap holds files/dashboard.json",
                  len(dvals) == 1 and json.loads(dvals[0]) == want_dash,
                  "%d ConfigMap(s) labelled grafana_dashboard=1 (%s)"
                  % (len(dcms), ", ".join(d["metadata"]["name"] for d in dcms)))

        # -- 2. Kafka, topics, the exporter -----------------------------------------
        kafka_cfg = config.get("kafka") or {}
        topics = kafka_cfg.get("topics") or config.get("kafka.topics") or ["ai-costs"]
        dlq = kafka_cfg.get("dlq_topic") or config.get("kafka.dlq_topic") or "ai-costs-dlq"
        broker = KafkaBroker(workdir=os.path.join(work, "kafka"), keep_workdir=True, start_timeout=WAIT)
        boot = broker.start()
        broker.create_topics(dict([(t, PARTITIONS) for t in topics] + ([(dlq, 1)] if dlq else [])))
        log("Kafka on %s, topics %s, dead letters to %s" % (boot, ",".join(topics), dlq))

        exporter_port = free_port()
        exporter = Proc("ai-finops-exporter",
                        [os.path.join(args.build, "ai-finops-exporter"), "--config", config_path,
                         "--kafka.brokers=" + boot, "--web.listen-address=127.0.0.1:%d" % exporter_port],
                        os.path.join(work, "exporter.log"))
        procs.append(exporter)
        wait_until("the exporter's /readyz", lambda: kh.http_get(
            "http://127.0.0.1:%d/readyz" % exporter_port, timeout=2)[0] == 200, procs=[exporter])

        # -- 3./4. the OpenCost stand-in and Prometheus -----------------------------
        standin, standin_port = opencost_standin.start()
        scfg = scrape_config(sm, service, workload, "127.0.0.1:%d" % exporter_port)
        interval = scfg["scrape_interval"]
        job = expected_job(sm, service)
        prom_cfg = {
            "global": {"scrape_interval": DEFAULT_INTERVAL, "scrape_timeout": DEFAULT_TIMEOUT,
                       "evaluation_interval": "15s"},
            "rule_files": [rules_path],
            "scrape_configs": [
                scfg,
                # What OpenCost's docs configure, pointed at the stand-in.
                {"job_name": "opencost", "honor_labels": True, "scrape_interval": interval,
                 "scrape_timeout": DEFAULT_TIMEOUT, "metrics_path": "/metrics",
                 "static_configs": [{"targets": ["127.0.0.1:%d" % standin_port]}]},
            ],
        }
        prom_cfg_path = os.path.join(work, "prometheus.yml")
        with open(prom_cfg_path, "w") as f:
            json.dump(prom_cfg, f, indent=2)  # JSON is YAML
        log("ServiceMonitor %s -> scrape job %s: path %s every %s (timeout %s), honor_labels %s, %d relabelings, "
            "%d metric relabelings; expected job label %r"
            % (sm["metadata"]["name"], scfg["job_name"], scfg["metrics_path"], interval, scfg["scrape_timeout"],
               scfg["honor_labels"], len(scfg["relabel_configs"]), len(scfg.get("metric_relabel_configs", [])), job))
        run(["promtool", "check", "config", prom_cfg_path])
        prom_port = free_port()
        t_prom_start = time.time()
        prometheus = Proc("prometheus", [args.prometheus, "--config.file=" + prom_cfg_path,
                                         "--storage.tsdb.path=" + os.path.join(work, "prometheus-data"),
                                         "--web.listen-address=127.0.0.1:%d" % prom_port,
                                         "--log.level=warn"],
                          os.path.join(work, "prometheus.log"))
        procs.append(prometheus)
        prom = Prom("http://127.0.0.1:%d" % prom_port)
        wait_until("Prometheus ready", lambda: kh.http_get(prom.base + "/-/ready", timeout=2)[0] == 200,
                   procs=procs)

        def scraped_up(j):
            s = prom.last_samples('up{job="%s"}' % j, "5m")
            return s if s and all(v == "1" for _, v in s.values()) else None
        up = wait_until("Prometheus's first successful scrape of the exporter (job %s)" % job,
                        lambda: scraped_up(job), procs=procs)
        targets = [t for t in prom.get("/api/v1/targets")["data"]["activeTargets"]
                   if t["scrapePool"] == scfg["job_name"]]
        labels = targets[0]["labels"] if targets else {}
        want_labels = {"job": job, "namespace": NAMESPACE, "service": service["metadata"]["name"],
                       "endpoint": sm["spec"]["endpoints"][0]["port"]}
        res.check("the exporter's target carries the operator's labels",
                  len(targets) == 1 and all(labels.get(k) == v for k, v in want_labels.items())
                  and labels.get("pod") and labels.get("container"),
                  "%d target(s), labels %s, scrape URL %s" % (len(targets), labels,
                                                              targets[0]["scrapeUrl"] if targets else "-"))
        wait_until("the OpenCost stand-in scraped", lambda: prom.last_samples('up{job="opencost"}', "5m"),
                   procs=procs)

        # -- 5. events, and the spend Prometheus holds -------------------------------
        totals_path = os.path.join(work, "totals.json")
        t0 = time.monotonic()
        lg = subprocess.run([os.path.join(args.build, "ai-finops-loadgen"), "--brokers", boot,
                             "--topic", topics[0], "--count", str(EVENTS_COUNT), "--bad-ratio", "0.01",
                             "--seed", str(SEED), "--quiet", "--totals", totals_path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        if lg.returncode != 0:
            die("ai-finops-loadgen exited %d: %s" % (lg.returncode, lg.stderr.decode()[-2000:]))
        with open(totals_path) as f:
            totals = json.load(f)
        ev = totals["events"]
        log("ai-finops-loadgen delivered %d events (%d valid, %d bad) to %s in %.1f s"
            % (ev["produced"], ev["valid"], ev["bad"], topics[0], time.monotonic() - t0))
        if ev["failed"]:
            die("the load generator could not deliver %d events" % ev["failed"])

        sel = '{job="%s"}' % job

        def outcomes_final():
            # every delivered event read (accepted or rejected, whichever)
            s = prom.last_samples(EVENTS + sel)
            if s and sum(float(v) for _, v in s.values()) == ev["produced"]:
                return max(ts for ts, _ in s.values())
            return None
        t_final = wait_until("a scrape in Prometheus with every event read", outcomes_final, procs=procs)

        # /metrics serves checkpointed values, and a series first reads 0 for
        # counters.new_series_hold_ms: every series was first checkpointed by
        # the scrape that saw every event read, so a scrape taken a hold (and a
        # checkpoint) later shows every final value.
        hold_s = int((config.get("counters") or {}).get("new_series_hold_ms", 35000)) / 1000.0
        ckpt_s = int(kafka_cfg.get("checkpoint_interval_ms", 1000)) / 1000.0

        def later_scrape():
            s = prom.last_samples('up{job="%s"}' % job, "5m")
            ts = max(t for t, _ in s.values()) if s else 0
            return ts if ts > t_final + hold_s + ckpt_s else None
        t_check = wait_until("a scrape %.0f s (the new-series hold) after that one" % hold_s, later_scrape,
                             timeout=WAIT + hold_s, procs=procs)
        log("every event read in the scrape at %.3f; comparing the scrape at %.3f" % (t_final, t_check))

        # Identity: a sharded series is job, namespace, its own labels and its
        # shard (the input partition), nothing of the pod that served it. The
        # load generator keys events by team/project, and librdkafka's default
        # partitioner puts a key on crc32(key) % partitions, so each cost,
        # token and GPU series has exactly one expected shard.
        n_parts = PARTITIONS
        identity = {"__name__", "job", "namespace", "shard"}

        def shard_of(team, project):
            return "%s-%d" % (topics[0], kh.partition_of(("%s/%s" % (team, project)).encode(), n_parts))
        window = "%ds" % int(time.time() - t_prom_start + 60)
        for fam, unit in ((COST, "exact decimal USD"), (TOKENS, "integer"), (GPU, "exact decimal seconds"),
                          (EVENTS, "integer"), (REJECTED, "integer")):
            names, _, render_value = kh.FAMILIES[fam]
            per_shard = fam in (COST, TOKENS, GPU)
            scale = 10 ** 9 if fam in (COST, GPU) else 1

            def units(v, scale=scale):
                """A value as Prometheus returns it -> exact integer units (nano for USD and seconds)."""
                x = decimal.Decimal(v) * scale
                if x != x.to_integral_value():
                    problems.append("%s: %s is not a whole number of units" % (fam, v))
                return int(x)
            if fam == EVENTS:
                want = {("accepted",): ev["valid"], ("rejected",): ev["bad"]}
            else:
                want = kh.expected_series(totals, fam)
            if per_shard:
                want = {key + (shard_of(key[0], key[1]),): v for key, v in want.items()}
            problems = []
            samples = prom.last_samples(fam + sel)
            # every stored sample of each series, for counter semantics
            history = {tuple(sorted(x["metric"].items())): x["values"]
                       for x in prom.result("%s%s[%s]" % (fam, sel, window))}
            got, observed = {}, {}
            for k, (ts, v) in samples.items():
                d = dict(k)
                if set(d) != identity | set(names):
                    problems.append("%s: labels %s, want %s" % (fam, sorted(d), sorted(identity | set(names))))
                    continue
                if not re.fullmatch(r"%s-[0-%d]" % (re.escape(topics[0]), n_parts - 1), d["shard"]):
                    problems.append("%s%s: shard %r is no partition of %s" % (fam, k, d["shard"], topics[0]))
                key = tuple(d[n] for n in names) + ((d["shard"],) if per_shard else ())
                if ts != t_check:
                    problems.append("%s%s: last sample at %.3f, not from the final scrape at %.3f"
                                    % (fam, key, ts, t_check))
                v_int = units(v)
                # Prometheus's counter semantics: the first sample adds nothing,
                # a decrease is a reset (the new value counts from 0)
                vals = [units(x[1]) for x in history.get(k, [])]
                inc = sum(b - a if b >= a else b for a, b in zip(vals, vals[1:]))
                got[key] = got.get(key, 0) + v_int
                observed[key] = observed.get(key, 0) + inc
            for key, w in want.items():
                digits = len(str(w).lstrip("0"))
                if digits > 15:
                    problems.append("%s%s = %s has %d significant digits: a float64 cannot hold it exactly; "
                                    "lower EVENTS_COUNT" % (fam, key, render_value(w), digits))
                if w != 0 and got.get(key) != w:
                    problems.append("%s%s: Prometheus holds %s, the load generator delivered %s"
                                    % (fam, key, render_value(got[key]) if key in got else "nothing",
                                       render_value(w)))
                if w != 0 and observed.get(key) != w:
                    problems.append("%s%s: the increases Prometheus observed add up to %s, the load generator "
                                    "delivered %s" % (fam, key, render_value(observed.get(key, 0)), render_value(w)))
            for key, v in got.items():
                if key not in want and v != 0:
                    problems.append("%s%s: Prometheus holds %s, the load generator delivered nothing"
                                    % (fam, key, render_value(v)))
            total = sum(want.values())
            res.check("Prometheus holds the load generator's %s exactly, %s, and observes it by counter "
                      "semantics (%s)" % (fam, "per series and shard" if per_shard else "summed over shard",
                                          unit), not problems,
                      "%d series in %d shards, total %s" % (len(want), len({d for d in (dict(k).get("shard")
                                                                                         for k in samples)}),
                                                            render_value(total)) if not problems
                      else "%d problems:\n%s" % (len(problems), "\n".join(problems[:15])))

        # -- 6. rules and alerts -----------------------------------------------------
        def rules_evaluated():
            r = prom.get("/api/v1/rules")
            groups = r.get("data", {}).get("groups", [])
            rules = [x for g in groups for x in g["rules"]]
            if not rules:
                return None
            for g in groups:
                le = g.get("lastEvaluation", "")
                if not le or le.startswith("0001"):
                    return None
                # RFC 3339 with nanoseconds: compare as seconds since the epoch
                m = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)", le)
                t = calendar.timegm(tuple(int(x) for x in m.groups()) + (0, 0, 0))
                if t < t_check + 1:
                    return None
            return rules
        rules = wait_until("every rule group evaluated after the final scrape", rules_evaluated, procs=procs)
        bad = ["%s: %s %s" % (x.get("name"), x.get("health"), x.get("lastError", "")) for x in rules
               if x.get("health") != "ok"]
        res.check("every rule of alerts.yaml evaluates without error in Prometheus", not bad,
                  "%d rules" % len(rules) if not bad else "\n".join(bad))
        recorded = {x["name"]: prom.result(x["name"]) for x in rules if x.get("type") == "recording"}
        empty = [n for n, r in recorded.items() if not r]
        split = [n for n, r in recorded.items() if any("shard" in x["metric"] for x in r)]
        res.check("every recording rule has data, none split by shard", not empty and not split,
                  "%d recording rules" % len(recorded) if not empty and not split
                  else "no data: %s; split by shard: %s" % (", ".join(empty), ", ".join(split)))
        alerts = prom.get("/api/v1/alerts")["data"]["alerts"]
        active = sorted(set((a["labels"]["alertname"], a["state"]) for a in alerts))
        # 1% of the events are malformed and go to the dead-letter topic after
        # Prometheus's first scrape: that alert fires (it has no `for`), and no
        # other is active (the exporter is up, lag 0, 1% rejects, few series).
        want_active = [("AiFinopsDeadLettersArriving", "firing")]
        novalue = [a["labels"]["alertname"] for a in alerts
                   if any("<no value>" in v for v in a.get("annotations", {}).values())]
        res.check("the active alerts are exactly those this run causes", active == want_active and not novalue,
                  "active %s%s" % (active, "; <no value> in annotations of %s" % novalue if novalue else ""))

        # -- 6b. the other kinds: GPU samples and FOCUS rows ------------------------
        # On the topics the chart's config maps to them (after the alert check,
        # which is about the cost events), so that the dashboard's GPU idle
        # cost, utilization and cloud bill panels have data.
        topic_kinds = (config.get("events") or {}).get("topic_kinds") or {}
        iv0 = seconds(interval)
        rate_window = "%ds" % max(4 * iv0, 2 * iv0)
        for kind, extra in (("gpu_utilization", ["--count", "2000", "--dup-ratio", "0.05"]),
                            ("focus", ["--count", "1000"])):
            kt = [t for t, k in sorted(topic_kinds.items()) if k.split(":")[0] == kind and t in topics]
            if not res.check("the chart's config subscribes a topic of kind %s" % kind, bool(kt),
                             "events.topic_kinds %s, kafka.topics %s" % (topic_kinds, topics)):
                continue
            lg = subprocess.run([os.path.join(args.build, "ai-finops-loadgen"), "--brokers", boot, "--kind", kind,
                                 "--topic", kt[0], "--seed", str(SEED), "--quiet", "--totals", os.devnull] + extra,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
            if lg.returncode != 0:
                die("ai-finops-loadgen --kind %s exited %d: %s" % (kind, lg.returncode, lg.stderr.decode()[-2000:]))
            log("ai-finops-loadgen --kind %s delivered to %s" % (kind, kt[0]))

        def kinds_in_prometheus():
            for fam in ("ai_finops_gpu_idle_cost_dollars_total", "ai_finops_gpu_allocated_seconds_total",
                        "ai_finops_cloud_cost_dollars_total", "ai_finops_credit_dollars_total"):
                r = prom.result("sum(rate(%s%s[%s])) > 0" % (fam, sel, rate_window))
                if not r:
                    return None
            return prom.result("count(ai_finops_gpu_utilization_ratio%s)" % sel) or None
        wait_until("GPU idle cost, allocated GPU time, utilization, cloud cost and credits rising in Prometheus",
                   kinds_in_prometheus, timeout=WAIT + hold_s, procs=procs)

        # -- 7. the dashboard ---------------------------------------------------------
        with open(dashboard_path) as f:
            dash = json.load(f)
        variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
        ds = variables.get("datasource", {})
        targets = panel_targets(dash)
        ds_bad = ["%s/%s" % (t, r) for t, r, _, d in targets
                  if not isinstance(d, dict) or d.get("uid") not in ("${datasource}", "$datasource")]
        res.check("the dashboard: fixed uid, datasource variable of type prometheus, every target uses it",
                  bool(dash.get("uid")) and ds.get("type") == "datasource" and ds.get("query") == "prometheus"
                  and not ds_bad and targets,
                  "uid %r, schemaVersion %s, %d panel targets" % (dash.get("uid"), dash.get("schemaVersion"),
                                                                  len(targets))
                  + ("; not on ${datasource}: %s" % ds_bad if ds_bad else ""))

        iv = seconds(interval)
        base_values = {
            "__rate_interval": "%ds" % max(4 * iv, iv + iv),  # Grafana: max(4 x scrape, interval + scrape)
            "__interval": "%ds" % iv, "__interval_ms": str(int(iv * 1000)),
            "__range": "1h", "__range_s": "3600", "__range_ms": "3600000",
            "job": re2_escape(job),
        }
        for name, v in variables.items():
            if v.get("type") in ("textbox", "constant", "custom") and name not in base_values:
                cur = v.get("current", {}).get("value", v.get("query", ""))
                base_values[name] = cur if isinstance(cur, str) else "|".join(cur)
        # one selected team/project: the biggest spender that has tokens and GPU-seconds
        has = {}
        for fam in (TOKENS, GPU):
            for s in totals[{"ai_finops_tokens_total": "tokens", "ai_finops_gpu_seconds_total": "gpu_nanoseconds"}[fam]]:
                has.setdefault((s["labels"]["team"], s["labels"]["project"]), set()).add(fam)
        spend = {}
        for s in totals["cost_nanos"]:
            k = (s["labels"]["team"], s["labels"]["project"])
            spend[k] = spend.get(k, 0) + s["value"]
        team, project = max((k for k in spend if has.get(k) == {TOKENS, GPU}), key=lambda k: spend[k])
        selections = [("All", {"team": ".*", "project": ".*"}),
                      ("%s/%s" % (team, project), {"team": re2_escape(team), "project": re2_escape(project)})]

        var_bad = []
        for name, v in variables.items():
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = LABEL_VALUES_RE.match(q or "")
            if not m:
                var_bad.append("%s: %r is not label_values(...)" % (name, q))
                continue
            for sel_name, sel_values in selections:
                match, missing = substitute(m.group(1) or "", dict(base_values, **sel_values))
                params = {"match[]": match} if match else None
                r = prom.get("/api/v1/label/%s/values" % m.group(2), params)
                if missing:
                    var_bad.append("%s (%s): %s: unknown variable(s) %s" % (name, sel_name, q, missing))
                elif r.get("status") != "success":
                    var_bad.append("%s (%s): %s: error %s" % (name, sel_name, q, r.get("error")))
                elif not r.get("data"):
                    var_bad.append("%s (%s): %s: no values" % (name, sel_name, q))
        res.check("every dashboard variable's label_values() query returns values", not var_bad,
                  "%d query variables" % sum(1 for v in variables.values() if v.get("type") == "query")
                  if not var_bad else "\n".join(var_bad))

        for sel_name, sel_values in selections:
            values = dict(base_values, **sel_values)
            failures, n = [], 0
            for title, ref, expr, _ in targets:
                if not expr:
                    failures.append("%s/%s: no expr" % (title, ref))
                    continue
                q, missing = substitute(expr, values)
                n += 1
                if missing:
                    failures.append("%s/%s: unknown variable(s) %s" % (title, ref, missing))
                    continue
                r = prom.query(q)
                if r.get("status") != "success":
                    failures.append("%s/%s: error %s\n      %s" % (title, ref, r.get("error"), q))
                elif not r["data"]["result"]:
                    failures.append("%s/%s: no data\n      %s" % (title, ref, q))
                elif any(set(x["metric"]) & SPLIT_LABELS for x in r["data"]["result"]):
                    # a partition is no unit of spend: queries sum over shard
                    failures.append("%s/%s: its result is split by %s\n      %s"
                                    % (title, ref, sorted(set().union(*(set(x["metric"]) & SPLIT_LABELS
                                                                         for x in r["data"]["result"]))), q))
            res.check("every dashboard query returns data (team/project: %s)" % sel_name, not failures,
                      "%d queries" % n if not failures else "%d of %d failed:\n%s"
                      % (len(failures), n, "\n".join(failures)))
    finally:
        for p in reversed(procs):
            rc = p.stop()
            log("stopped %s (exit %s)" % (p.name, rc))
        if standin is not None:
            standin.shutdown()
        if broker is not None:
            broker.stop()
    print("%d passed, %d failed" % (res.passed, res.failed), flush=True)
    return 0 if res.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
