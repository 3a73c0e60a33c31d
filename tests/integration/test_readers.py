#!/usr/bin/env python3
"""What a Prometheus-like scraper observes does not depend on who else reads.

Feeds generated events to `BINARY --input -` in batches (new series keep
appearing in later batches) while two clients read /metrics: a scraper
with Prometheus's counter semantics (per series, the sum of increases
between consecutive samples, a decrease counting as a reset, the first
sample of a series contributing nothing) every 0.25 s, and another client
at random 0.05-0.35 s intervals that also sends HEAD requests and hangs up
half-way through some responses. Once every event is counted and every
new series' zero-hold (counters.new_series_hold_ms) has ended, what the
scraper observed must equal the generator's totals exactly, per series.

Before the zero-hold was time-based, the first client to read a new
series used up its zero, and the scraper lost that money (19% with one
more reader). `--hold-ms 0` turns the hold off and must fail.

Prints one line per check and `N passed, N failed` last; exit 1 on failure.
"""

import argparse
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import expo  # noqa: E402
import gen_events  # noqa: E402
from testlib import COST, EVENTS, GPU, REJECTED, TOKENS, Results, free_port  # noqa: E402

# family -> (label names compared, value parser, totals key)
FAMILIES = {
    COST: (("team", "project", "source"), expo.parse_decimal_nanos, "cost_nanos"),
    TOKENS: (("team", "project", "provider", "model", "kind"), expo.parse_uint, "tokens"),
    GPU: (("team", "project", "instance_type", "gpu_type"), expo.parse_decimal_nanos, "gpu_nanoseconds"),
    EVENTS: (("outcome",), expo.parse_uint, None),
    REJECTED: (("reason",), expo.parse_uint, None),
}


