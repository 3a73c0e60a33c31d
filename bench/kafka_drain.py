#!/usr/bin/env python3
"""Kafka drain benchmark: the daemon against raw librdkafka and a Python exporter.

Preloads a topic of a local single-node Kafka broker (scripts/kafka-local.sh)
with N realistic events, 0.3% defective: by default with the project's load
generator (build/ai-finops-loadgen, keyed by team/project, every good event
carrying cost_usd, exact totals from --totals; 5M events in well under a
minute), or with --preload python through tests/integration/gen_events.py and
kcat (keyed by team; several minutes for 5M). Then drains it, one after the
other, each with a fresh consumer group:

  (a) ai-finops-exporter (--kafka.threads=T, dead-lettering on): events/s
      until /metrics counts every event, and CPU-seconds per million events
      from /proc/PID/stat; its counters are also checked against the
      generator's exact totals;
  (b) bench/raw_drain.c: T plain librdkafka consumers that parse nothing
      (the floor: one handle per thread), compiled here with gcc -O2
      -lrdkafka and linked with the same allocator as --binary (jemalloc
      when it links jemalloc: under glibc's malloc the raw drain is slower,
      and the floor would flatter the daemon);
  (b') the same in the daemon's shape: one handle, its partitions routed to
      T threads, the daemon's queue defaults. (a) against (b') is what
      decoding, pricing and adding cost; (b') against (b) what one shared
      handle (one broker thread per broker) costs;
  (c) bench/python_baseline.py: confluent-kafka + prometheus_client, json.loads
      and a labeled Counter per event (Debian python3-confluent-kafka and
      python3-prometheus-client, run with /usr/bin/python3).

Prints events/s and CPU per million events for each, the CPU split between
librdkafka's own threads and the application's (bench/threadcpu.py), and the
ratios daemon/raw, daemon/raw-shared, raw-shared/raw and daemon/python. Events/s
are measured from the first consumed event to the last (the daemon's
between scrapes, see (a)); "incl. start" adds process start and the group
join.

With --runs K, (a), (b) and (b') are repeated K times on the same topic (and
--baseline-binary OTHER, when given, is drained in each round right after
--binary, for a before/after comparison in one session); medians are
reported. The Python baseline runs once (--python-runs).

Usage: bench/kafka_drain.py [--binary build/ai-finops-exporter] [--count 5000000]
       [--partitions 8] [--threads 2] [--runs 1] [--baseline-binary OTHER]
       [--preload loadgen|python] [--loadgen build/ai-finops-loadgen]
       [--workdir DIR] [--python /usr/bin/python3]
"""

import argparse
import json
import os
import statistics
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import expo  # noqa: E402
import gen_events  # noqa: E402
import kafka_harness as kh  # noqa: E402
import threadcpu  # noqa: E402
from kafka_broker import KafkaBroker  # noqa: E402

SCRAPE_INTERVAL = 0.1  # the daemon's rate is measured to +-0.1 s
# one sample per outcome and input partition (the shard label)
EVENTS_RE = re.compile(rb'^ai_finops_events_total\{outcome="(?:accepted|rejected)"(?:,shard="[^"]*")?\} (\d+)$',
                       re.M)


class KeyedPipe:
    """File-like sink for Generator.write(): turns event lines into
    key<TAB>value lines on a kcat producer's stdin (blank lines dropped)."""

    def __init__(self, out):
        self.out = out
        self.rest = b""
        self.count = 0
        self.bytes = 0

    def write(self, data):
        data = self.rest + data
        lines = data.split(b"\n")
        self.rest = lines.pop()
        buf = []
        for ln in lines:
            if ln.strip(b" \t\r"):
                buf.append(kh.event_key(ln) + b"\t" + ln + b"\n")
                self.count += 1
                self.bytes += len(ln)
        self.out.write(b"".join(buf))

    def close(self):
        if self.rest:
            self.write(b"\n")


