#!/usr/bin/env python3
"""totals.py TOTALS_JSON [TOTALS_JSON ...] METRICS_URL [--timeout S] [--hold-ms MS] [--save FILE]

Waits until the exporter at METRICS_URL has counted as many events
(ai_finops_events_total, accepted + rejected) as the ai-finops-loadgen runs
say they delivered in the TOTALS_JSON files (one per producer: cost events,
GPU utilization samples, FOCUS rows), then compares the exporter's counters
with the sum of those totals EXACTLY, series by series: events per outcome,
rejects per reason, cost (nano-dollars), tokens, GPU time, and no pricing
mismatches; with several files also GPU allocated seconds and idle cost,
cloud cost and credits, and the GPU samples deduplicated (every family of
tests/integration/test_kafka_kinds.py, whose comparison it imports). The same
comparison as tests/integration/test_loadgen.py (it imports it) and the
same strict exposition parser (tests/integration/expo.py); used by the
platform checks of the image and of the compose stack. Exit 0 when every
check passes.

With the Kafka input every event-fed series carries a last label `shard`
(the input partition, docs/delivery.md); check_scrape_exact sums over it
exactly, so the load generator's totals, which know no partitions, compare
series by series.

/metrics serves checkpointed counters, and a new series reads 0 for the
exporter's counters.new_series_hold_ms (--hold-ms, default 35000): after the
last event is counted, the exact comparison is retried quietly until it
passes or the hold plus a margin has gone by; then it is made once more and
reported. Timing decides only how long it waits, never the verdict.
"""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True
INTEGRATION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration")
sys.path.insert(0, INTEGRATION)
import expo  # noqa: E402
from test_loadgen import MISMATCH, check_scrape_exact, event_counts  # noqa: E402
from testlib import Results  # noqa: E402
from test_kafka_kinds import FAMILIES, compare, merged_expected  # noqa: E402

def scrape(url, timeout=30):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return None, str(e).encode()


class Quiet(Results):
    """Results that print nothing (for the attempts before the reported one)."""

    def check(self, name, ok, detail=""):
        self.passed += bool(ok)
        self.failed += not ok
        return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("totals", nargs="+")
    ap.add_argument("url")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--hold-ms", type=int, default=35000,
                    help="the exporter's counters.new_series_hold_ms")
    ap.add_argument("--save")
    args = ap.parse_args()
    all_totals = [json.load(open(f)) for f in args.totals]
    if len(all_totals) > 1:
        return main_kinds(args, all_totals)
    totals = all_totals[0]
    produced = totals["events"]["produced"] - totals["events"]["failed"]
    res = Results()
    if wait_counted(args, res, produced):
        return 1
    return main_cost(args, totals, res)


def main_kinds(args, all_totals):
    """Several producers: the exporter equals the sum of their totals, every
    family of every kind, exactly."""
    produced = sum(t["events"]["produced"] - t["events"]["failed"] for t in all_totals)
    res = Results()
    if wait_counted(args, res, produced):
        return 1
    exp, events, rejected, dedup = merged_expected(all_totals)
    settle = time.monotonic() + args.hold_ms / 1000.0 + 30
    while time.monotonic() < settle:
        status, body = scrape(args.url, timeout=60)
        if status == 200 and not compare(exp, events, rejected, body, dedup):
            break
        time.sleep(1)
    status, body = scrape(args.url, timeout=60)
    if args.save:
        with open(args.save, "wb") as f:
            f.write(body)
    if not res.check("scrape HTTP 200", status == 200, "HTTP %s" % status):
        return 1
    diff = compare(exp, events, rejected, body, dedup)
    fams = ", ".join("%s %d series" % (FAMILIES[k][0], len([v for v in exp[k].values() if v]))
                     for k in FAMILIES if exp[k])
    res.check("every series of every family exact (events per outcome, rejects per reason, "
              "GPU samples deduplicated, %s)" % fams, not diff, diff)
    ex = expo.parse(body)
    nonzero = {k: v for k, v in ex.series(MISMATCH).items() if v != "0"} if MISMATCH in ex.families else {}
    res.check("no pricing mismatches (cost_usd = table price)", not nonzero, "%s" % list(nonzero.items())[:5])
    for key, what in (("cost_nanos", "AI spend"), ("gpu_idle_cost_nanos", "GPU idle cost"),
                      ("cloud_cost_nanos", "cloud cost"), ("credit_nanos", "credits")):
        print("  loadgens delivered %s $%s" % (what, expo.format_nanos(sum(exp[key].values()))))
    print("  %d events in all, %d GPU samples deduplicated" % (produced, dedup))
    return 1 if res.failed else 0


def wait_counted(args, res, produced):
    """Waits until the exporter has counted PRODUCED events; 1 when it did not."""
    t0, last_print, counts = time.monotonic(), time.monotonic(), {}
    while True:
        status, body = scrape(args.url)
        if status == 200:
            counts = event_counts(body.decode("utf-8", "replace"))
            if sum(counts.values()) >= produced:
                break
        now = time.monotonic()
        if now - t0 > args.timeout:
            break
        if now - last_print > 15:
            print("  ... %s of %d events after %.0f s (HTTP %s)" % (counts, produced, now - t0, status))
            sys.stdout.flush()
            last_print = now
        time.sleep(0.5)
    n = sum(counts.values())
    if not res.check("exporter counted the %d delivered events" % produced, n == produced,
                     "%s after %.1f s" % (counts, time.monotonic() - t0)):
        return 1
    return 0


def main_cost(args, totals, res):
    # Series created by the last events may still read 0 for their hold.
    settle = time.monotonic() + args.hold_ms / 1000.0 + 30
    while time.monotonic() < settle:
        status, body = scrape(args.url, timeout=60)
        if status == 200:
            quiet = Quiet()
            try:
                check_scrape_exact(quiet, status, body, totals)
            except ValueError:  # labels other than expected: reported below
                quiet.failed += 1
            if not quiet.failed:
                break
        time.sleep(1)
    status, body = scrape(args.url, timeout=60)
    if args.save:
        with open(args.save, "wb") as f:
            f.write(body)
    try:
        ex = check_scrape_exact(res, status, body, totals)
    except ValueError as e:
        res.check("every series has the expected labels", False, str(e))
        return 1
    nonzero = {k: v for k, v in ex.series(MISMATCH).items() if v != "0"} if MISMATCH in ex.families else {}
    res.check("no pricing mismatches (cost_usd = table price)", not nonzero, "%s" % list(nonzero.items())[:5])
    produced_usd = expo.format_nanos(sum(s["value"] for s in totals["cost_nanos"]))
    print("  loadgen delivered $%s in %d events" % (produced_usd, totals["events"]["produced"] - totals["events"]["failed"]))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
