#!/usr/bin/env python3
"""soak.py - the exporter under steady load for a long time: memory must stay
flat, every event must be counted exactly, and nothing may leak.

The load generator sends --rate events/s for --duration seconds through a
real local Kafka broker (scripts/kafka-local.sh; the daemon consumes with
checkpoints, as in production) or, with --input fifo, through a FIFO read by
--input. Every second the script scrapes /metrics once (as Prometheus would,
timing the scrape) and samples the daemon's RSS and CPU time, the load
generator's and the broker's CPU time, and the load average. At the end:

- exact: the scraped events, rejects, cost, token and GPU series equal the
  load generator's totals (every series, to the nano-dollar);
- flat: with T the run's length and W the warm-up, the highest RSS of the
  second half (T/2..T) minus the highest RSS of [W, T/2) is at most
  --flat-mib (default 8 MiB). A leak of 1 byte per event at 50,000 events/s
  would add 14 MiB over the 5 minutes of the second half of a 10-minute run;
- clean exit: SIGTERM gives status 0, and the daemon's log holds no
  sanitizer report (with an ASan build, LeakSanitizer's report at exit).

It writes soak.csv (one row per second) and soak.svg (RSS and events/s over
time) into --workdir, prints the figures and "N passed, N failed", and exits
1 when a check failed. Timing never fails it: a rate below --rate is
reported, not failed. Python 3 standard library only.

  bench/soak.py --exporter B/ai-finops-exporter --loadgen B/ai-finops-loadgen \\
      --workdir /tmp/soak --duration 600 --rate 50000
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from test_loadgen import check_scrape_exact, event_counts, tail  # noqa: E402
from testlib import Results, free_port  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SANITIZER_RE = re.compile(r"ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:|SUMMARY: \w+Sanitizer")


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def scrape(url, timeout=10):
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read()
            return r.status, body, time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, b"", time.monotonic() - t0
    except (urllib.error.URLError, OSError):
        return None, b"", time.monotonic() - t0


class Sampler(threading.Thread):
    """Once a second: one scrape, the daemon's RSS and CPU, the load
    generator's and broker's CPU, the load average. Rows go to self.rows."""

    def __init__(self, url, daemon_pid, other_pids, csv_path):
        super().__init__(daemon=True)
        self.url, self.pid, self.others = url, daemon_pid, other_pids
        self.rows = []
        self.stop = threading.Event()
        self.csv = open(csv_path, "w")
        self.csv.write("t_s,rss_kib,daemon_cpu_s,loadgen_cpu_s,broker_cpu_s,load1,events_scraped,"
                       "scrape_status,scrape_ms,scrape_bytes\n")

    def run(self):
        t0 = time.monotonic()
        tick = 0
        while not self.stop.is_set():
            status, body, secs = scrape(self.url)
            events = sum(event_counts(body.decode("utf-8", "replace")).values()) if status == 200 else -1
            row = {"t": time.monotonic() - t0, "rss": rss_kib(self.pid), "cpu": cpu_seconds(self.pid),
                   "lg_cpu": cpu_seconds(self.others["loadgen"]) if self.others.get("loadgen") else None,
                   "br_cpu": cpu_seconds(self.others["broker"]) if self.others.get("broker") else None,
                   "load1": load1(), "events": events, "status": status, "ms": secs * 1000,
                   "bytes": len(body)}
            if row["rss"] is None:  # the daemon is gone
                break
            self.rows.append(row)
            self.csv.write("%.3f,%d,%.2f,%s,%s,%.2f,%d,%s,%.1f,%d\n" % (
                row["t"], row["rss"], row["cpu"] or 0,
                "%.2f" % row["lg_cpu"] if row["lg_cpu"] is not None else "",
                "%.2f" % row["br_cpu"] if row["br_cpu"] is not None else "",
                row["load1"], events, status, row["ms"], row["bytes"]))
            self.csv.flush()
            tick += 1
            self.stop.wait(max(0.0, t0 + tick - time.monotonic()))
        self.csv.close()


def flatness(rows, warmup, end):
    """(max RSS KiB in [warmup, end/2), max RSS KiB in [end/2, end]) or None."""
    half = end / 2
    first = [r["rss"] for r in rows if warmup <= r["t"] < half]
    second = [r["rss"] for r in rows if half <= r["t"] <= end]
    if not first or not second:
        return None
    return max(first), max(second), half


def write_svg(path, rows, warmup, half, title):
    """Two panels sharing the time axis: RSS in MiB, and the events/s the
    scrapes saw; the warm-up and the two halves compared are marked."""
    w, h, left, right, top, gap, ph = 960, 560, 80, 20, 40, 60, 200
    t_end = max(r["t"] for r in rows) or 1
    x = lambda t: left + (w - left - right) * t / t_end  # noqa: E731
    rss = [(r["t"], r["rss"] / 1024) for r in rows]
    # events/s over the last 10 samples: one second's delta swings with
    # the consumer's fetch batches and the checkpoints
    counted = [(r["t"], r["events"]) for r in rows if r["events"] >= 0]
    rate = [(t, (e - counted[max(0, i - 10)][1]) / (t - counted[max(0, i - 10)][0]))
            for i, (t, e) in enumerate(counted) if i > 0 and t > counted[max(0, i - 10)][0]]
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="12">' % (w, h),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="15">%s</text>' % (left, title)]

    def panel(y0, points, label, color):
        hi = max(v for _, v in points) if points else 1
        hi = hi * 1.1 if hi > 0 else 1
        y = lambda v: y0 + ph - ph * v / hi  # noqa: E731
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>' % (
            left, y0, w - left - right, ph))
        for i in range(5):
            v = hi * i / 4
            out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>' % (left, w - right, y(v), y(v)))
            out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (
                left - 6, y(v) + 4, ("%.0f" % v) if hi >= 10 else ("%.1f" % v)))
        out.append('<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">%s</text>' % (
            y0 + ph / 2, y0 + ph / 2, label))
        # warm-up shaded; the boundary of the two halves compared dashed
        out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="#f3f3f3"/>' % (
            left + 1, y0 + 1, x(min(warmup, t_end)) - left, ph - 2))
        out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#999" stroke-dasharray="4 3"/>' % (
            x(half), x(half), y0, y0 + ph))
        if points:
            out.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (
                color, " ".join("%.1f,%.1f" % (x(t), y(v)) for t, v in points)))

    panel(top, rss, "daemon RSS (MiB)", "#c0392b")
    panel(top + ph + gap, rate, "events/s counted (10 s)", "#2471a3")
    y_axis = top + 2 * ph + gap
    for i in range(11):
        t = t_end * i / 10
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%.0f</text>' % (x(t), y_axis + 16, t))
    out.append('<text x="%d" y="%d" text-anchor="middle">seconds (grey: warm-up; dashed: the halves '
               'whose RSS maxima are compared)</text>' % ((left + w - right) / 2, y_axis + 36))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def stop_process(proc, timeout=60):
    """SIGTERM, then the exit status (SIGKILL after timeout: None)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode


