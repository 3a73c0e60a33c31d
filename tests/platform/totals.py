#!/usr/bin/env python3
"""totals.py TOTALS_JSON METRICS_URL [--timeout S] [--save FILE]

Waits until the exporter at METRICS_URL has counted as many events
(ai_finops_events_total, accepted + rejected) as ai-finops-loadgen says it
delivered in TOTALS_JSON, then compares the exporter's counters with those
totals EXACTLY, series by series: events per outcome, rejects per reason,
cost (nano-dollars), tokens, GPU time, and no pricing mismatches. The same
comparison as tests/integration/test_loadgen.py (it imports it) and the
same strict exposition parser (tests/integration/expo.py); used by the
platform checks of the image and of the compose stack. Exit 0 when every
check passes.
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


def scrape(url, timeout=30):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return None, str(e).encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("totals")
    ap.add_argument("url")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--save")
    args = ap.parse_args()
    totals = json.load(open(args.totals))
    produced = totals["events"]["produced"] - totals["events"]["failed"]
    res = Results()
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
    # a scraper's first view of a series shows 0; the next one the value
    time.sleep(0.5)
    scrape(args.url)
    time.sleep(0.5)
    status, body = scrape(args.url, timeout=60)
    if args.save:
        with open(args.save, "wb") as f:
            f.write(body)
    ex = check_scrape_exact(res, status, body, totals)
    nonzero = {k: v for k, v in ex.series(MISMATCH).items() if v != "0"} if MISMATCH in ex.families else {}
    res.check("no pricing mismatches (cost_usd = table price)", not nonzero, "%s" % list(nonzero.items())[:5])
    produced_usd = expo.format_nanos(sum(s["value"] for s in totals["cost_nanos"]))
    print("  loadgen delivered $%s in %d events" % (produced_usd, produced))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
