#!/usr/bin/env python3
"""End-to-end test of ai-finops-loadgen (docs/loadgen.md).

(a) Determinism: the same seed and options twice give byte-identical JSONL
    and totals; another seed gives another stream; with --priced-ratio 0
    the totals agree with gen_events.py's independent oracle (classify()).
(b) Through a real broker (KafkaBroker, scripts/kafka-local.sh): loadgen
    produces --count events (usage-only, cost-carrying and malformed ones
    mixed) to a fresh topic; every delivered message is in the topic
    exactly once (end offsets = produced); then

        EXPORTER --kafka.brokers=BOOT --kafka.topics=T --kafka.group-id=G
                 --web.listen-address=127.0.0.1:PORT

    consumes it, and once ai_finops_events_total (accepted + rejected)
    equals the produced count, the second scrape after that (a scraper's
    first view of a series is 0) must show EXACTLY loadgen's totals: every
    cost, token and GPU series, and the rejected count per reason. Pricing
    mismatches must stay at zero (cost_usd always equals the table price).
(c) SIGINT while producing (100,000 events/s): loadgen stops, flushes and prints
    totals of exactly what the topic holds.

Prints one line per check and `N passed, N failed` last; exit 1 on failure.
--skip-kafka runs (a) only (no broker needed).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import expo  # noqa: E402
import gen_events  # noqa: E402
from testlib import COST, EVENTS, GPU, REJECTED, TOKENS, Results, free_port  # noqa: E402

MISMATCH = "ai_finops_pricing_mismatch_total"
# one sample per outcome, and per input partition (shard) from Kafka
EVENTS_RE = re.compile(r'^ai_finops_events_total\{outcome="(accepted|rejected)"(?:,shard="[^"]*")?\} (\S+)$',
                       re.M)
MAX_DIFFS = 10
KCAT = shutil.which("kcat") or shutil.which("kafkacat")


def http_get(url, timeout=30):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return None, b""


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
    except OSError:
        return ""


def run_loadgen(args, extra, name, timeout=900):
    """Runs loadgen with --totals into the workdir; returns (rc, totals, stderr)."""
    totals_path = os.path.join(args.workdir, name + ".totals.json")
    cmd = [args.loadgen, "--totals", totals_path] + extra
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    err = p.stderr.decode("utf-8", "replace")
    totals = None
    try:
        with open(totals_path) as f:
            totals = json.load(f)
    except (OSError, ValueError):
        pass
    print("  %s (%.1f s) %s" % (" ".join(cmd), time.monotonic() - t0, "".join(err.strip().splitlines()[-1:])))
    return p.returncode, totals, err


def series_map(series, names):
    return {tuple(s["labels"][n] for n in names): s["value"] for s in series}


def fmt_key(names, key):
    return "{" + ",".join('%s="%s"' % (n, expo.escape_label_value(v)) for n, v in zip(names, key)) + "}"


def compare(family, names, expected, scraped, parse_value):
    """expected: key -> int; scraped: key -> exposition value string."""
    diffs = []
    for key in sorted(expected):
        if key not in scraped:
            diffs.append("missing %s%s want %s" % (family, fmt_key(names, key), expected[key]))
            continue
        try:
            got = parse_value(scraped[key])
        except ValueError as e:
            diffs.append("badvalue %s%s %s" % (family, fmt_key(names, key), e))
            continue
        if got != expected[key]:
            diffs.append("value %s%s got %s (%d) want %d (diff %+d)" % (
                family, fmt_key(names, key), scraped[key], got, expected[key], got - expected[key]))
    for key in sorted(set(scraped) - set(expected)):
        diffs.append("extra %s%s = %s" % (family, fmt_key(names, key), scraped[key]))
    detail = "%d expected series, %d scraped" % (len(expected), len(scraped))
    if diffs:
        detail += ", %d differences; first %d:\n%s" % (len(diffs), min(len(diffs), MAX_DIFFS),
                                                       "\n".join(diffs[:MAX_DIFFS]))
    return not diffs, detail


# ---------------------------------------------------------------------------
# (a) determinism

def test_determinism(args, res):
    common = ["--count", str(args.det_count), "--seed", "4242", "--bad-ratio", "0.01",
              "--priced-ratio", "0.5", "--quiet"]
    paths = [os.path.join(args.workdir, "det-%d.jsonl" % i) for i in range(3)]
    rc1, t1, _ = run_loadgen(args, common + ["--output", paths[0]], "det-0")
    rc2, t2, _ = run_loadgen(args, common + ["--output", paths[1]], "det-1")
    with open(paths[0], "rb") as f:
        a = f.read()
    with open(paths[1], "rb") as f:
        b = f.read()
    res.check("same seed twice -> byte-identical JSONL", rc1 == 0 and rc2 == 0 and a == b and len(a) > 0,
              "exit %s/%s, %d and %d bytes, %d lines" % (rc1, rc2, len(a), len(b), a.count(b"\n")))
    res.check("same seed twice -> identical totals", t1 is not None and t1 == t2,
              "produced %s" % (t1 or {}).get("events"))
    res.check("totals count every line", t1 is not None and t1["events"]["produced"] == args.det_count
              == a.count(b"\n"), "%s" % (t1 or {}).get("events"))
    other = common[:]
    other[other.index("4242")] = "4243"
    rc3, _, _ = run_loadgen(args, other + ["--output", paths[2]], "det-2")
    with open(paths[2], "rb") as f:
        c = f.read()
    res.check("another seed -> another stream", rc3 == 0 and c != a, "%d bytes" % len(c))

    # gen_events.py's oracle prices nothing, so compare with every event
    # carrying cost_usd: cost, token and GPU series and reject reasons.
    path = os.path.join(args.workdir, "oracle.jsonl")
    rc, want, _ = run_loadgen(args, ["--count", str(args.det_count), "--seed", "77", "--bad-ratio", "0.02",
                                     "--priced-ratio", "0", "--quiet", "--output", path], "oracle")
    got = gen_events.verify(path)
    ok = rc == 0 and want is not None
    detail = []
    for key, names in (("cost_nanos", ("team", "project", "source")),
                       ("tokens", ("team", "project", "provider", "model", "kind")),
                       ("gpu_nanoseconds", ("team", "project", "instance_type", "gpu_type"))):
        same = ok and series_map(want[key], names) == series_map(got[key], names)
        ok = ok and same
        detail.append("%s %s (%d series)" % (key, "same" if same else "DIFFER", len(got[key])))
    same = ok and want["rejected"] == got["rejected"] and \
        want["events"]["valid"] == got["events"]["accepted"] and want["events"]["bad"] == got["events"]["rejected"]
    ok = ok and same
    detail.append("rejected %s %s" % ("same" if same else "DIFFER", got["rejected"]))
    res.check("totals agree with gen_events.py's independent oracle", ok, "; ".join(detail))
    for p in paths + [path]:
        if res.failed == 0:
            os.unlink(p)


# ---------------------------------------------------------------------------
# (b) through Kafka into the exporter

def event_counts(text):
    got = {}
    for outcome, v in EVENTS_RE.findall(text):
        got[outcome] = got.get(outcome, 0) + expo.parse_uint(v)
    return got


def end_offsets(boot, topic, partitions):
    total = 0
    for p in range(partitions):
        out = subprocess.run([KCAT, "-b", boot, "-Q", "-t", "%s:%d:-1" % (topic, p)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=60).stdout.decode()
        m = re.search(r"\[%d\] offset (-?\d+)" % p, out)
        if not m:
            raise RuntimeError("unexpected kcat -Q output: %r" % out)
        total += int(m.group(1))
    return total


def test_kafka(args, res):
    from kafka_broker import KafkaBroker
    partitions = 4
    with KafkaBroker(start_timeout=120) as kb:
        boot = kb.bootstrap
        kb.create_topics({"lg-costs": partitions, "lg-costs-dlq": 1, "lg-sigint": partitions})
        res.check("local Kafka broker", True, boot)

        rc, totals, err = run_loadgen(args, [
            "--brokers", boot, "--topic", "lg-costs", "--count", str(args.count), "--seed", "20261123",
            "--priced-ratio", str(args.priced_ratio), "--bad-ratio", str(args.bad_ratio)], "kafka")
        ev = (totals or {}).get("events", {})
        m = re.search(r"in ([0-9.]+) s: (\d+) events/s", err)
        res.check("loadgen produced %d events to Kafka" % args.count,
                  rc == 0 and ev.get("produced") == args.count and ev.get("failed") == 0,
                  "exit %s, %s%s" % (rc, ev, (", %s events/s" % m.group(2)) if m else "") +
                  ("" if rc == 0 else "\n" + err[-2000:]))
        if not totals:
            return
        if KCAT:
            n = end_offsets(boot, "lg-costs", partitions)
            res.check("topic holds each delivered message once", n == ev["produced"],
                      "end offsets sum %d, delivered %d" % (n, ev["produced"]))
        check_exporter(args, res, boot, totals)
        if KCAT:
            check_sigint(args, res, boot, partitions)


def check_scrape_exact(res, status, body, totals):
    """Checks one scrape (HTTP status, body) against the load generator's
    totals, exactly: events per outcome, rejects per reason, and every cost,
    token and GPU series, each summed over the Kafka input's shards.
    Returns the parsed exposition."""
    ex = expo.parse(body)
    res.check("scrape parses cleanly", status == 200 and not ex.errors,
              "HTTP %s, %d samples, %d problems %s" % (status, len(ex.samples), len(ex.errors), ex.errors[:3]))
    want_events = {("accepted",): totals["events"]["valid"], ("rejected",): totals["events"]["bad"]}
    summed = lambda v: v  # noqa: E731 (series_sum parsed them)
    ok, detail = compare(EVENTS, ("outcome",), want_events, ex.series_sum(EVENTS, ("outcome",), expo.parse_uint),
                         summed)
    res.check("%s exact" % EVENTS, ok, detail)
    rej = {k: v for k, v in ex.series_sum(REJECTED, ("reason",), expo.parse_uint).items()
           if not (v == 0 and k[0] not in totals["rejected"])}
    ok, detail = compare(REJECTED, ("reason",), {(k,): v for k, v in totals["rejected"].items()}, rej,
                         summed)
    res.check("%s exact, per reason" % REJECTED, ok, detail)
    for fam, key, names, parse in (
            (COST, "cost_nanos", ("team", "project", "source"), expo.parse_decimal_nanos),
            (TOKENS, "tokens", ("team", "project", "provider", "model", "kind"), expo.parse_uint),
            (GPU, "gpu_nanoseconds", ("team", "project", "instance_type", "gpu_type"), expo.parse_decimal_nanos)):
        ok, detail = compare(fam, names, series_map(totals[key], names), ex.series_sum(fam, names, parse), summed)
        res.check("%s exact, every series" % fam, ok, detail)
    return ex


def check_exporter(args, res, boot, totals):
    port = free_port()
    log_path = os.path.join(args.workdir, "exporter.log")
    # no zero-hold: this test reads totals as soon as they are checkpointed
    cmd = [args.exporter, "--kafka.brokers=" + boot, "--kafka.topics=lg-costs", "--kafka.group-id=lg-test",
           "--kafka.dlq-topic=lg-costs-dlq", "--kafka.state-topic=lg-state", "--counters.new-series-hold-ms=0",
           "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"]
    base = "http://127.0.0.1:%d" % port
    produced = totals["events"]["produced"]
    print("  " + " ".join(cmd))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        t0 = time.monotonic()
        last, last_print, n = {}, t0, -1
        while True:
            if proc.poll() is not None:
                res.check("exporter consumed %d events" % produced, False,
                          "exited %s; last counts %s\n%s" % (proc.returncode, last, tail(log_path)))
                return
            status, body = http_get(base + "/metrics")
            if status == 200:
                last = event_counts(body.decode("utf-8", "replace"))
                n = sum(last.values())
                if n >= produced:
                    break
            now = time.monotonic()
            if now - t0 > args.timeout:
                break
            if now - last_print > 10:
                print("  ... %d/%d events after %.0f s" % (n, produced, now - t0))
                sys.stdout.flush()
                last_print = now
            time.sleep(0.2)
        secs = time.monotonic() - t0
        if not res.check("exporter consumed %d events" % produced, n == produced,
                         "%s after %.1f s (%.0f events/s)" % (last, secs, n / secs if secs else 0)):
            print(tail(log_path))
            return
        # every event is checkpointed once the outcome counters show them all
        status, body = http_get(base + "/metrics", timeout=60)
        with open(os.path.join(args.workdir, "metrics.txt"), "wb") as f:
            f.write(body)
        ex = check_scrape_exact(res, status, body, totals)
        nonzero = {k: v for k, v in ex.series(MISMATCH).items() if v != "0"} if MISMATCH in ex.families else {}
        res.check("no pricing mismatches (cost_usd = table price)", not nonzero, "%s" % list(nonzero.items())[:5])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check_sigint(args, res, boot, partitions):
    totals_path = os.path.join(args.workdir, "sigint.totals.json")
    cmd = [args.loadgen, "--brokers", boot, "--topic", "lg-sigint", "--bad-ratio", "0.01", "--rate", "100000",
           "--totals", totals_path]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(3)
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        res.check("SIGINT -> flush and exit", False, "still running 60 s after SIGINT")
        return
    try:
        with open(totals_path) as f:
            totals = json.load(f)
    except (OSError, ValueError) as e:
        res.check("SIGINT -> flush and exit", False, "exit %s, no totals (%s)\n%s" % (p.returncode, e, err[-2000:]))
        return
    n = end_offsets(boot, "lg-sigint", partitions)
    ev = totals["events"]
    res.check("SIGINT -> flush, exit 0, totals = what the topic holds",
              p.returncode == 0 and ev["failed"] == 0 and ev["produced"] == n and n > 0,
              "exit %s, %s, topic holds %d" % (p.returncode, ev, n))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loadgen", required=True, help="path to ai-finops-loadgen")
    ap.add_argument("--exporter", help="path to ai-finops-exporter (needed unless --skip-kafka)")
    ap.add_argument("--workdir", help="scratch directory (default: a temp dir)")
    ap.add_argument("--count", type=int, default=300000, help="events through Kafka")
    ap.add_argument("--det-count", type=int, default=100000, help="events of the determinism checks")
    ap.add_argument("--priced-ratio", type=float, default=0.5, help="share of usage-only events")
    ap.add_argument("--bad-ratio", type=float, default=0.01)
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed for the exporter to consume")
    ap.add_argument("--skip-kafka", action="store_true", help="only the determinism checks")
    args = ap.parse_args(argv)
    if args.workdir is None:
        args.workdir = tempfile.mkdtemp(prefix="finops-loadgen-")
    os.makedirs(args.workdir, exist_ok=True)
    res = Results()
    try:
        if not res.check("loadgen binary exists", os.access(args.loadgen, os.X_OK), args.loadgen):
            raise SystemExit
        test_determinism(args, res)
        if not args.skip_kafka:
            if res.check("exporter binary exists", bool(args.exporter) and os.access(args.exporter, os.X_OK),
                         str(args.exporter)):
                test_kafka(args, res)
    except SystemExit:
        pass
    except Exception as e:  # report, never hide
        import traceback
        res.check("test harness", False, "%s\n%s" % (e, traceback.format_exc()))
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
