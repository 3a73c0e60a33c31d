#!/usr/bin/env python3
"""HTTP abuse cases of issue 14 against the real daemon on 127.0.0.1: while
hostile clients run (64 slow-header clients, 64 endless request bodies,
1,000 idle connections, 16 idle connections from the scraper's own IP, 64
clients that request /metrics and never read), a normal scrape must keep
getting a whole 200 answer, and the daemon's memory must stay bounded.

Attackers reconnect whenever the server closes them, for the whole case, so
a server that only frees slots on a timeout stays starved. Checks never
depend on timing: a scrape passes when it completes (30 s bound per scrape,
far above the attack's own effect on a healthy server), memory is compared
with the size of one render.

--measure prints latency/RSS figures per case (used with --binary pointing
at the build before and after, see the README text in the issue-14 note).
"""
import argparse
import http.client
import os
import selectors
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import Results, free_port  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Attack(threading.Thread):
    """Keeps `count` hostile connections open with one selector thread."""

    def __init__(self, port, count, mode, sources):
        super().__init__(daemon=True)
        self.port, self.count, self.mode = port, count, mode
        self.sources = sources  # source addresses, used in turn
        self.stop = threading.Event()
        self.connects = 0
        self.closed_by_server = 0
        self.open = 0

    def _open(self, sel):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((self.sources[self.connects % len(self.sources)], 0))
            s.connect_ex(("127.0.0.1", self.port))
        except OSError:
            s.close()
            return
        sel.register(s, selectors.EVENT_READ, {"sent": False})
        self.connects += 1

    def _first(self):
        if self.mode == "slow_headers":
            return b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
        if self.mode == "endless_body":
            return (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n")
        if self.mode == "non_reading":
            return b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        return b""  # idle

    def run(self):
        sel = selectors.DefaultSelector()
        for _ in range(self.count):
            self._open(sel)
        last_trickle = 0.0
        while not self.stop.is_set():
            for key, _ in sel.select(timeout=0.2):
                s = key.fileobj
                try:
                    data = s.recv(65536) if self.mode != "non_reading" else None
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data == b"" or (data and self.mode == "non_reading"):
                    # closed by the server (or an answer): come back
                    sel.unregister(s)
                    s.close()
                    self.closed_by_server += 1
                    self._open(sel)
                elif self.mode == "non_reading":
                    # never read: stop watching so the answer stays queued
                    sel.unregister(s)
                    key.data["s"] = s
                    self.held = getattr(self, "held", [])
                    self.held.append(s)
            now = time.monotonic()
            if now - last_trickle >= 1.0:
                last_trickle = now
                for key in list(sel.get_map().values()):
                    s = key.fileobj
                    try:
                        if not key.data["sent"]:
                            first = self._first()
                            if first:
                                s.send(first)
                            key.data["sent"] = True
                        elif self.mode == "slow_headers":
                            s.send(b"X")
                        elif self.mode == "endless_body":
                            s.send(b"x" * 1024)
                    except OSError:
                        pass
            if self.mode == "non_reading" and len(sel.get_map()) == 0 and \
                    len(getattr(self, "held", [])) >= self.count:
                time.sleep(0.2)
            self.open = len(sel.get_map()) + len(getattr(self, "held", []))
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        for s in getattr(self, "held", []):
            s.close()


def scrape(port, timeout):
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", "/metrics")
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, len(body), time.monotonic() - t0
    except Exception as e:  # noqa: BLE001 - any failure is a failed scrape
        return repr(e), 0, time.monotonic() - t0


def write_events(path, series):
    with open(path, "w") as f:
        for i in range(series):
            f.write('{"team":"team-%06d","project":"p","source":"abuse","cost_usd":1}\n' % i)


def start(binary, port, events, workdir, extra):
    log = open(os.path.join(workdir, "daemon-%d.log" % port), "wb")
    cmd = [binary, "--input", events, "--web.listen-address=127.0.0.1:%d" % port,
           "--log.level=warn"] + extra
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    return proc


def wait_ready(port, proc, series):
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        st, n, _ = scrape(port, 30)
        if st == 200 and n > 0:
            # every series present (the input is a file read once)
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", "/metrics")
            body = c.getresponse().read().decode()
            c.close()
            if body.count('source="abuse"') >= series:
                return len(body)
        time.sleep(0.2)
    return 0


# name, hostile connections, daemon flags of the case
SCRAPERS_16 = ["--web.max-connections=16", "--web.scrapers=127.0.0.1"]
CASES = [
    ("slow_headers", 64, []),
    ("endless_body", 64, []),
    ("idle", 1000, []),
    ("idle_one_ip_16", 16, []),
    ("non_reading", 64, []),
    # 64 slow-header clients from 127.0.0.2-65 at a limit of 16, the
    # scraper (127.0.0.1) listed in web.scrapers: its 8 reserved connections
    ("slow_headers_scrapers_16", 64, SCRAPERS_16),
    # the same with someone else listed: the scraper is one of the crowd
    # (a figure, printed, never checked: it depends on the machine's timing)
    ("slow_headers_not_listed_16", 64, ["--web.max-connections=16",
                                        "--web.scrapers=127.0.0.200"]),
    # 64 clients that request /metrics and never read, at a limit of 16:
    # their connections are busy being answered, so no victim rule can take
    # them before the request deadline; the scraper's reserved share can
    ("non_reading_scrapers_16", 64, SCRAPERS_16),
    ("non_reading_not_listed_16", 64, ["--web.max-connections=16",
                                       "--web.scrapers=127.0.0.200"]),
]
FIGURE_ONLY = {"slow_headers_not_listed_16", "non_reading_not_listed_16"}


def run_case(args, res, name, count, events, series, extra):
    port = free_port()
    proc = start(args.binary, port, events, args.workdir, extra)
    measure = args.measure or name in FIGURE_ONLY
    try:
        render = wait_ready(port, proc, series)
        if not res.check("%s: daemon serves all %d series" % (name, series), render > 0):
            return
        base_rss = rss_kib(proc.pid)
        mode = "idle" if name.startswith("idle") else \
            "slow_headers" if name.startswith("slow_headers") else \
            "non_reading" if name.startswith("non_reading") else name
        # the 16 come from the scraper's own address; the other attacks from
        # 64 loopback addresses (127.0.0.2-65), as many hosts would
        sources = ["127.0.0.1"] if name == "idle_one_ip_16" else \
            ["127.0.0.%d" % (2 + i) for i in range(64)]
        atk = Attack(port, count, mode, sources)
        atk.start()
        # let the attack take hold: every hostile connection opened and sent
        deadline = time.monotonic() + 60
        while atk.connects < count and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.5)
        results, peak = [], base_rss
        for _ in range(args.scrapes):
            results.append(scrape(port, args.scrape_timeout))
            peak = max(peak, rss_kib(proc.pid))
            time.sleep(0.3)
        peak = max(peak, rss_kib(proc.pid))
        atk.stop.set()
        atk.join(30)
        ok = [r for r in results if r[0] == 200 and r[1] > 0]
        errors = sorted(set(str(r[0])[:60] for r in results if r not in ok))
        lat = sorted(r[2] for r in results)
        figure = ("%d/%d scrapes ok, latency p50 %.1f ms max %.1f ms, RSS %d -> %d KiB "
                  "(render %d bytes), attacker connects %d%s"
                  % (len(ok), len(results), 1000 * lat[len(lat) // 2], 1000 * lat[-1],
                     base_rss, peak, render, atk.connects,
                     (", failures: " + "; ".join(errors)) if errors else ""))
        if measure:
            print("MEASURE %s x%d: %s" % (name, count, figure), flush=True)
            return
        res.check("%s x%d: every scrape answered while the attack runs" % (name, count),
                  len(ok) == len(results), figure)
        if name == "non_reading" and not args.no_memory_check:
            # 64 readers of one render hold a bounded number of copies
            # (at most 4 live renders), not one each
            grown = (peak - base_rss) * 1024
            res.check("non_reading x64: memory grows by at most 8 renders",
                      grown <= 8 * render, "%d bytes for renders of %d" % (grown, render))
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if not measure:
        with open(os.path.join(args.workdir, "daemon-%d.log" % port), "rb") as f:
            log = f.read()
        res.check("%s: no sanitizer report in the daemon log" % name,
                  b"Sanitizer" not in log and b"runtime error" not in log,
                  log[-2000:].decode(errors="replace"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--workdir", required=True)
    # 100k series: a render (7.8 MB) larger than what loopback socket buffers
    # absorb, so a server that copies per reader shows it in its RSS
    ap.add_argument("--series", type=int, default=100000)
    ap.add_argument("--scrapes", type=int, default=10)
    ap.add_argument("--scrape-timeout", type=float, default=30.0)
    ap.add_argument("--measure", action="store_true",
                    help="print figures instead of checking (for the before/after bench)")
    ap.add_argument("--no-memory-check", action="store_true",
                    help="sanitized builds: ASan's quarantine keeps freed renders resident")
    ap.add_argument("--cases", default=",".join(c for c, _, _ in CASES))
    ap.add_argument("--extra", default="", help="extra daemon flags, space-separated")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    res = Results()
    events = os.path.join(args.workdir, "events-%d.jsonl" % args.series)
    if not os.path.exists(events):
        write_events(events, args.series)
    extra = args.extra.split() if args.extra else []
    for name, count, case_extra in CASES:
        if name in args.cases.split(","):
            series = args.series if name.startswith("non_reading") else min(args.series, 1000)
            ev = events if series == args.series else os.path.join(args.workdir, "events-small.jsonl")
            if not os.path.exists(ev):
                write_events(ev, series)
            run_case(args, res, name, count, ev, series, extra + case_extra)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
