#!/usr/bin/env python3
"""End-to-end replay test of ai-finops-exporter.

Generates N events (default 1,000,000; ~0.5% defective covering every
reject reason, ~0.2% unpriced) with gen_events.py, starts

    BINARY --input FILE --web.listen-address=127.0.0.1:PORT --log.level=warn

waits until ai_finops_events_total{accepted+rejected} equals the number of
non-blank lines, then compares EVERY series of the cost, token and GPU
counters and the events / rejected counters exactly (integers, never
floats) with the generator's independently computed totals, runs the
strict exposition checks of expo.py and `promtool check metrics` on the
scrape, and probes /healthz, /, POST /metrics and an unknown path. The
daemon is always killed at the end.

Prints one line per check and `N passed, N failed` last; exit status 1 on
any failure. The input file is deleted after a fully passing run unless
--keep is given (it is kept for reproduction after a failure).
"""

import argparse
import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import expo  # noqa: E402
import gen_events  # noqa: E402
from testlib import COST, EVENTS, GPU, REJECTED, TOKENS, Results, free_port  # noqa: E402

EVENTS_RE = re.compile(r'^ai_finops_events_total\{outcome="(accepted|rejected)"\} (\S+)$', re.M)
SANITIZER_RE = re.compile(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer"
                          r"|runtime error:|SUMMARY: \w+Sanitizer)")
MAX_DIFFS = 10


