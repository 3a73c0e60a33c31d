#!/usr/bin/env python3
"""The event kinds through the daemon's --input (docs/gpu.md): fast, no broker.

Runs the daemon three times (events.input_kind: gpu_utilization, then
gpu_utilization:dcgm through the built-in DCGM profile, then focus), each on a small JSONL of golden lines (good ones,
repeats, overlaps, an older sample, and one bad line per new reject reason),
waits until every line is counted, and compares exact values of /metrics:
allocated GPU-seconds, idle dollars (docs/gpu.md's worked example on the
bundled p5.48xlarge price, and a gpu_type price from pricing.file), the gauges,
the deduplicated counter, FOCUS cost and credits, the freshness gauge and the
outcome counters by reason. Prints one line per check; exit status 1 on any
failure. The daemon is always killed at the end.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import free_port  # noqa: E402

T = "2025-12-04T00:01:00.123Z"  # the worked example's end: 1764806460.123


def gpu(**kw):
    base = {"timestamp": T, "interval_seconds": 60.123, "node": "gpu-node-007", "gpu": "3",
            "instance_type": "p5.48xlarge", "gpu_type": "nvidia-h100-80gb", "team": "ml",
            "project": "train", "utilization": 0.8731, "memory_used_bytes": 64424509440}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


GPU_LINES = [
    (gpu(), None),                                            # 60.123 s, 14581030 nanos
    (gpu(timestamp="2025-12-04T00:01:30.123Z", interval_seconds=60), None),  # 30 s, 7275600
    (gpu(), None),                                            # a repeat: counts 0
    (gpu(timestamp=1764806450, interval_seconds=20, utilization=0.01), None),  # older: 0
    # no team: namespace research -> science/llm; gpu_type priced $2.50/GPU-h in
    # pricing.file; 1 h at 60% -> $1 idle exactly
    (gpu(node="rack-1", gpu="0", instance_type=None, gpu_type="onprem-h100", team=None,
         project=None, namespace="research", utilization=None, utilization_percent=60,
         interval_seconds=3600, timestamp=1764810000, memory_used_bytes=None), None),
    (gpu(node="rack-1", gpu="1", instance_type=None, gpu_type="mystery"), "unpriced"),
    (gpu(node=None), "missing_field"),
    (gpu(gpu="4", utilization_percent=50), "invalid_utilization"),
    (gpu(gpu="5", interval_seconds=0), "invalid_interval"),
]

GPU_WANT = [
    'ai_finops_gpu_allocated_seconds_total{team="ml",project="train",gpu_type="nvidia-h100-80gb"}'
    ' 90.123',
    'ai_finops_gpu_idle_cost_dollars_total{team="ml",project="train",gpu_type="nvidia-h100-80gb"}'
    ' 0.02185663',
    'ai_finops_gpu_allocated_seconds_total{team="science",project="llm",gpu_type="onprem-h100"}'
    ' 3600',
    'ai_finops_gpu_idle_cost_dollars_total{team="science",project="llm",gpu_type="onprem-h100"} 1',
    'ai_finops_gpu_utilization_ratio{team="ml",project="train",node="gpu-node-007",gpu="3"} 0.8731',
    'ai_finops_gpu_memory_used_bytes{team="ml",project="train",node="gpu-node-007",gpu="3"}'
    ' 64424509440',
    'ai_finops_gpu_utilization_ratio{team="science",project="llm",node="rack-1",gpu="0"} 0.6',
    'ai_finops_gpu_samples_deduplicated_total 2',
    'ai_finops_last_event_timestamp_seconds 1764810000.000',
    'ai_finops_events_total{outcome="accepted"} 5',
    'ai_finops_events_total{outcome="rejected"} 4',
    'ai_finops_events_rejected_total{reason="unpriced"} 1',
    'ai_finops_events_rejected_total{reason="missing_field"} 1',
    'ai_finops_events_rejected_total{reason="invalid_utilization"} 1',
    'ai_finops_events_rejected_total{reason="invalid_interval"} 1',
]
# rack-1/0 reported no memory: no memory gauge; the marks are never rendered
GPU_ABSENT = ['ai_finops_gpu_memory_used_bytes{team="science",project="llm",node="rack-1",gpu="0"}',
              'ai_finops_gpu_interval_mark_total']


# The built-in dcgm profile (docs/events.md): a DCGM-exporter-like sample,
# team/project from gpu.namespace_teams, priced by its modelName's gpu_type.
DCGM_LINES = [
    ({"timestamp": 1764810000, "interval_seconds": 3600, "Hostname": "dgx-01", "gpu": "0",
      "UUID": "GPU-5f1c", "modelName": "NVIDIA H100 80GB HBM3", "DCGM_FI_DEV_GPU_UTIL": 60,
      "DCGM_FI_DEV_FB_USED": 1024, "namespace": "research", "pod": "trainer-0"}, None),
    ({"timestamp": 1764810000, "interval_seconds": 3600, "Hostname": "dgx-01", "gpu": "0",
      "modelName": "NVIDIA H100 80GB HBM3", "DCGM_FI_DEV_GPU_UTIL": 60, "namespace": "research"},
     None),  # the same interval again: counted once
]
DCGM_WANT = [
    'ai_finops_gpu_allocated_seconds_total{team="science",project="llm",'
    'gpu_type="NVIDIA H100 80GB HBM3"} 3600',
    'ai_finops_gpu_idle_cost_dollars_total{team="science",project="llm",'
    'gpu_type="NVIDIA H100 80GB HBM3"} 1',
    'ai_finops_gpu_utilization_ratio{team="science",project="llm",node="dgx-01",gpu="0"} 0.6',
    'ai_finops_gpu_memory_used_bytes{team="science",project="llm",node="dgx-01",gpu="0"}'
    ' 1073741824',
    'ai_finops_gpu_samples_deduplicated_total 1',
    'ai_finops_events_total{outcome="accepted"} 2',
]


def focus(**kw):
    base = {"BilledCost": "12.34", "EffectiveCost": "10.1", "BillingCurrency": "USD",
            "ChargeCategory": "Usage", "ServiceName": "Amazon EC2", "ProviderName": "AWS",
            "SubAccountName": "prod-ml", "ResourceId": "i-0abc",
            "ChargePeriodStart": "2026-11-23T00:00:00Z", "Tags": {"team": "ml", "project": "train"}}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


FOCUS_LINES = [
    (focus(), None),
    (focus(EffectiveCost=0.000000001), None),
    (focus(EffectiveCost="-2.5", ChargeCategory="Credit"), None),
    (focus(EffectiveCost=-0.25, ChargeCategory="Credit"), None),
    (focus(EffectiveCost="1.5", ChargeCategory="Tax", Tags={}), None),
    (focus(BillingCurrency="EUR"), "invalid_currency"),
    (focus(ChargeCategory=None), "missing_field"),
]
L = 'provider="AWS",service="Amazon EC2",charge_category="%s",sub_account="prod-ml"'
FOCUS_WANT = [
    'ai_finops_cloud_cost_dollars_total{team="ml",project="train",%s} 10.100000001' % (L % "Usage"),
    'ai_finops_credit_dollars_total{team="ml",project="train",%s} 2.75' % (L % "Credit"),
    'ai_finops_cloud_cost_dollars_total{team="unattributed",project="unattributed",%s} 1.5'
    % (L % "Tax"),
    'ai_finops_last_event_timestamp_seconds 1795392000.000',
    'ai_finops_events_total{outcome="accepted"} 5',
    'ai_finops_events_rejected_total{reason="invalid_currency"} 1',
    'ai_finops_events_rejected_total{reason="missing_field"} 1',
]
FOCUS_ABSENT = ['ai_finops_credit_dollars_total{team="ml",project="train",%s}' % (L % "Usage")]


def scrape(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            return r.read().decode()
    except OSError:
        return ""


def run(binary, workdir, kind, lines, want, absent, failures):
    name = kind.replace(":", "-")
    data = os.path.join(workdir, name + ".jsonl")
    with open(data, "w") as f:
        for obj, _ in lines:
            f.write(json.dumps(obj) + "\n")
    prices = os.path.join(workdir, "prices.yaml")
    with open(prices, "w") as f:
        f.write('schema_version: 1\ngpu_types:\n  - {gpu_type: onprem-h100, usd_per_gpu_hour: "2.50"}\n'
                '  - {gpu_type: "NVIDIA H100 80GB HBM3", usd_per_gpu_hour: "2.50"}\n')
    cfg = os.path.join(workdir, name + ".yaml")
    with open(cfg, "w") as f:
        f.write("events:\n  input_kind: %s\n" % kind)
        f.write("gpu:\n  namespace_teams: {research: science/llm}\n")
        f.write("counters:\n  new_series_hold_ms: 0\n")
        f.write("pricing:\n  file: %s\n" % prices)
    port = free_port()
    log = open(os.path.join(workdir, name + ".log"), "w")
    proc = subprocess.Popen([binary, "--config", cfg, "--input", data,
                             "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT)
    text = ""
    try:
        # generous: a sanitized daemon on a loaded machine is slow to start;
        # the wait ends as soon as every line is counted
        start = time.monotonic()
        deadline = start + 600
        total = 'ai_finops_events_total{outcome="%s"} '
        while time.monotonic() < deadline:
            text = scrape(port)
            n = 0
            for line in text.splitlines():
                for o in ("accepted", "rejected"):
                    if line.startswith(total % o):
                        n += int(line.split()[-1])
            if n == len(lines):
                # once more: a scrape renders the counter families before the
                # outcome counters, so the one that first shows every line
                # counted may have walked the tables a moment earlier
                text = scrape(port)
                break
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        print("%s: %d of %d lines counted after %.1f s (daemon %s)" % (
            kind, n, len(lines), time.monotonic() - start,
            "running" if proc.poll() is None else "exited %s" % proc.returncode))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        log.close()
    lines_got = set(text.splitlines())
    before = len(failures)
    for w in want:
        ok = w in lines_got
        print("%s %s: %s" % ("ok  " if ok else "FAIL", kind, w))
        if not ok:
            failures.append(w)
    for a in absent:
        ok = a not in text
        print("%s %s: absent %s" % ("ok  " if ok else "FAIL", kind, a))
        if not ok:
            failures.append("absent " + a)
    if len(failures) > before:
        sys.stdout.write("--- scrape (%s) ---\n%s\n" % (kind, "\n".join(
            l for l in text.splitlines() if "gpu" in l or "cost" in l or "credit" in l
            or "events" in l)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="gpu-input-")
    os.makedirs(workdir, exist_ok=True)
    failures = []
    run(args.binary, workdir, "gpu_utilization", GPU_LINES, GPU_WANT, GPU_ABSENT, failures)
    run(args.binary, workdir, "gpu_utilization:dcgm", DCGM_LINES, DCGM_WANT, [], failures)
    run(args.binary, workdir, "focus", FOCUS_LINES, FOCUS_WANT, FOCUS_ABSENT, failures)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