def get(url, timeout=10, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return None, b""


class CounterScraper(threading.Thread):
    """Prometheus's view of the counters: per series identity (family and
    every label), the sum of increases between consecutive samples."""

    def __init__(self, url, interval):
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.last = {}       # key -> last value
        self.observed = {}   # key -> observed increase
        self.first_nonzero = {}  # key -> value of a first sample that was not 0
        self.scrapes = 0
        self.max_gap = 0.0  # longest time between two completed scrapes
        self.last_done = None
        self.raw_events = 0
        self.errors = []
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()

    def scrape(self):
        status, body = get(self.url)
        if status != 200:
            return
        ex = expo.parse(body)
        if ex.errors:
            self.errors.append(ex.errors[:3])
        with self.lock:
            events = 0
            for fam, (_, parse, _) in FAMILIES.items():
                for key, raw in ex.series(fam).items():
                    v = parse(raw)
                    k = (fam, key)
                    if fam == EVENTS:
                        events += v
                    if k not in self.last:
                        if v:
                            self.first_nonzero[k] = v
                        self.observed.setdefault(k, 0)
                    else:
                        prev = self.last[k]
                        self.observed[k] += v - prev if v >= prev else v
                    self.last[k] = v
            self.raw_events = events
            self.scrapes += 1
            now = time.monotonic()
            if self.last_done is not None:
                self.max_gap = max(self.max_gap, now - self.last_done)
            self.last_done = now

    def run(self):
        while not self.stop_flag.is_set():
            self.scrape()
            self.stop_flag.wait(self.interval)

    def sums(self, fam):
        """Observed increases summed to the compared label names."""
        names = FAMILIES[fam][0]
        out = {}
        with self.lock:
            for (f, key), v in self.observed.items():
                if f != fam:
                    continue
                d = dict(key)
                k = tuple(d.get(n, "") for n in names)
                out[k] = out.get(k, 0) + v
        return out


class OtherReader(threading.Thread):
    """Another client: GETs at random intervals, some HEADs, and some
    responses abandoned half-way."""

    def __init__(self, port, seed):
        super().__init__(daemon=True)
        self.port, self.rng = port, random.Random(seed)
        self.reads = 0
        self.stop_flag = threading.Event()

    def run(self):
        url = "http://127.0.0.1:%d/metrics" % self.port
        while not self.stop_flag.is_set():
            r = self.rng.random()
            if r < 0.15:
                get(url, method="HEAD")
            elif r < 0.3:
                try:  # ask, read a little, hang up
                    with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                        s.recv(512)
                except OSError:
                    pass
            else:
                get(url)
            self.reads += 1
            self.stop_flag.wait(self.rng.uniform(0.05, 0.35))


def expected(totals, fam):
    names, _, key = FAMILIES[fam]
    if fam == EVENTS:
        return {("accepted",): totals["events"]["accepted"], ("rejected",): totals["events"]["rejected"]}
    if fam == REJECTED:
        return {(r,): n for r, n in totals["rejected"].items()}
    return {tuple(s["labels"][n] for n in names): s["value"] for s in totals[key]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--count", type=int, default=30000)
    ap.add_argument("--batches", type=int, default=12)
    # long beside the scrape interval, so even a slow scrape on a busy machine
    # sees every new series at 0 at least once
    ap.add_argument("--hold-ms", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=20261204)
    args = ap.parse_args(argv)
    res = Results()
    os.makedirs(args.workdir, exist_ok=True)
    events_path = os.path.join(args.workdir, "events.jsonl")
    totals = gen_events.generate(events_path, args.count, seed=args.seed, bad_ratio=0.003)
    with open(events_path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    port = free_port()
    log_path = os.path.join(args.workdir, "daemon.log")
    cmd = [args.binary, "--input", "-", "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn",
           "--counters.new-series-hold-ms=%d" % args.hold_ms]
    print("starting: %s (%d events in %d batches)" % (" ".join(cmd), len(lines), args.batches), flush=True)
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
    scraper = CounterScraper("http://127.0.0.1:%d/metrics" % port, 0.25)
    other = OtherReader(port, args.seed)
    try:
        deadline = time.monotonic() + 60
        while get("http://127.0.0.1:%d/healthz" % port)[0] != 200:
            if time.monotonic() > deadline or proc.poll() is not None:
                res.check("daemon started", False, open(log_path, "rb").read()[-2000:])
                return 1
            time.sleep(0.1)
        scraper.start()
        other.start()
        rng = random.Random(args.seed)
        step = (len(lines) + args.batches - 1) // args.batches
        for i in range(0, len(lines), step):
            proc.stdin.write(b"".join(lines[i:i + step]))
            proc.stdin.flush()
            time.sleep(rng.uniform(0.3, 1.0))
        want = totals["events"]["accepted"] + totals["events"]["rejected"]
        deadline = time.monotonic() + 300
        while scraper.raw_events < want and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        res.check("the daemon counted every event", scraper.raw_events == want,
                  "%d of %d" % (scraper.raw_events, want))
        # every hold has ended; two more scrapes see the final values
        time.sleep(args.hold_ms / 1000.0 + 0.5)
        n = scraper.scrapes
        while scraper.scrapes < n + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scraper.stop_flag.set()
        other.stop_flag.set()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
    scraper.join(10)
    other.join(10)
    res.check("scrapes parse cleanly", not scraper.errors, str(scraper.errors[:2]))
    print("scraper: %d scrapes (longest gap %.2f s, hold %.1f s); other reader: %d reads; %d series first "
          "seen non-zero" % (scraper.scrapes, scraper.max_gap, args.hold_ms / 1000.0, other.reads,
                             len(scraper.first_nonzero)), flush=True)
    for fam in (EVENTS, REJECTED, COST, TOKENS, GPU):
        want, got = expected(totals, fam), scraper.sums(fam)
        diffs = [(k, got.get(k, 0), w) for k, w in sorted(want.items()) if got.get(k, 0) != w]
        diffs += [(k, v, 0) for k, v in sorted(got.items()) if k not in want and v]
        lost = sum(w - g for _, g, w in diffs)
        res.check("%s observed by counter semantics = produced, per series" % fam, not diffs,
                  "%d series; %d differ (produced - observed = %d), first: %s"
                  % (len(want), len(diffs), lost, diffs[:3]))
    res.check("daemon exited 0 on SIGTERM", proc.returncode == 0, "exit %s" % proc.returncode)
    print("%d passed, %d failed" % (res.passed, res.failed), flush=True)
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