def http(method, url, timeout=30, data=None, headers=None):
    """Returns (status, headers, body); status None when not connectable."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return None, None, b""


def event_counts(text):
    got = {}
    for outcome, v in EVENTS_RE.findall(text):
        try:
            got[outcome] = expo.parse_uint(v)
        except ValueError:
            got[outcome] = v
    return got


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def fmt_key(names, key):
    return "{" + ",".join('%s="%s"' % (n, expo.escape_label_value(v)) for n, v in zip(names, key)) + "}"


def compare(family, names, expected, scraped, parse_value, render, zero_may_be_absent=False):
    """expected: key tuple -> int; scraped: key tuple -> value string.
    Returns (ok, detail)."""
    diffs = []
    notes = []
    for key in sorted(expected):
        want = expected[key]
        if key not in scraped:
            if want == 0 and zero_may_be_absent:
                notes.append("zero-valued %s%s is not exposed (tolerated)" % (family, fmt_key(names, key)))
                continue
            diffs.append("missing  %s%s want %s" % (family, fmt_key(names, key), render(want)))
            continue
        raw = scraped[key]
        try:
            got = parse_value(raw)
        except ValueError as e:
            diffs.append("badvalue %s%s %s (want %s)" % (family, fmt_key(names, key), e, render(want)))
            continue
        if got != want:
            delta = got - want
            diffs.append("value    %s%s got %s want %s (diff %s%s)" % (
                family, fmt_key(names, key), raw, render(want), "+" if delta > 0 else "-", render(abs(delta))))
    for key in sorted(set(scraped) - set(expected)):
        diffs.append("extra    %s%s = %s" % (family, fmt_key(names, key), scraped[key]))
    detail = "%d expected series, %d scraped" % (len(expected), len(scraped))
    if diffs:
        kinds = {}
        for d in diffs:
            kinds[d.split()[0]] = kinds.get(d.split()[0], 0) + 1
        detail += ", %d differences (%s); first %d:\n%s" % (
            len(diffs), ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items())),
            min(len(diffs), MAX_DIFFS), "\n".join(diffs[:MAX_DIFFS]))
    if notes:
        detail += ("\n" if diffs else "; ") + "; ".join(notes[:3])
    return not diffs, detail


def expected_map(series, names):
    return {tuple(s["labels"][n] for n in names): s["value"] for s in series}


def scraped_map(ex, family, names, res):
    try:
        return ex.series(family, names)
    except ValueError as e:
        res.check("%s label names" % family, False, str(e))
        return {}


def vm_hwm_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def run(args, res):
    os.makedirs(args.workdir, exist_ok=True)
    events_path = os.path.join(args.workdir, "events.jsonl")
    totals_path = os.path.join(args.workdir, "totals.json")
    log_path = os.path.join(args.workdir, "daemon.log")
    scrape_path = os.path.join(args.workdir, "metrics.txt")

    t0 = time.monotonic()
    if args.events:
        # replay an existing file; its totals are recomputed by the oracle
        events_path = os.path.abspath(args.events)
        totals = gen_events.verify(events_path)
    else:
        totals = gen_events.generate(events_path, args.count, seed=args.seed,
                                     bad_ratio=args.bad_ratio, unpriced_ratio=args.unpriced_ratio)
    with open(totals_path, "w") as f:
        json.dump(totals, f, indent=1)
    gen_s = time.monotonic() - t0
    lines = totals["lines"]
    size = os.path.getsize(events_path)
    what = "oracle totals of %d events" if args.events else "generated %d events"
    print((what + " (%d accepted, %d rejected, %d blank lines, %.1f MB) in %.1f s -> %s")
          % (lines, totals["events"]["accepted"], totals["events"]["rejected"], totals["blank_lines"],
             size / 1e6, gen_s, events_path))
    sys.stdout.flush()

    port = free_port()
    base = "http://127.0.0.1:%d" % port
    # No new-series hold: this test compares exact values as soon as the
    # input is consumed (the hold itself is unit-tested: test_counter_table,
    # test_metrics). --extra-arg may set one.
    cmd = [args.binary, "--input", events_path, "--web.listen-address=127.0.0.1:%d" % port,
           "--log.level=warn", "--counters.new-series-hold-ms=0"] + args.extra_arg
    print("starting: %s" % " ".join(cmd))
    sys.stdout.flush()
    log = open(log_path, "wb")
    t_start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        return _exercise(args, res, proc, base, totals, t_start, log_path, scrape_path, events_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        if SANITIZER_RE.search(tail(log_path, 10**6)):
            res.check("no sanitizer reports in the daemon log", False, tail(log_path, 60))
        else:
            res.check("no sanitizer reports in the daemon log", True)


def _exercise(args, res, proc, base, totals, t_start, log_path, scrape_path, events_path):
    lines = totals["lines"]
    # -- wait for the ingestion to complete ---------------------------------------
    deadline = t_start + args.timeout
    last, last_print = None, 0.0
    done_at = None
    while True:
        rc = proc.poll()
        if rc is not None:
            res.check("ingest %d events" % lines, False,
                      "the daemon exited with status %s before ingesting everything (last counts %s)\n%s"
                      % (rc, last, tail(log_path)))
            return
        status, _, body = http("GET", base + "/metrics", timeout=30)
        now = time.monotonic()
        if status == 200:
            last = event_counts(body.decode("utf-8", "replace"))
            n = sum(v for v in last.values() if isinstance(v, int))
            if n > lines:
                res.check("ingest %d events" % lines, False, "counted %d events > %d lines: %s" % (n, lines, last))
                return
            if n == lines:
                done_at = now
                break
            if now - last_print > 10:
                print("  ... %d/%d events after %.0f s" % (n, lines, now - t_start))
                sys.stdout.flush()
                last_print = now
        if now > deadline:
            res.check("ingest %d events" % lines, False, "timed out after %d s; last counts %s (HTTP %s)\n%s"
                      % (args.timeout, last, status, tail(log_path)))
            return
        time.sleep(0.2)
    ingest_s = done_at - t_start
    res.check("ingest %d events" % lines, True, "%.2f s wall (%.0f events/s, incl. start-up)"
              % (ingest_s, lines / ingest_s if ingest_s else 0))

    # -- the compared scrape --------------------------------------------------------
    # The poll that saw the final count may have rendered the tables just
    # before the last series appeared: one more scrape, then the compared one.
    time.sleep(0.5)
    http("GET", base + "/metrics", timeout=60)
    time.sleep(0.5)
    status, headers, body = http("GET", base + "/metrics", timeout=60)
    with open(scrape_path, "wb") as f:
        f.write(body)
    if not res.check("GET /metrics", status == 200, "HTTP %s, %d bytes -> %s" % (status, len(body), scrape_path)):
        return
    ctype = headers.get("Content-Type", "")
    res.check("/metrics Content-Type", ctype.replace(" ", "").lower() == "text/plain;version=0.0.4;charset=utf-8",
              repr(ctype))
    text = body.decode("utf-8", "replace")
    counts = event_counts(text)
    res.check("counts stable after completion",
              all(isinstance(v, int) for v in counts.values()) and sum(counts.values()) == lines, "%s" % counts)

    ex = expo.parse(body)
    res.check("exposition checks (expo.py)", not ex.errors,
              "%d families, %d samples" % (len(ex.families), len(ex.samples)) if not ex.errors else
              "%d problems; first %d:\n%s" % (len(ex.errors), min(MAX_DIFFS, len(ex.errors)),
                                               "\n".join(ex.errors[:MAX_DIFFS])))
    for fam in (COST, TOKENS, GPU, EVENTS, REJECTED):
        f = ex.families.get(fam)
        res.check("%s is a counter" % fam, f is not None and f.type == "counter",
                  "type %s" % (f.type if f else "absent"))
    pr = expo.run_promtool(body)
    res.check("promtool check metrics", pr.ok, "exit %s%s" % (pr.returncode, ("\n" + pr.output) if pr.output else ""))

    # -- exact comparisons ---------------------------------------------------------
    ok, detail = compare(EVENTS, ("outcome",), {(k,): v for k, v in totals["events"].items()},
                         scraped_map(ex, EVENTS, ("outcome",), res), expo.parse_uint, str)
    res.check("%s exact" % EVENTS, ok, detail)

    scraped_rej = scraped_map(ex, REJECTED, ("reason",), res)
    # reasons may be pre-initialised at 0: a scraped zero for an unseen reason is fine
    scraped_rej = {k: v for k, v in scraped_rej.items() if not (v == "0" and k[0] not in totals["rejected"])}
    ok, detail = compare(REJECTED, ("reason",), {(k,): v for k, v in totals["rejected"].items()},
                         scraped_rej, expo.parse_uint, str)
    res.check("%s exact, per reason" % REJECTED, ok, detail)

    names = ("team", "project", "source")
    ok, detail = compare(COST, names, expected_map(totals["cost_nanos"], names),
                         scraped_map(ex, COST, names, res), expo.parse_decimal_nanos, expo.format_nanos,
                         zero_may_be_absent=True)
    res.check("%s exact, every series" % COST, ok, detail)

    names = ("team", "project", "provider", "model", "kind")
    ok, detail = compare(TOKENS, names, expected_map(totals["tokens"], names),
                         scraped_map(ex, TOKENS, names, res), expo.parse_uint, str)
    res.check("%s exact, every series" % TOKENS, ok, detail)

    names = ("team", "project", "instance_type", "gpu_type")
    ok, detail = compare(GPU, names, expected_map(totals["gpu_nanoseconds"], names),
                         scraped_map(ex, GPU, names, res), expo.parse_decimal_nanos, expo.format_nanos)
    res.check("%s exact, every series" % GPU, ok, detail)

    # -- gzip-encoded scrape: same counters -------------------------------------------
    status, headers, zbody = http("GET", base + "/metrics", timeout=60, headers={"Accept-Encoding": "gzip"})
    enc = headers.get("Content-Encoding", "") if headers else ""
    try:
        plain = gzip.decompress(zbody) if enc == "gzip" else zbody
        zex = expo.parse(plain)
        same = all(sorted((s.key(), s.value) for s in zex.samples if s.family and s.family.name == fam) ==
                   sorted((s.key(), s.value) for s in ex.samples if s.family and s.family.name == fam)
                   for fam in (COST, TOKENS, GPU, EVENTS, REJECTED))
        detail = "Content-Encoding %r, %d -> %d bytes, %d problems" % (enc, len(zbody), len(plain), len(zex.errors))
        res.check("gzip scrape has the same counters", status == 200 and same and not zex.errors, detail)
    except (OSError, EOFError) as e:
        res.check("gzip scrape has the same counters", False, "HTTP %s, Content-Encoding %r: %s" % (status, enc, e))

    # -- other endpoints ------------------------------------------------------------
    status, headers, body = http("HEAD", base + "/metrics")
    res.check("HEAD /metrics -> 200, no body", status == 200 and body == b"", "HTTP %s, %d bytes" % (status, len(body)))
    status, headers, body = http("GET", base + "/healthz")
    res.check("GET /healthz -> 200", status == 200, "HTTP %s %r" % (status, body[:80]))
    status, headers, body = http("GET", base + "/")
    ctype = headers.get("Content-Type", "") if headers else ""
    res.check("GET / -> 200 HTML", status == 200 and ctype.lower().startswith("text/html")
              and b"/metrics" in body, "HTTP %s, Content-Type %r, %d bytes" % (status, ctype, len(body)))
    status, headers, body = http("POST", base + "/metrics", data=b"x=1")
    allow = headers.get("Allow") if headers else None
    res.check("POST /metrics -> 405", status == 405, "HTTP %s" % status)
    res.check("405 carries an Allow header (RFC 9110 15.5.6)", status == 405 and bool(allow), "Allow: %r" % allow)
    status, _, _ = http("GET", base + "/no-such-page")
    res.check("GET /no-such-page -> 404", status == 404, "HTTP %s" % status)

    # -- shutdown -------------------------------------------------------------------
    hwm = vm_hwm_kib(proc.pid)
    if hwm is not None:
        print("daemon peak RSS: %.1f MB" % (hwm / 1024))
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=15)
        res.check("SIGTERM -> clean exit", rc == 0, "exit status %s" % rc)
    except subprocess.TimeoutExpired:
        res.check("SIGTERM -> clean exit", False, "still running 15 s after SIGTERM")
    return ingest_s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="path to ai-finops-exporter")
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--workdir", help="where the events, totals, scrape and daemon log go (default: a temp dir)")
    ap.add_argument("--seed", type=int, default=20251123)
    ap.add_argument("--bad-ratio", type=float, default=0.005)
    ap.add_argument("--unpriced-ratio", type=float, default=0.002)
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed for the ingestion")
    ap.add_argument("--events", metavar="FILE",
                    help="replay this JSONL file instead of generating one (expected totals "
                         "come from gen_events.py's independent oracle); never deleted")
    ap.add_argument("--keep", action="store_true", help="keep the events file even when everything passes")
    ap.add_argument("--extra-arg", action="append", default=[], help="extra daemon argument (repeatable)")
    args = ap.parse_args(argv)
    if args.workdir is None:
        args.workdir = tempfile.mkdtemp(prefix="finops-replay-")
    res = Results()
    if not os.access(args.binary, os.X_OK):
        res.check("daemon binary exists", False, "%s is not an executable file" % args.binary)
    else:
        try:
            run(args, res)
        except Exception as e:  # report, never leave a daemon behind (run() kills it)
            import traceback
            res.check("test harness", False, "%s\n%s" % (e, traceback.format_exc()))
    events_path = os.path.join(args.workdir, "events.jsonl")
    if args.events:
        pass
    elif res.failed == 0 and not args.keep and os.path.exists(events_path):
        os.unlink(events_path)
    elif os.path.exists(events_path):
        print("kept %s for reproduction" % events_path)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