def run(args, res):
    os.makedirs(args.workdir, exist_ok=True)
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    totals_path = os.path.join(args.workdir, "totals.json")
    log_path = os.path.join(args.workdir, "exporter.log")
    lg_log_path = os.path.join(args.workdir, "loadgen.log")
    common = ["--counters.new-series-hold-ms=0", "--web.listen-address=127.0.0.1:%d" % port,
              "--log.level=warn"]
    lg = [args.loadgen, "--rate", str(args.rate), "--duration", str(args.duration), "--seed", str(args.seed),
          "--bad-ratio", str(args.bad_ratio), "--totals", totals_path, "-q"]
    broker = None
    fifo = None
    if args.input == "kafka":
        from kafka_broker import KafkaBroker
        broker = KafkaBroker(os.path.join(args.workdir, "kafka"), keep_workdir=False, start_timeout=300)
        broker.start()
        broker.create_topics({"soak-costs": args.partitions, "soak-dlq": 1})
        res.check("local Kafka broker", True, broker.bootstrap)
        daemon_cmd = [args.exporter, "--kafka.brokers=" + broker.bootstrap, "--kafka.topics=soak-costs",
                      "--kafka.group-id=soak", "--kafka.dlq-topic=soak-dlq", "--kafka.state-topic=soak-state"]
        lg += ["--brokers", broker.bootstrap, "--topic", "soak-costs"]
    else:
        fifo = os.path.join(args.workdir, "events.fifo")
        if os.path.exists(fifo):
            os.unlink(fifo)
        os.mkfifo(fifo)
        daemon_cmd = [args.exporter, "--input=" + fifo]
        lg += ["--output", fifo, "--timestamps", "now"]
    daemon_cmd += common
    print("  " + " ".join(daemon_cmd))
    print("  " + " ".join(lg))
    sys.stdout.flush()
    procs = []
    try:
        with open(log_path, "wb") as log:
            daemon = subprocess.Popen(daemon_cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        procs.append(daemon)
        deadline = time.monotonic() + 120
        while scrape(base + "/metrics")[0] != 200:
            if daemon.poll() is not None or time.monotonic() > deadline:
                res.check("exporter started", False, "exit %s\n%s" % (daemon.poll(), tail(log_path)))
                return
            time.sleep(0.2)
        with open(lg_log_path, "wb") as lglog:
            loadgen = subprocess.Popen(lg, stdin=subprocess.DEVNULL, stdout=lglog, stderr=subprocess.STDOUT)
        procs.append(loadgen)
        lg_t0 = time.monotonic()
        sampler = Sampler(base + "/metrics", daemon.pid,
                          {"loadgen": loadgen.pid, "broker": broker.pid if broker else None},
                          os.path.join(args.workdir, "soak.csv"))
        sampler.start()
        last_print = 0
        while loadgen.poll() is None:
            time.sleep(1)
            if daemon.poll() is not None:
                break
            if time.monotonic() - last_print >= 30 and sampler.rows:
                r = sampler.rows[-1]
                print("  t=%4.0f s  RSS %.1f MiB  events %d  load %.1f  scrape %.0f ms" % (
                    r["t"], r["rss"] / 1024, r["events"], r["load1"], r["ms"]))
                sys.stdout.flush()
                last_print = time.monotonic()
        lg_secs = time.monotonic() - lg_t0
        lg_rc = loadgen.wait(timeout=120) if daemon.poll() is None else loadgen.poll()
        totals = None
        try:
            with open(totals_path) as f:
                totals = json.load(f)
        except (OSError, ValueError):
            pass
        produced = (totals or {}).get("events", {}).get("produced", 0)
        if not res.check("load generator delivered every event", lg_rc == 0 and totals and
                         totals["events"].get("failed") == 0 and produced > 0,
                         "exit %s, %s\n%s" % (lg_rc, (totals or {}).get("events"), tail(lg_log_path))):
            return
        # all events counted: the outcome counters show every produced event
        deadline = time.monotonic() + args.drain_timeout
        n = -1
        while time.monotonic() < deadline and daemon.poll() is None:
            status, body, _ = scrape(base + "/metrics", timeout=30)
            if status == 200:
                n = sum(event_counts(body.decode("utf-8", "replace")).values())
                if n >= produced:
                    break
            time.sleep(0.5)
        drained_at = time.monotonic() - lg_t0
        sampler.stop.set()
        sampler.join(timeout=30)
        rows = sampler.rows
        res.check("exporter counted every event", n == produced,
                  "%d of %d, %.1f s after the load generator started" % (n, produced, drained_at))
        status, body, _ = scrape(base + "/metrics", timeout=60)
        with open(os.path.join(args.workdir, "metrics.txt"), "wb") as f:
            f.write(body)
        check_scrape_exact(res, status, body, totals)

        # ---- figures ------------------------------------------------------
        scrapes = [r for r in rows if r["status"] == 200]
        res.check("every scrape answered", len(scrapes) == len(rows),
                  "%d of %d once-a-second scrapes got 200" % (len(scrapes), len(rows)))
        cpu0 = rows[0]["cpu"] if rows else 0
        daemon_cpu = cpu_seconds(daemon.pid)
        lg_cpu = [r["lg_cpu"] for r in rows if r["lg_cpu"] is not None]
        br_cpu = [r["br_cpu"] for r in rows if r["br_cpu"] is not None]
        loads = [r["load1"] for r in rows]
        ms = sorted(r["ms"] for r in scrapes)
        # the daemon's counting rate once warmed up, from the scrapes' event counts
        steady = [r for r in scrapes if args.warmup <= r["t"] <= lg_secs]
        steady_rate = ((steady[-1]["events"] - steady[0]["events"]) / (steady[-1]["t"] - steady[0]["t"])
                       if len(steady) > 1 and steady[-1]["t"] > steady[0]["t"] else None)
        figures = {
            "input": args.input,
            "rate_asked": args.rate,
            "events": produced,
            "loadgen_seconds": round(lg_secs, 1),
            "achieved_events_per_s": round(produced / lg_secs, 1),
            "counted_events_per_s_after_warmup": round(steady_rate, 1) if steady_rate else None,
            "counted_all_after_s": round(drained_at, 1),
            "daemon_cpu_s": round((daemon_cpu or 0) - (cpu0 or 0), 2),
            "daemon_cpu_us_per_event": round(((daemon_cpu or 0) - (cpu0 or 0)) / produced * 1e6, 3),
            "loadgen_cpu_s": round(lg_cpu[-1] - lg_cpu[0], 2) if lg_cpu else None,
            "broker_cpu_s": round(br_cpu[-1] - br_cpu[0], 2) if br_cpu else None,
            "load1_mean": round(sum(loads) / len(loads), 2) if loads else None,
            "load1_max": max(loads) if loads else None,
            "scrapes": len(rows),
            "scrape_ms_p50": round(ms[len(ms) // 2], 1) if ms else None,
            "scrape_ms_max": round(ms[-1], 1) if ms else None,
            "scrape_bytes": scrapes[-1]["bytes"] if scrapes else None,
            "rss_mib_start": round(rows[0]["rss"] / 1024, 1) if rows else None,
            "rss_mib_end": round(rows[-1]["rss"] / 1024, 1) if rows else None,
            "rss_mib_max": round(max(r["rss"] for r in rows) / 1024, 1) if rows else None,
        }
        # the flatness window ends when the load generator stopped sending
        fl = flatness(rows, args.warmup, min(lg_secs, rows[-1]["t"]) if rows else 0)
        if fl and args.no_flat_check:
            a, b, half = fl
            figures.update({"rss_growth_mib": round((b - a) / 1024, 2)})
            print("  RSS growth %.2f MiB, not checked (--no-flat-check)" % ((b - a) / 1024))
        elif fl:
            a, b, half = fl
            figures.update({"rss_max_mib_warmup_to_half": round(a / 1024, 2),
                            "rss_max_mib_second_half": round(b / 1024, 2),
                            "rss_growth_mib": round((b - a) / 1024, 2)})
            res.check("RSS flat after warm-up", (b - a) / 1024 <= args.flat_mib,
                      "max RSS %.2f MiB in [%.0f s, %.0f s), %.2f MiB in [%.0f s, %.0f s]: growth %.2f MiB "
                      "(limit %.1f MiB)" % (a / 1024, args.warmup, half, b / 1024, half,
                                            min(lg_secs, rows[-1]["t"]), (b - a) / 1024, args.flat_mib))
        else:
            res.check("RSS flat after warm-up", False, "too few samples after the %d s warm-up" % args.warmup)
        with open(os.path.join(args.workdir, "figures.json"), "w") as f:
            json.dump(figures, f, indent=1)
        print("  figures: " + json.dumps(figures))
        if rows:
            write_svg(os.path.join(args.workdir, "soak.svg"), rows, args.warmup, fl[2] if fl else lg_secs / 2,
                      "ai-finops-exporter soak: %d events in %.0f s (%.0f/s asked, %.0f/s achieved, %s input), "
                      "one scrape a second" % (produced, lg_secs, args.rate, produced / lg_secs, args.input))

        # ---- exit --------------------------------------------------------
        rc = stop_process(daemon)
        log_text = open(log_path, "rb").read().decode("utf-8", "replace")
        m = SANITIZER_RE.search(log_text)
        res.check("exporter exits 0 on SIGTERM, no sanitizer report", rc == 0 and not m,
                  "exit %s%s" % (rc, ("; " + log_text[max(0, m.start() - 200):m.start() + 1500]) if m else ""))
    finally:
        for p in procs:
            stop_process(p, timeout=30)
        if broker:
            broker.close()
        if fifo and os.path.exists(fifo):
            os.unlink(fifo)


def replot(workdir, warmup):
    """Redraws soak.svg from the soak.csv and figures.json of a finished run."""
    rows = []
    with open(os.path.join(workdir, "soak.csv")) as f:
        next(f)
        for line in f:
            v = line.rstrip("\n").split(",")
            rows.append({"t": float(v[0]), "rss": int(v[1]), "events": int(v[6])})
    with open(os.path.join(workdir, "figures.json")) as f:
        fig = json.load(f)
    end = fig["loadgen_seconds"]
    write_svg(os.path.join(workdir, "soak.svg"), rows, warmup, min(end, rows[-1]["t"]) / 2,
              "ai-finops-exporter soak: %d events in %.0f s (%.0f/s asked, %.0f/s achieved, %s input), "
              "one scrape a second" % (fig["events"], end, fig["rate_asked"], fig["achieved_events_per_s"],
                                       fig["input"]))


def main(argv=None):
    if argv is None and len(sys.argv) == 4 and sys.argv[1] == "--replot":
        replot(sys.argv[2], int(sys.argv[3]))  # bench/soak.py --replot WORKDIR WARMUP
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exporter", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--input", choices=("kafka", "fifo"), default="kafka")
    ap.add_argument("--rate", type=int, default=50000, help="events/s the load generator sends")
    ap.add_argument("--duration", type=int, default=600, help="seconds of load")
    ap.add_argument("--warmup", type=int, default=60, help="seconds before RSS must be flat")
    ap.add_argument("--flat-mib", type=float, default=8.0,
                    help="largest allowed growth of max RSS, second half over [warm-up, half)")
    ap.add_argument("--no-flat-check", action="store_true",
                    help="report the RSS growth without checking it (sanitizer builds: ASan's quarantine "
                    "keeps freed memory)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--bad-ratio", type=float, default=0.001, help="share of malformed events (dead-lettered)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--drain-timeout", type=int, default=300,
                    help="seconds to wait, after the load generator ends, for every event to be counted")
    args = ap.parse_args(argv)
    args.exporter = os.path.abspath(args.exporter)
    args.loadgen = os.path.abspath(args.loadgen)
    res = Results()
    run(args, res)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed or not res.passed else 0


if __name__ == "__main__":
    sys.exit(main())