def preload(boot, topic, count, seed):
    """Generates and produces `count` events in one pass; returns (messages, totals, bytes)."""
    t0 = time.monotonic()
    kcat = subprocess.Popen([kh.KCAT, "-b", boot, "-t", topic, "-P", "-K", "\t"] + list(kh.PRODUCER_PROPS),
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    errs = []
    t = threading.Thread(target=lambda: errs.append(kcat.stderr.read()), daemon=True)
    t.start()
    g = gen_events.Generator(seed, bad_ratio=0.003)
    sink = KeyedPipe(kcat.stdin)
    g.write(sink, count)
    sink.close()
    kcat.stdin.close()
    rc = kcat.wait()
    t.join()
    if rc != 0:
        raise RuntimeError("kcat exited %d: %s" % (rc, b"".join(errs).decode("utf-8", "replace")[-2000:]))
    totals = g.tot.to_json()
    print("preloaded %d events (%.0f MB of JSON, %d rejected by contract) in %.0f s"
          % (sink.count, sink.bytes / 1e6, totals["events"]["rejected"], time.monotonic() - t0), flush=True)
    return sink.count, totals, sink.bytes


def preload_loadgen(loadgen, boot, topic, count, seed, workdir):
    """Produces `count` events with ai-finops-loadgen; returns (messages, totals, bytes) with the
    totals in gen_events.py's shape (events.accepted/rejected) for kafka_harness.expected_series."""
    t0 = time.monotonic()
    tpath = os.path.join(workdir, "preload.totals.json")
    cmd = [loadgen, "--brokers", boot, "--topic", topic, "--count", str(count), "--seed", str(seed),
           "--priced-ratio", "0", "--bad-ratio", "0.003", "--totals", tpath, "-q"]
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), p.returncode,
                                                  p.stderr.decode("utf-8", "replace")[-2000:]))
    with open(tpath) as f:
        totals = json.load(f)
    ev = totals["events"]
    if ev.get("failed", 0) or ev["produced"] != count:
        raise RuntimeError("loadgen delivered %d of %d events (%d failed)" % (ev["produced"], count, ev.get("failed", 0)))
    totals["events"] = {"accepted": ev["valid"], "rejected": ev["bad"]}
    print("preloaded %d events with ai-finops-loadgen (%d rejected by contract) in %.0f s"
          % (ev["produced"], ev["bad"], time.monotonic() - t0), flush=True)
    return ev["produced"], totals, None


def run_daemon(args, binary, boot, topic, dlq, n, totals, workdir):
    # No zero-hold: the rate is read off /metrics, which shows a new series
    # at 0 for counters.new_series_hold_ms; checkpoints at their default.
    # (A baseline build from before checkpoints has none of these options.)
    stamp = "%d" % (time.time() * 1000)
    extra = []
    if b"--kafka.state-topic" in subprocess.run([binary, "--help"], stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT).stdout:
        extra = ["--counters.new-series-hold-ms=0", "--kafka.state-topic=bench-state-" + stamp,
                 "--kafka.transactional-id=bench-" + stamp]
    d = kh.Daemon(binary, workdir, "bench-daemon", boot, topic, "bench-daemon-" + stamp, dlq,
                  threads=args.threads, properties={}, log_level="warn", extra_args=extra)
    t0 = time.monotonic()
    d.start()
    try:
        first = done = None
        last = first_count = 0
        while time.monotonic() - t0 < 3600:
            status, body = kh.http_get(d.metrics_url, timeout=30)
            now = time.monotonic()
            if status == 200:
                last = sum(int(v) for v in EVENTS_RE.findall(body))
                if last and first is None:
                    first, first_count = now, last
                if last >= n:
                    done = now
                    break
            if not d.alive():
                raise RuntimeError("the daemon exited:\n" + d.log_tail(20))
            time.sleep(SCRAPE_INTERVAL)
        if done is None:
            raise RuntimeError("the daemon counted %d of %d events in an hour" % (last, n))
        cpu = threadcpu.process_seconds(d.pid)
        rdk_cpu = threadcpu.librdkafka_seconds(d.pid)
        # exactness: one more scrape (every series has been shown once)
        status, body = kh.http_get(d.metrics_url, timeout=60)
        ex = expo.parse(body)
        diffs = []
        for fam in (kh.EVENTS, kh.REJECTED, kh.COST):
            names, parse_value, _ = kh.FAMILIES[fam]
            got = ex.series_sum(fam, names, parse_value)
            ok, detail = kh.compare_series(fam, kh.expected_series(totals, fam), got, max_lines=3)
            if not ok:
                diffs.append(detail)
        # broker load of the checkpoints: records and transactions written
        ckpt = {k: int(v) for k, v in re.findall(
            rb'^ai_finops_kafka_(checkpoint_records|checkpoints)_total (\d+)$', body, re.M)}
        rc = d.terminate(timeout=60)
        # events/s between the first scrape that showed events and the one that showed them all
        # (events counted before the first scrape are left out of the rate, not of the CPU)
        rate = (last - first_count) / (done - first) if done > first else float("inf")
        return check_split("daemon", {"messages": last, "rate": rate, "seconds": done - first,
                                      "seconds_total": done - t0, "cpu_seconds": cpu,
                                      "librdkafka_cpu_seconds": rdk_cpu, "exact": not diffs, "diffs": diffs,
                                      "exit": rc,
                                      "state_records": ckpt.get(b"checkpoint_records"),
                                      "checkpoints": ckpt.get(b"checkpoints")})
    finally:
        d.close()


