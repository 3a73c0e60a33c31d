"""A real Prometheus (Debian's /usr/bin/prometheus) for the Kafka delivery
tests (stdlib only).

* Prometheus  - one server on 127.0.0.1 scraping the given targets every
                `interval`, with metric_relabel_configs that blank the
                instance label on every series with a `shard` label (as the
                chart's ServiceMonitor does, docs/delivery.md): a shard's
                series is one series whichever daemon serves it. Started with
                the parent-death signal and killed by stop()/close().
* raw()       - the RAW stored samples of a selector: the range query
                `selector[range]` at one instant through /api/v1/query (no
                rate, increase or extrapolation; Prometheus leaves staleness
                markers out of range vectors).
* counter_totals() - Prometheus's counter semantics applied in Python, in
                integers (values parsed exactly from the API's strings).

find_prometheus() installs Debian's package through scripts/setup.sh when it
is missing, and returns None only when that fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal, InvalidOperation

import kafka_harness as kh
from testlib import COST, GPU

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NANO = 1_000_000_000


def find_prometheus():
    """Path of the prometheus binary; runs scripts/setup.sh (Debian's
    package) when there is none. None if it still cannot be found."""
    p = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None)
    if p:
        return p
    try:
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "setup.sh")], stdin=subprocess.DEVNULL,
                       timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return shutil.which("prometheus") or ("/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK)
                                          else None)


def relabel_blank_instance():
    """metric_relabel_configs: drop `instance` from series that carry a
    shard label (an empty label value removes the label)."""
    return [{"source_labels": ["shard"], "regex": ".+", "target_label": "instance", "replacement": ""}]


class Prometheus:
    def __init__(self, binary, workdir, name, targets, interval="1s", job="ai-finops-exporter"):
        self.binary = binary
        self.workdir = os.path.join(workdir, name)
        self.name = name
        self.targets = list(targets)  # "127.0.0.1:PORT"
        self.interval = interval
        self.job = job
        self.port = kh.free_port()
        self.proc = None
        self.t_start = None
        os.makedirs(self.workdir, exist_ok=True)
        self.config_path = os.path.join(self.workdir, "prometheus.yml")
        self.log_path = os.path.join(self.workdir, "prometheus.log")

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def config(self):
        return {
            "global": {"scrape_interval": self.interval, "scrape_timeout": self.interval,
                       "evaluation_interval": "15s"},
            "scrape_configs": [{
                "job_name": self.job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": self.targets}],
                "metric_relabel_configs": relabel_blank_instance(),
            }],
        }

    def start(self):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("start Prometheus from the main thread (parent-death signal)")
        with open(self.config_path, "w") as f:
            json.dump(self.config(), f, indent=2)  # JSON is YAML
        promtool = shutil.which("promtool")
        if promtool:
            p = subprocess.run([promtool, "check", "config", self.config_path], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=120)
            if p.returncode != 0:
                raise RuntimeError("promtool check config: %s" % p.stdout.decode("utf-8", "replace"))
        cmd = [self.binary, "--config.file=" + self.config_path,
               "--storage.tsdb.path=" + os.path.join(self.workdir, "data"),
               "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"]
        prefix = [kh.SETPRIV, "--pdeathsig", "KILL"] if kh.SETPRIV else []
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(prefix + cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT)
        with kh._LIVE_LOCK:
            kh._LIVE.add(self.proc)
        self.t_start = time.time()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if kh.http_get(self.base + "/-/ready", timeout=2)[0] == 200:
                return True
            time.sleep(0.2)
        return False

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with kh._LIVE_LOCK:
            kh._LIVE.discard(self.proc)

    close = stop

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return ""

    # -- HTTP API ----------------------------------------------------------------
    def api(self, path, params=None):
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                return json.loads(e.read())
            except ValueError:
                return {"status": "error", "error": "HTTP %d" % e.code}
        except (urllib.error.URLError, OSError, ValueError) as e:
            return {"status": "error", "error": str(e)}

    def raw(self, selector, at=None):
        """[(labels dict, [(timestamp, value string)])]: every stored sample
        of the selector since this server started, from the range query
        `selector[range]` at the instant `at` (default now)."""
        at = time.time() if at is None else at
        rng = max(60, int(at - self.t_start) + 120)
        r = self.api("/api/v1/query", {"query": "%s[%ds]" % (selector, rng), "time": "%.3f" % at})
        if r.get("status") != "success":
            raise RuntimeError("%s: query %s[%ds] failed: %s" % (self.name, selector, rng, r.get("error")))
        if r["data"]["resultType"] != "matrix":
            raise RuntimeError("%s: %s[...] gave a %s" % (self.name, selector, r["data"]["resultType"]))
        return [(s["metric"], [(float(t), v) for t, v in s["values"]]) for s in r["data"]["result"]]

    def up(self):
        """{instance: last up value} of the job."""
        r = self.api("/api/v1/query", {"query": 'up{job="%s"}' % self.job})
        if r.get("status") != "success":
            return {}
        return {s["metric"].get("instance"): s["value"][1] for s in r["data"]["result"]}


def exact_value(fam, s):
    """An API value string -> int (nanos for the decimal families). Raises
    ValueError unless it is exactly a whole number of units (a float64 that
    could not hold the served decimal shows up here)."""
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise ValueError("not a number: %r" % s) from None
    if fam in (COST, GPU):
        d *= NANO
    if not d.is_finite() or d != d.to_integral_value():
        raise ValueError("%r is not a whole number of %s" % (s, "nano-units" if fam in (COST, GPU) else "units"))
    return int(d)


class PromView:
    """What one Prometheus stored of the tracked families: identities
    (family, sorted labels without job) -> [(t, int)], plus problems
    (a series with an instance label or no shard, a value not exact)."""

    def __init__(self, prom, families, job_label=True):
        self.series = {}
        self.problems = []
        for fam in families:
            for metric, values in prom.raw(fam):
                labels = {k: v for k, v in metric.items() if k not in ("__name__", "job")}
                if "instance" in labels:
                    self.problems.append("%s%s still has an instance label" % (fam, kh.expo.format_labels(
                        sorted(labels.items()))))
                if kh.SHARD not in labels:
                    self.problems.append("%s%s has no shard label" % (fam, kh.expo.format_labels(sorted(labels.items()))))
                ident = (fam, tuple(sorted(labels.items())))
                pts = []
                for t, v in values:
                    try:
                        pts.append((t, exact_value(fam, v)))
                    except ValueError as e:
                        if len(self.problems) < 50:
                            self.problems.append("%s at %.3f: %s" % (kh.identity_str(ident), t, e))
                if ident in self.series:
                    self.problems.append("%s returned twice" % kh.identity_str(ident))
                self.series[ident] = sorted(pts)

    def last(self):
        """{identity: value of its last sample}."""
        return {i: pts[-1][1] for i, pts in self.series.items() if pts}

    def last_time(self):
        return max((pts[-1][0] for pts in self.series.values() if pts), default=0.0)

    def counters(self):
        """Counter semantics over the stored samples (kafka_harness.Counters)."""
        c = kh.Counters()
        events = sorted((t, i, v) for i, pts in self.series.items() for t, v in pts)
        for t, i, v in events:
            c.add(t, "prometheus", {i: v})
        return c

    def samples(self):
        return sum(len(p) for p in self.series.values())
