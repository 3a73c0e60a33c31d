#!/usr/bin/env python3
"""Input, signals and start-up of the real daemon (issue 14, items 4-6).

Each check starts BINARY on loopback and waits for conditions with
generous deadlines (never a fixed sleep as an assertion):
  - start-up refusals (exit 2, a clear message, never serving): a missing,
    unreadable or directory --input; --check-config with an unknown or
    invalid kafka.properties entry, an empty or UTF-16 config file; a
    privileged port as non-root (run as nobody through setpriv);
  - a FIFO with no writer, and one with an idle writer, stop on SIGTERM;
  - SIGUSR1/SIGUSR2 are logged and ignored; SIGHUP applies a log.level
    change, refuses an events.max_bytes change naming the key and an
    invalid file, and no counter changes or resets across any of them;
  - a second SIGTERM during a long Kafka shutdown exits at once (status 3,
    said in the log); the default Kafka shutdown ends on its own;
  - /dev/zero (1 GiB read) and a 256 MiB line keep the peak RSS within
    32 MiB of an idle daemon's; the line counts as one too_large.

Prints one line per check and `N passed, N failed` last; exit 1 on failure.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import Results, free_port  # noqa: E402

EVENT = b'{"team":"a","project":"b","cost_usd":1.25}\n'
DEADLINE = 60.0
# The reloaded file: log.level and events.max_bytes vary; no zero-hold, so
# counters compared across signals cannot change with time.
CONF = "log:\n  level: %s\ncounters:\n  new_series_hold_ms: 0\nevents:\n  max_bytes: %d\n"


class Checks(Results):
    """Results that show the log excerpt only when a check fails."""

    def check(self, name, ok, detail="", always=False):
        return super().check(name, ok, detail if (always or not ok) else "")


def wait(cond, deadline=DEADLINE, step=0.05):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


class Daemon:
    def __init__(self, binary, args, log_path, user=None, stdin=subprocess.DEVNULL):
        self.log_path = log_path
        self.port = free_port()
        cmd = [binary, "--web.listen-address", "127.0.0.1:%d" % self.port] + args
        if user:
            cmd = ["setpriv", "--reuid", user, "--regid", user, "--clear-groups"] + cmd
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=self.log, stderr=self.log)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, needle, count=1, deadline=DEADLINE):
        return wait(lambda: self.text().count(needle) >= count or self.proc.poll() is not None
                    and self.text().count(needle) >= count, deadline)

    def serving(self):
        return self.wait_log("serving metrics") and self.proc.poll() is None

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port, timeout=10) as r:
            return r.read().decode()

    def metrics_or_none(self):
        try:
            return self.metrics()
        except OSError:  # the daemon died: the check that asked fails
            return None

    def value(self, series):
        text = self.metrics_or_none()
        m = text and re.search(r"^%s (\S+)$" % re.escape(series), text, re.M)
        return m.group(1) if m else None

    def counters(self):
        """Every sample of the event and cost families, for before/after."""
        text = self.metrics_or_none()
        return text and sorted(l for l in text.splitlines()
                               if l.startswith(("ai_finops_events", "ai_finops_cost")))

    def status(self, path):
        try:
            with open("/proc/%d/%s" % (self.proc.pid, path)) as f:
                return f.read()
        except OSError:
            return ""

    def kb(self, key):
        m = re.search(r"^%s:\s+(\d+)" % key, self.status("status"), re.M)
        return int(m.group(1)) if m else 0

    def rchar(self):
        m = re.search(r"^rchar: (\d+)", self.status("io"), re.M)
        return int(m.group(1)) if m else 0

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, deadline=120.0):
        try:
            return self.proc.wait(deadline)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def feed(fd, data):
    try:
        return os.write(fd, data) == len(data)
    except OSError:  # the daemon died
        return False


def run(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120, **kw)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def startup_refusals(res, a, work):
    def refuse(name, args, needle, user=None):
        d = Daemon(a.binary, args, os.path.join(work, name + ".log"), user=user)
        rc = d.wait_exit()
        text = d.text()
        d.close()
        res.check("start refuses %s: exit 2, says %r, never serves" % (name, needle),
                  rc == 2 and needle in text and "serving metrics" not in text,
                  "exit %s, log:\n%s" % (rc, text[-600:]))

    refuse("missing input", ["--input", os.path.join(work, "nope.jsonl")],
           "No such file or directory")
    refuse("directory input", ["--input", work], "is a directory")
    can_setpriv = os.geteuid() == 0 and shutil.which("setpriv")
    locked = os.path.join(work, "locked.jsonl")
    with open(locked, "wb") as f:
        f.write(EVENT)
    os.chmod(locked, 0)
    if os.geteuid() != 0:
        refuse("unreadable input", ["--input", locked], "Permission denied")
        refuse("privileged port", ["--input", "/dev/null", "--web.listen-address", "127.0.0.1:81"],
               "ports below 1024 need root or CAP_NET_BIND_SERVICE")
    elif can_setpriv:
        os.chmod(work, 0o755)
        refuse("unreadable input", ["--input", locked], "Permission denied", user="65534")
        log = os.path.join(work, "port81.log")
        with open(log, "wb") as out:
            p = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534",
                                "--clear-groups", a.binary, "--input", "/dev/null",
                                "--web.listen-address", "127.0.0.1:81"],
                               stdout=out, stderr=out, timeout=120)
        text = open(log, encoding="utf-8", errors="replace").read()
        needle = "ports below 1024 need root or CAP_NET_BIND_SERVICE"
        res.check("start refuses privileged port as nobody: exit 2, says %r" % needle,
                  p.returncode == 2 and needle in text, "exit %s, log:\n%s" % (p.returncode, text))
    else:
        print("SKIP unreadable input and privileged port: running as root without setpriv")

    def check_config(name, args, want_rc, needle):
        rc, out = run([a.binary, "--check-config"] + args)
        res.check("--check-config %s: exit %d, says %r" % (name, want_rc, needle),
                  rc == want_rc and needle in out, "exit %s: %s" % (rc, out.strip()))

    check_config("unknown kafka property", ["--kafka.properties", "fetch.min.bytez=1"], 2,
                 "No such configuration property: \"fetch.min.bytez\"")
    check_config("invalid kafka value", ["--kafka.properties", "fetch.min.bytes=lots"], 2,
                 "Invalid value for configuration property \"fetch.min.bytes\"")
    check_config("valid kafka property", ["--kafka.properties", "fetch.min.bytes=1"], 0,
                 "configuration is valid")
    empty = os.path.join(work, "empty.yaml")
    with open(empty, "w") as f:
        f.write("# nothing here\n---\n")
    check_config("empty file", ["--config", empty], 2, "the configuration file is empty")
    utf16 = os.path.join(work, "utf16.yaml")
    with open(utf16, "wb") as f:
        f.write("log:\n  level: debug\n".encode("utf-16"))
    check_config("UTF-16 file", ["--config", utf16], 2, "encoded as UTF-16; save it as UTF-8")
    utf8 = os.path.join(work, "utf8.yaml")
    with open(utf8, "wb") as f:
        f.write("log:\n  level: debug\n".encode("utf-8-sig"))
    check_config("UTF-8 file with BOM", ["--config", utf8], 0, "configuration is valid")
    check_config("missing input", ["--input", os.path.join(work, "nope")], 2,
                 "No such file or directory")


def fifo_and_signals(res, a, work):
    fifo = os.path.join(work, "events.fifo")
    os.mkfifo(fifo)
    d = Daemon(a.binary, ["--input", fifo], os.path.join(work, "fifo-nowriter.log"))
    ok = d.serving()
    d.signal(signal.SIGTERM)
    rc = d.wait_exit()
    res.check("FIFO with no writer: serves, then SIGTERM exits 0", ok and rc == 0,
              "exit %s, log:\n%s" % (rc, d.text()[-600:]))
    d.close()

    conf = os.path.join(work, "reload.yaml")

    def write_conf(text):
        with open(conf + ".tmp", "w") as f:
            f.write(text)
        os.replace(conf + ".tmp", conf)

    write_conf(CONF % ("info", 65536))
    d = Daemon(a.binary, ["--config", conf, "--input", fifo], os.path.join(work, "fifo.log"))
    writer = os.open(fifo, os.O_WRONLY)
    try:
        ok = d.serving()
        ok = ok and feed(writer, EVENT * 3) and wait(lambda: d.value('ai_finops_events_total{outcome="accepted"}') == "3")
        # New series read 0 for counters.new_series_hold_ms (0 here, so
        # that what is compared below cannot change with time).
        ok = ok and wait(lambda: d.value('ai_finops_cost_dollars_total{team="a",project="b",'
                                         'source="unknown"}') == "3.75")
        res.check("FIFO with an idle writer: 3 events counted", ok, d.text()[-600:])
        before = d.counters() or ["no metrics before the signals"]

        d.signal(signal.SIGUSR1)
        d.signal(signal.SIGUSR2)
        ok = d.wait_log('msg="signal ignored" signal=SIGUSR2') and \
            'msg="signal ignored" signal=SIGUSR1' in d.text()
        res.check("SIGUSR1 and SIGUSR2 are logged and ignored, counters unchanged",
                  ok and d.proc.poll() is None and d.counters() == before, d.text()[-600:])

        write_conf(CONF % ("debug", 65536))
        d.signal(signal.SIGHUP)
        ok = d.wait_log('msg="configuration reloaded"')
        res.check("SIGHUP applies a log.level change; counters unchanged",
                  ok and 'msg="configuration reload: applying" key=log.level' in d.text()
                  and d.value("ai_finops_config_last_reload_successful") == "1"
                  and d.counters() == before, d.text()[-800:])

        write_conf(CONF % ("debug", 1000))
        d.signal(signal.SIGHUP)
        ok = d.wait_log("key=events.max_bytes")
        res.check("SIGHUP refuses an events.max_bytes change naming the key; keeps running",
                  ok and "cannot change while running" in d.text() and d.proc.poll() is None
                  and d.value("ai_finops_config_last_reload_successful") == "0"
                  and d.value('ai_finops_config_reloads_total{result="refused"}') == "1"
                  and d.counters() == before, d.text()[-800:])

        write_conf("log: [unclosed\n")
        d.signal(signal.SIGHUP)
        ok = d.wait_log("configuration is not valid")
        res.check("SIGHUP refuses an invalid file; keeps running",
                  ok and d.proc.poll() is None and d.counters() == before, d.text()[-800:])

        # Still the old configuration: a 2,000-byte event (over the refused
        # 1,000, under the running 65,536) is accepted.
        big = b'{"team":"a","project":"b","cost_usd":1,"pad":"' + b"x" * 1950 + b'"}\n'
        ok = feed(writer, big) and wait(lambda: d.value('ai_finops_events_total{outcome="accepted"}') == "4")
        res.check("after the refused reloads the running configuration still applies", ok,
                  d.text()[-600:])

        d.signal(signal.SIGTERM)
        rc = d.wait_exit()
        res.check("FIFO with an idle writer: SIGTERM exits 0", rc == 0,
                  "exit %s, log:\n%s" % (rc, d.text()[-600:]))
    finally:
        os.close(writer)
        d.close()


def second_signal(res, a, work):
    # Nothing listens on this port: the final checkpoint cannot be written,
    # so the shutdown waits for kafka.shutdown_timeout_ms (10 minutes here).
    dead = "127.0.0.1:%d" % free_port()
    d = Daemon(a.binary, ["--kafka.brokers", dead, "--kafka.shutdown-timeout-ms", "600000"],
               os.path.join(work, "kafka-second.log"))
    ok = d.serving()
    d.signal(signal.SIGTERM)
    ok = ok and d.wait_log("shutting down")
    d.signal(signal.SIGTERM)
    rc = d.wait_exit()
    res.check("a second SIGTERM during a long shutdown exits at once with status 3, in the log",
              ok and rc == 3 and 'msg="second signal: stopping at once' in d.text(),
              "exit %s, log:\n%s" % (rc, d.text()[-800:]))
    d.close()

    d = Daemon(a.binary, ["--kafka.brokers", dead], os.path.join(work, "kafka-default.log"))
    ok = d.serving()
    d.signal(signal.SIGTERM)
    t0 = time.monotonic()
    rc = d.wait_exit()
    took = time.monotonic() - t0
    res.check("Kafka input with no broker: the default shutdown ends by itself",
              ok and rc is not None and rc in (0, 3),
              "exit %s after %.1f s (bound: kafka.shutdown_timeout_ms 10 s + 5 s)" % (rc, took),
              always=True)
    d.close()


def memory_flat(res, a, work):
    fifo = os.path.join(work, "idle.fifo")
    os.mkfifo(fifo)
    idle = Daemon(a.binary, ["--input", fifo], os.path.join(work, "idle.log"))
    idle.serving()
    wait(lambda: idle.kb("VmHWM") > 0)
    base = idle.kb("VmHWM")
    idle.signal(signal.SIGTERM)
    idle.wait_exit()
    idle.close()

    d = Daemon(a.binary, ["--input", "/dev/zero"], os.path.join(work, "zero.log"))
    ok = d.serving() and wait(lambda: d.rchar() >= 1 << 30, deadline=300)
    got, hwm = d.rchar(), d.kb("VmHWM")
    d.signal(signal.SIGTERM)
    rc = d.wait_exit()
    res.check("/dev/zero: 1 GiB read, peak RSS within 32 MiB of an idle daemon's, SIGTERM exits 0",
              ok and hwm - base < 32 * 1024 and rc == 0,
              "read %d MiB, peak RSS %d kB (idle %d kB), exit %s" % (got >> 20, hwm, base, rc),
              always=True)
    d.close()

    huge = os.path.join(work, "huge.jsonl")
    with open(huge, "wb") as f:
        f.truncate(256 << 20)  # a 256 MiB line of zero bytes (sparse)
        f.seek(256 << 20)
        f.write(b"\n" + EVENT)
    d = Daemon(a.binary, ["--input", huge], os.path.join(work, "huge.log"))
    ok = d.serving() and d.wait_log("end of input", deadline=300)
    hwm = d.kb("VmHWM")
    ok = ok and wait(lambda: d.value('ai_finops_events_total{outcome="accepted"}') == "1" and
                     d.value('ai_finops_events_rejected_total{reason="too_large"}') == "1")
    res.check("256 MiB line: one too_large, the next event counted, peak RSS within 32 MiB",
              ok and hwm - base < 32 * 1024,
              "peak RSS %d kB (idle %d kB)%s" % (hwm, base, "" if ok else "; log:\n" + d.text()[-400:]),
              always=True)
    d.signal(signal.SIGTERM)
    d.wait_exit()
    d.close()
    os.unlink(huge)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    res = Checks()
    startup_refusals(res, a, a.workdir)
    fifo_and_signals(res, a, a.workdir)
    second_signal(res, a, a.workdir)
    memory_flat(res, a, a.workdir)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