def check_split(what, r):
    """The librdkafka share is part of the whole. Both count clock ticks, read
    a moment apart (and the whole through getrusage in raw_drain and Python,
    which rounds otherwise): two ticks of slack."""
    rdk, cpu = r["librdkafka_cpu_seconds"], r["cpu_seconds"]
    if not 0 <= rdk <= cpu + 2.0 / os.sysconf("SC_CLK_TCK"):
        raise RuntimeError("%s: librdkafka's threads used %.3f of %.3f CPU-s" % (what, rdk, cpu))
    return r


def run_json(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=3600)
    out = p.stdout.decode().strip().splitlines()
    if p.returncode != 0 or not out:
        raise RuntimeError("%s exited %d: %s" % (cmd[0], p.returncode, p.stderr.decode("utf-8", "replace")[-2000:]))
    return check_split(" ".join(os.path.basename(c) for c in cmd[:2]), json.loads(out[-1]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "ai-finops-exporter"))
    ap.add_argument("--count", type=int, default=5_000_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=1, help="rounds of raw + daemon drains (medians reported)")
    ap.add_argument("--python-runs", type=int, default=1)
    ap.add_argument("--baseline-binary", help="a second exporter build drained in each round (before/after)")
    ap.add_argument("--preload", choices=("loadgen", "python"), default="loadgen")
    ap.add_argument("--loadgen", help="ai-finops-loadgen (default: next to --binary)")
    ap.add_argument("--workdir")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="interpreter with confluent_kafka and prometheus_client")
    args = ap.parse_args(argv)
    if not os.access(args.binary, os.X_OK):
        ap.error("%s is not an executable (build it, or pass --binary)" % args.binary)
    if args.baseline_binary and not os.access(args.baseline_binary, os.X_OK):
        ap.error("%s is not an executable" % args.baseline_binary)
    loadgen = args.loadgen or os.path.join(os.path.dirname(os.path.abspath(args.binary)), "ai-finops-loadgen")
    if args.preload == "loadgen" and not os.access(loadgen, os.X_OK):
        ap.error("%s is not an executable (build it, pass --loadgen, or use --preload python)" % loadgen)
    workdir = args.workdir or tempfile.mkdtemp(prefix="kafka-drain-")
    os.makedirs(workdir, exist_ok=True)

    raw_bin = os.path.join(workdir, "raw_drain")
    raw_alloc = binary_allocator(args.binary)
    subprocess.run(["gcc", "-O2", "-Wall", "-o", raw_bin, os.path.join(ROOT, "bench", "raw_drain.c"),
                    "-lrdkafka", "-lpthread"] + (["-ljemalloc"] if raw_alloc == "jemalloc" else []), check=True)
    if binary_allocator(raw_bin) != raw_alloc:
        raise RuntimeError("raw_drain did not link %s like %s" % (raw_alloc, args.binary))
    have_python = subprocess.run([args.python, "-c", "import confluent_kafka, prometheus_client"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    print("machine: %d cores, %s; allocator of the daemon and the raw drain: %s"
          % (os.cpu_count(), _cpu_model(), raw_alloc), flush=True)
    broker_dir = os.path.join(workdir, "broker")
    shutil.rmtree(broker_dir, ignore_errors=True)
    daemons = [("ai-finops-exporter", args.binary)]
    if args.baseline_binary:
        daemons.append(("baseline exporter", args.baseline_binary))
    runs = {k: [] for k in ["raw librdkafka", "raw shared"] + [k for k, _ in daemons] + ["python baseline"]}
    try:
        with KafkaBroker(broker_dir, keep_workdir=False) as kb:
            topic, dlq = "bench.ai-costs", "bench.ai-costs-dlq"
            kb.create_topics({topic: args.partitions, dlq: 1})
            if args.preload == "loadgen":
                n, totals, _ = preload_loadgen(loadgen, kb.bootstrap, topic, args.count, args.seed, workdir)
            else:
                n, totals, _ = preload(kb.bootstrap, topic, args.count, args.seed)
            ends = kh.end_offsets(kb.bootstrap, topic, args.partitions)
            if sum(ends) != n:
                raise RuntimeError("topic holds %d messages, produced %d" % (sum(ends), n))
            print("draining %d events from %d partitions with %d consumer thread(s), %d round(s)..."
                  % (n, args.partitions, args.threads, args.runs), flush=True)
            for rnd in range(args.runs):
                line = []
                for k, shape in (("raw librdkafka", "handles"), ("raw shared", "shared")):
                    r = run_json([raw_bin, kb.bootstrap, topic, str(args.partitions), str(args.threads), str(n), shape])
                    runs[k].append(r)
                    line.append("%s %.0f/s %.2f CPU-s/M" % ("raw" if shape == "handles" else "raw shared",
                                                           r["messages"] / r["seconds"],
                                                           r["cpu_seconds"] / (r["messages"] / 1e6)))
                order = daemons if rnd % 2 == 0 else daemons[::-1]
                for k, binary in order:
                    r = run_daemon(args, binary, kb.bootstrap, topic, dlq, n, totals, workdir)
                    runs[k].append(r)
                    line.append("%s %.0f/s %.2f CPU-s/M%s" % (k, r["rate"],
                                                             r["cpu_seconds"] / (r["messages"] / 1e6),
                                                             "" if r["exact"] else " NOT EXACT"))
                print("  round %d: %s" % (rnd + 1, "; ".join(line)), flush=True)
            if have_python:
                for _ in range(args.python_runs):
                    runs["python baseline"].append(run_json(
                        [args.python, os.path.join(ROOT, "bench", "python_baseline.py"),
                         kb.bootstrap, topic, str(args.partitions), str(n)]))
                print("  python baseline done", flush=True)
            else:
                print("  python baseline skipped: %s lacks confluent_kafka/prometheus_client" % args.python)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    def med(rs, f):
        return statistics.median(f(r) for r in rs)

    def rate(r):
        # the daemon's runs report their rate; raw and python runs a duration
        if "rate" in r:
            return r["rate"]
        return r["messages"] / r["seconds"] if r["seconds"] > 0 else float("inf")

    results = {}
    for k, rs in runs.items():
        if rs:
            results[k] = {"rate": med(rs, rate),
                          "rate_total": med(rs, lambda r: r["messages"] / r["seconds_total"]),
                          "seconds": med(rs, lambda r: r["seconds"]),
                          "cpu_per_m": med(rs, lambda r: r["cpu_seconds"] / (r["messages"] / 1e6)),
                          "rdk_per_m": med(rs, lambda r: r["librdkafka_cpu_seconds"] / (r["messages"] / 1e6)),
                          "app_per_m": med(rs, lambda r: (r["cpu_seconds"] - r["librdkafka_cpu_seconds"])
                                           / (r["messages"] / 1e6)),
                          "n": len(rs)}
    print()
    print("%-34s %12s %14s %10s %18s %5s" % ("", "events/s", "incl. start", "wall s", "CPU-s / 1M events", "runs"))
    labels = {"ai-finops-exporter": "ai-finops-exporter (%d threads)" % args.threads,
              "baseline exporter": "baseline exporter (%d threads)" % args.threads,
              "raw librdkafka": "raw librdkafka (%d handles)" % args.threads,
              "raw shared": "raw, daemon's shape (1 handle)",
              "python baseline": "python (confluent-kafka+prom)"}
    for k in ("ai-finops-exporter", "baseline exporter", "raw librdkafka", "raw shared", "python baseline"):
        r = results.get(k)
        if not r:
            continue
        print("%-34s %12.0f %14.0f %10.2f %18.2f %5d" % (
            labels[k], r["rate"], r["rate_total"], r["seconds"], r["cpu_per_m"], r["n"]))
    # Where the CPU goes: librdkafka's own threads (fetch, decompress, build
    # messages) against the application's (poll, then whatever it does with
    # each message). The daemon's application threads minus the raw drain's
    # in the daemon's shape is what decoding, pricing and adding cost.
    print()
    print("%-34s %18s %18s %12s" % ("CPU-us per event (medians)", "librdkafka threads", "application threads", "all"))
    for k in ("ai-finops-exporter", "baseline exporter", "raw librdkafka", "raw shared", "python baseline"):
        r = results.get(k)
        if r:
            print("%-34s %18.3f %18.3f %12.3f" % (labels[k], r["rdk_per_m"], r["app_per_m"], r["cpu_per_m"]))
    d = results["ai-finops-exporter"]
    print("decode+price+add in the daemon: %.3f CPU-us per event (its application threads minus the raw "
          "drain's in its shape)" % (d["app_per_m"] - results["raw shared"]["app_per_m"]))
    print()
    if args.runs > 1:
        print("(medians over the runs of each row)")
    for name, num, den in (("daemon/raw", "ai-finops-exporter", "raw librdkafka"),
                           ("daemon/raw-shared", "ai-finops-exporter", "raw shared"),
                           ("raw-shared/raw", "raw shared", "raw librdkafka")):
        x, y = results[num], results[den]
        print("%-17s throughput %.2fx, CPU per event %.2fx" % (name, x["rate"] / y["rate"], x["cpu_per_m"] / y["cpu_per_m"]))
        if args.runs > 1:
            # Same-round ratios: each round's drains share the machine's state
            # of the moment, so their ratio is steadier than a ratio of medians.
            per_round = [rate(a) / rate(b) for a, b in zip(runs[num], runs[den])]
            print("%-17s throughput per round %s, median %.2fx" % (
                name, " ".join("%.2f" % v for v in per_round), statistics.median(per_round)))
    print("daemon         %.2fM events per CPU-second (%.2fM/s per consumer thread)" % (
        1.0 / d["cpu_per_m"], d["rate"] / 1e6 / args.threads))
    if "python baseline" in results:
        p = results["python baseline"]
        print("daemon/python  throughput %.2fx, CPU per event %.2fx" % (d["rate"] / p["rate"], d["cpu_per_m"] / p["cpu_per_m"]))
    if "baseline exporter" in results:
        b = results["baseline exporter"]
        print("daemon/baseline throughput %.2fx, CPU per event %.2fx" % (d["rate"] / b["rate"], d["cpu_per_m"] / b["cpu_per_m"]))
    exact = True
    for k, _ in daemons:
        bad = [r for r in runs[k] if not r["exact"]]
        exits = sorted(set(str(r["exit"]) for r in runs[k]))
        exact &= not bad
        print("%s counters exact vs the generator: %s; SIGTERM exit %s" % (
            k, "yes (%d/%d runs)" % (len(runs[k]), len(runs[k])) if not bad else
            "NO\n" + "\n".join(bad[0]["diffs"]), ",".join(exits)))
        recs = [r["state_records"] for r in runs[k] if r.get("state_records") is not None]
        if recs:  # the checkpoints' broker load
            txns = [r["checkpoints"] for r in runs[k]]
            print("%s checkpoints: median %d transactions and %d state-topic records per drain of %d events "
                  "(%.1f records per 1,000 events)" % (k, statistics.median(txns), statistics.median(recs),
                                                       args.count, 1000.0 * statistics.median(recs) / args.count))
    return 0 if exact else 1


def binary_allocator(path):
    """'jemalloc' when the executable links libjemalloc, else 'glibc malloc'."""
    p = subprocess.run(["ldd", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return "jemalloc" if b"libjemalloc" in p.stdout else "glibc malloc"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


if __name__ == "__main__":
    sys.exit(main())
