#!/usr/bin/env python3
"""Every kind of event end to end (issue 13): ai-finops-loadgen produces cost
events, OpenAI-shaped cost events (--profile openai), GPU utilization samples
(with repeated and overlapping intervals) and FOCUS billing rows, each with
some malformed ones; the exporter must show exactly the loadgen's totals.

Tests (--only NAME[,NAME]):
  file   fast, no broker: per kind/profile (GPU native and dcgm, FOCUS with
         cost_column effective and billed, OpenAI and Anthropic shapes), the
         loadgen writes JSONL and the exporter reads it with --input and
         events.input_kind; every series of every family equals the totals,
         as do the accepted/rejected counts per reason and the GPU samples
         deduplicated.
  kafka  a real broker (scripts/kafka-local.sh): topics ai-costs, ai-api-costs
         (cost:openai), gpu-utilization-events (gpu_utilization),
         focus-billing (focus), a dead-letter topic and the state topic; four
         loadgens at once (the GPU one paced, so the daemon is SIGKILLed once
         while GPU samples still stream in, and restarted: its interval marks
         come back from the checkpoint with the counters, so a replayed or
         repeated interval is not counted again); the daemon's series summed
         over shard equal the loadgens' totals exactly; the dead-letter topic
         holds every rejected message once, its reason header counted by
         reason equal to the totals.

Usage: test_kafka_kinds.py --binary EXPORTER --loadgen LOADGEN --workdir DIR
       [--only file,kafka] [--count N]
Prints PASS/FAIL lines and `N passed, N failed` last; exit 1 on failure.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import expo  # noqa: E402
import kafka_harness as kh  # noqa: E402
from testlib import Results, free_port  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
GPU_TYPES = os.path.join(REPO, "tests", "data", "prices", "gpu-types.yaml")
PRICES = "%s,%s" % (os.path.join(REPO, "data", "prices"), GPU_TYPES)

# totals key -> (metric family, label names, scraped value -> the totals' unit)
def _micros(v):
    n = expo.parse_decimal_nanos(v)
    if n % 1000:
        raise ValueError("%s is not a whole number of micro-units" % v)
    return n // 1000


FOCUS_LABELS = ("team", "project", "provider", "service", "charge_category", "sub_account")
FAMILIES = {
    "cost_nanos": ("ai_finops_cost_dollars_total", ("team", "project", "source"), expo.parse_decimal_nanos),
    "tokens": ("ai_finops_tokens_total", ("team", "project", "provider", "model", "kind"), expo.parse_uint),
    "gpu_nanoseconds": ("ai_finops_gpu_seconds_total", ("team", "project", "instance_type", "gpu_type"),
                        expo.parse_decimal_nanos),
    "gpu_allocated_micros": ("ai_finops_gpu_allocated_seconds_total", ("team", "project", "gpu_type"), _micros),
    "gpu_idle_cost_nanos": ("ai_finops_gpu_idle_cost_dollars_total", ("team", "project", "gpu_type"),
                            expo.parse_decimal_nanos),
    "cloud_cost_nanos": ("ai_finops_cloud_cost_dollars_total", FOCUS_LABELS, expo.parse_decimal_nanos),
    "credit_nanos": ("ai_finops_credit_dollars_total", FOCUS_LABELS, expo.parse_decimal_nanos),
}
EVENTS = "ai_finops_events_total"
REJECTED = "ai_finops_events_rejected_total"
DEDUP = "ai_finops_gpu_samples_deduplicated_total"
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Thread|Undefined)Sanitizer|runtime error:")


def log(msg):
    kh.log(msg)


def run_loadgen(args, wd, name, extra):
    totals = os.path.join(wd, name + ".totals.json")
    cmd = [args.loadgen, "--quiet", "--prices", PRICES, "--totals", totals] + extra
    log("loadgen %s: %s" % (name, " ".join(cmd)))
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(wd, name + ".log"), "wb")), totals


def merged_expected(totals_list):
    """The sum of several loadgens' totals: {key: {labels tuple: value}},
    events {accepted, rejected}, rejected {reason: n}, dedup."""
    exp = {k: {} for k in FAMILIES}
    events = {"accepted": 0, "rejected": 0}
    rejected = {}
    dedup = 0
    for t in totals_list:
        events["accepted"] += t["events"]["valid"]
        events["rejected"] += t["events"]["bad"]
        for r, n in t["rejected"].items():
            rejected[r] = rejected.get(r, 0) + n
        dedup += t.get("gpu_samples", {}).get("deduplicated", 0)
        for key, (_, names, _) in FAMILIES.items():
            for s in t.get(key, []):
                k = tuple(s["labels"][n] for n in names)
                exp[key][k] = exp[key].get(k, 0) + s["value"]
    return exp, events, rejected, dedup


def compare(exp, events, rejected, body, dedup=None):
    """'' when the scrape equals the expectation exactly (a series at 0 on one
    side and absent on the other is equal), else what differs."""
    ex = expo.parse(body)
    if ex.errors:
        return "scrape does not parse: %s" % ex.errors[:3]
    out = []
    got = ex.series_sum(EVENTS, ("outcome",), expo.parse_uint)
    for o in ("accepted", "rejected"):
        if got.get((o,), 0) != events[o]:
            out.append("%s{outcome=%s}: %d, want %d" % (EVENTS, o, got.get((o,), 0), events[o]))
    got = {k[0]: v for k, v in ex.series_sum(REJECTED, ("reason",), expo.parse_uint).items() if v}
    if got != rejected:
        out.append("%s: %s, want %s" % (REJECTED, got, rejected))
    for key, (fam, names, parse) in FAMILIES.items():
        try:
            got = {k: v for k, v in ex.series_sum(fam, names, parse).items() if v}
        except ValueError as e:
            out.append("%s: %s" % (fam, e))
            continue
        want = {k: v for k, v in exp[key].items() if v}
        if got != want:
            diff = [(k, got.get(k), want.get(k)) for k in sorted(set(got) | set(want), key=str)
                    if got.get(k) != want.get(k)]
            out.append("%s: %d series differ, e.g. %s" % (fam, len(diff), diff[:3]))
    if dedup is not None:
        d = sum(ex.series_sum(DEDUP, (), expo.parse_uint).values())
        if d != dedup:
            out.append("%s: %d, want %d" % (DEDUP, d, dedup))
    return "\n".join(out)


def scrape(port):
    return kh.http_get("http://127.0.0.1:%d/metrics" % port, timeout=30)


def events_seen(body):
    ex = expo.parse(body)
    return sum(ex.series_sum(EVENTS, ("outcome",), expo.parse_uint).values())


def sanitizer_clean(res, name, log_path):
    with open(log_path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    res.check("%s: no sanitizer report in the daemon log" % name, not SANITIZER_RE.search(text),
              text[-3000:])


# ---------------------------------------------------------------------------
# file input

FILE_CASES = (
    # name, loadgen args, events.input_kind, extra exporter args
    ("gpu", ["--kind", "gpu_utilization", "--dup-ratio", "0.2", "--bad-ratio", "0.02"], "gpu_utilization", []),
    ("gpu_dcgm", ["--kind", "gpu_utilization", "--profile", "dcgm", "--dup-ratio", "0.2", "--bad-ratio", "0.02"],
     "gpu_utilization:dcgm", []),
    ("focus", ["--kind", "focus", "--bad-ratio", "0.02"], "focus", []),
    ("focus_billed", ["--kind", "focus", "--bad-ratio", "0.02", "--focus-cost-column", "billed"], "focus",
     ["--focus.cost-column=billed"]),
    ("openai", ["--kind", "cost", "--profile", "openai", "--bad-ratio", "0.02"], "cost:openai", []),
    ("anthropic", ["--kind", "cost", "--profile", "anthropic", "--bad-ratio", "0.02"], "cost:anthropic", []),
)


def test_file(args, res):
    for name, lg_args, kind, extra in FILE_CASES:
        wd = os.path.join(args.workdir, "file", name)
        os.makedirs(wd, exist_ok=True)
        jsonl = os.path.join(wd, "events.jsonl")
        p, totals_path = run_loadgen(args, wd, name, lg_args + ["--seed", "7", "--count", str(args.count),
                                                              "--output", jsonl])
        rc = p.wait(timeout=600)
        if not res.check("file %s: loadgen exit 0" % name, rc == 0, "exit %s" % rc):
            continue
        with open(totals_path) as f:
            totals = json.load(f)
        exp, events, rejected, dedup = merged_expected([totals])
        if name.startswith("gpu"):
            res.check("file %s: the stream repeats and overlaps intervals" % name, dedup > 0,
                      "%d samples deduplicated" % dedup)
        port = free_port()
        log_path = os.path.join(wd, "exporter.log")
        cmd = [args.binary, "--input", jsonl, "--events.input-kind=" + kind, "--pricing.file=" + GPU_TYPES,
               "--counters.new-series-hold-ms=0", "--web.listen-address=127.0.0.1:%d" % port,
               "--log.level=warn"] + extra
        log("exporter %s: %s" % (name, " ".join(cmd)))
        with open(log_path, "wb") as lf:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT)
        try:
            want = events["accepted"] + events["rejected"]
            deadline = time.monotonic() + args.timeout
            body, n = b"", -1
            while time.monotonic() < deadline and proc.poll() is None:
                status, body = scrape(port)
                if status == 200:
                    n = events_seen(body)
                    if n >= want:
                        break
                time.sleep(0.2)
            status, body = scrape(port)
            diff = compare(exp, events, rejected, body, dedup) if status == 200 else "no scrape (%s)" % status
            res.check("file %s: every series exact (%d events: %d accepted, %d rejected)"
                      % (name, want, events["accepted"], events["rejected"]), not diff,
                      diff or "")
            if diff:
                with open(os.path.join(wd, "metrics.txt"), "wb") as f:
                    f.write(body)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        sanitizer_clean(res, "file %s" % name, log_path)


# ---------------------------------------------------------------------------
# Kafka

TOPICS = {"ai-costs": 4, "ai-api-costs": 2, "gpu-utilization-events": 4, "focus-billing": 2}
DLQ = "ai-finops-dlq"
STATE = "ai-finops-state"


def write_config(path):
    with open(path, "w") as f:
        f.write("kafka:\n  properties:\n")
        for k, v in sorted(kh.TEST_KAFKA_PROPERTIES.items()):
            f.write("    %s: %s\n" % (k, json.dumps(v)))
        f.write("events:\n  topic_kinds:\n"
                "    ai-api-costs: \"cost:openai\"\n"
                "    gpu-utilization-events: gpu_utilization\n"
                "    focus-billing: focus\n"
                "pricing:\n  file: %s\n" % json.dumps(GPU_TYPES))


def test_kafka(args, res):
    from kafka_broker import KafkaBroker
    if not kh.KCAT:
        res.check("kafka: kcat installed (Debian package kcat)", False)
        return
    wd = os.path.join(args.workdir, "kafka")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    props = os.path.join(wd, "broker-extra.properties")
    with open(props, "w") as f:
        f.write(kh.BROKER_EXTRA_PROPS)
    with KafkaBroker(os.path.join(wd, "broker"), keep_workdir=True,
                     env={"KAFKA_LOCAL_EXTRA_PROPS": props}) as kb:
        boot = kb.bootstrap
        log("broker up on %s" % boot)
        kb.create_topics(dict(TOPICS, **{DLQ: 1}))
        cfg = os.path.join(wd, "exporter.yaml")
        write_config(cfg)
        d = kh.Daemon(args.binary, wd, "exporter", boot, ",".join(TOPICS), "g-kinds", DLQ,
                      properties={}, extra_args=["--config", cfg], state_topic=STATE,
                      txn_id="txn-kinds", hold_ms=0, checkpoint_ms=300, txn_timeout_ms=5000,
                      shutdown_timeout_ms=5000)
        with d:
            d.start()
            if not res.check("kafka: daemon ready", d.wait_ready(120), d.log_tail()):
                return
            n = args.count
            gens = [
                ("cost", ["--topic", "ai-costs", "--count", str(n), "--bad-ratio", "0.01"]),
                ("openai", ["--topic", "ai-api-costs", "--profile", "openai", "--count", str(n // 4),
                            "--bad-ratio", "0.02"]),
                # paced (~20 s), so the SIGKILL below lands while samples stream in
                ("gpu", ["--topic", "gpu-utilization-events", "--kind", "gpu_utilization", "--count", str(n),
                         "--rate", str(max(n // 20, 100)), "--dup-ratio", "0.2", "--bad-ratio", "0.01"]),
                ("focus", ["--topic", "focus-billing", "--kind", "focus", "--count", str(n // 2),
                           "--bad-ratio", "0.01"]),
            ]
            procs = []
            for name, extra in gens:
                p, t = run_loadgen(args, wd, name, ["--brokers", boot, "--seed", "11"] + extra)
                procs.append((name, p, t))
            # SIGKILL once, midway through consuming the GPU stream (a third of
            # its samples counted and a checkpoint written), then restart
            gpu_proc = procs[2][1]
            t0 = time.monotonic()
            killed_at = None
            gpu_shard = re.compile(r"^gpu-utilization-events-\d+$")
            last_log = 0.0
            while time.monotonic() - t0 < args.timeout and d.alive():
                status, body = scrape(d.port)
                if status == 200:
                    ex = expo.parse(body)
                    gpu_seen = sum(expo.parse_uint(s.value) for s in ex.samples if s.name == EVENTS
                                   and gpu_shard.match(dict(s.labels).get("shard", "")))
                    checkpoints = sum(expo.parse_uint(s.value) for s in ex.samples
                                      if s.name == "ai_finops_kafka_checkpoints_total")
                    if time.monotonic() - last_log > 5:
                        last_log = time.monotonic()
                        log("GPU samples counted: %d, checkpoints: %d" % (gpu_seen, checkpoints))
                    if gpu_seen >= n // 3 and checkpoints > 0:
                        killed_at = gpu_seen
                        d.kill()
                        log("SIGKILL after %d GPU samples counted (%d checkpoints); restarting"
                            % (gpu_seen, checkpoints))
                        break
                time.sleep(0.2)
            res.check("kafka: the daemon was SIGKILLed midway through the GPU stream",
                      killed_at is not None and killed_at < n,
                      "killed after %s of %d GPU samples were counted (the producer %s)"
                      % (killed_at, n, "still running" if gpu_proc.poll() is None else "done"))
            if d.alive():
                d.kill()
            d.start()
            res.check("kafka: daemon ready again", d.wait_ready(120), d.log_tail())
            totals = []
            for name, p, t in procs:
                rc = p.wait(timeout=900)
                res.check("kafka: loadgen %s exit 0" % name, rc == 0, "exit %s" % rc)
                with open(t) as f:
                    totals.append(json.load(f))
            exp, events, rejected, dedup = merged_expected(totals)
            res.check("kafka: the GPU stream repeats and overlaps intervals", dedup > 0,
                      "%d of its samples count nothing" % dedup)
            want_total = events["accepted"] + events["rejected"]
            # a deadline for the condition, never a pass criterion by itself
            deadline = time.monotonic() + args.timeout
            diff = "never scraped"
            while time.monotonic() < deadline:
                status, body = scrape(d.port)
                if status == 200:
                    diff = compare(exp, events, rejected, body)
                    if not diff:
                        break
                time.sleep(1.0)
            res.check("kafka: served series (summed over shard) equal the loadgens' totals exactly "
                      "(%d messages, %d rejected)" % (want_total, events["rejected"]), not diff,
                      diff + "\n" + d.log_tail(20))
            if diff:
                with open(os.path.join(wd, "metrics.txt"), "wb") as f:
                    f.write(body)
            letters = kh.consume_all(boot, DLQ, timeout=300)
            by_reason, positions = {}, set()
            for m in letters:
                r = m.headers.get("ai_finops_reason", "?")
                by_reason[r] = by_reason.get(r, 0) + 1
                positions.add((m.headers.get("ai_finops_source_topic"), m.headers.get("ai_finops_source_partition"),
                               m.headers.get("ai_finops_source_offset")))
            res.check("kafka: each rejected message is dead-lettered once", len(positions) == len(letters) ==
                      events["rejected"], "%d letters, %d distinct sources, %d rejected"
                      % (len(letters), len(positions), events["rejected"]))
            res.check("kafka: dead letters by reason equal the totals", by_reason == rejected,
                      "%s, want %s" % (by_reason, rejected))
            d.terminate()
        sanitizer_clean(res, "kafka", d.log_path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--only", default="file,kafka")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--timeout", type=float, default=600, help="deadline of each wait (s)")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    res = Results()
    only = set(args.only.split(","))
    for name, fn in (("file", test_file), ("kafka", test_kafka)):
        if name in only:
            try:
                fn(args, res)
            except Exception as e:  # a crash of the harness is a failure, not a pass
                import traceback
                traceback.print_exc()
                res.check("%s: ran to the end" % name, False, repr(e))
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
