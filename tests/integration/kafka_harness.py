"""Helpers for the Kafka end-to-end tests of ai-finops-exporter (stdlib + kcat).

* Daemon      - one ai-finops-exporter process consuming Kafka; restartable
                on the same HTTP port; always killed at the end (context
                manager, atexit hook, and the kernel's parent-death signal
                through `setpriv --pdeathsig KILL` when available).
* Scraper     - a thread that GETs /metrics every ~200 ms (every 20 ms while
                the daemon is unreachable) and computes what Prometheus's
                increase() would count, exactly, in integers.
* events      - gen_events.py output (cached per parameters), keyed by team,
                and produced with kcat (files, bursts, or a paced stream).
* kcat        - end offsets, consuming a topic with exact bytes and headers.

What increase() sees (Scraper): for each (process incarnation, series) the
last sample is kept. The first sample of a series in an incarnation adds
nothing; a later sample v adds v - last when v >= last, else v (a counter
reset). The sum over incarnations is the observed total. The incarnation is
the daemon's process_start_time_seconds (a restart on the same port is a new
incarnation), so a restarted daemon's series start from scratch, just as the
daemon intends (it shows every series as 0 to a scraper the first time).
A second, pure-Prometheus computation keyed by the series alone (no
incarnation; reset detection only) is kept too as a cross-check.

Daemons must be started from the main thread: the parent-death signal is
tied to the thread that forked the child.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import expo  # noqa: E402
import gen_events  # noqa: E402
from testlib import COST, EVENTS, GPU, REJECTED, TOKENS, free_port  # noqa: E402


# family -> (label names, value parser, value formatter)
FAMILIES = {
    COST: (("team", "project", "source"), expo.parse_decimal_nanos, expo.format_nanos),
    TOKENS: (("team", "project", "provider", "model", "kind"), expo.parse_uint, str),
    GPU: (("team", "project", "instance_type", "gpu_type"), expo.parse_decimal_nanos, expo.format_nanos),
    EVENTS: (("outcome",), expo.parse_uint, str),
    REJECTED: (("reason",), expo.parse_uint, str),
}
DEFAULT_TRACKED = (COST, EVENTS, REJECTED)

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
SETPRIV = shutil.which("setpriv")
# Producer tuning for bulk loads (kcat's librdkafka 2.0.2 defaults are fine
# for correctness; these only make 1M messages go faster).
PRODUCER_PROPS = ("-X", "linger.ms=20", "-X", "batch.num.messages=10000",
                  "-X", "queue.buffering.max.messages=1000000",
                  "-X", "queue.buffering.max.kbytes=1048576")

_T0 = time.monotonic()


def log(msg):
    print("[%7.1f s] %s" % (time.monotonic() - _T0, msg), flush=True)


# ---------------------------------------------------------------------------
# network helpers

def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http_get(url, timeout=10.0):
    """Returns (status, body); status None when the server is unreachable or
    the response was cut (a scrape that did not complete)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        try:
            return e.code, e.read()
        except Exception:
            return e.code, b""
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError, ValueError,
            http.client.HTTPException):
        return None, b""


# ---------------------------------------------------------------------------
# events

class EventSet:
    """Generated events: `lines` (the events: non-blank lines, bytes, file
    order; a blank line - only spaces, tabs, CRs - is no event) and `totals`
    (gen_events.py's expected totals JSON)."""

    def __init__(self, path, totals):
        self.path = path
        self.totals = totals
        self._lines = None

    @property
    def lines(self):
        if self._lines is None:
            with open(self.path, "rb") as f:
                data = f.read()
            # whitespace-only lines are blank lines of the file format, not events
            self._lines = [ln for ln in data.split(b"\n") if ln.strip(b" \t\r")]
        return self._lines

    @property
    def count(self):
        return self.totals["lines"]


def _gen_fingerprint():
    try:
        with open(os.path.join(HERE, "gen_events.py"), "rb") as f:
            return "%08x" % zlib.crc32(f.read())
    except OSError:
        return "?"


def generate(workdir, name, count, seed, bad_ratio=0.003, unpriced_ratio=0.0):
    """Writes WORKDIR/NAME.jsonl + NAME.totals.json with gen_events.py; reuses
    them when the same parameters (and generator) produced them before."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, name + ".jsonl")
    tpath = os.path.join(workdir, name + ".totals.json")
    params = {"count": count, "seed": seed, "bad_ratio": bad_ratio,
              "unpriced_ratio": unpriced_ratio, "gen": _gen_fingerprint()}
    try:
        with open(tpath) as f:
            cached = json.load(f)
        if cached.get("params") == params and os.path.getsize(path) > 0:
            return _checked(EventSet(path, cached["totals"]))
    except (OSError, ValueError, KeyError):
        pass
    t0 = time.monotonic()
    totals = gen_events.generate(path, count, seed=seed, bad_ratio=bad_ratio,
                                 unpriced_ratio=unpriced_ratio)
    with open(tpath, "w") as f:
        json.dump({"params": params, "totals": totals}, f)
    log("generated %s: %d events (%d accepted, %d rejected) in %.1f s"
        % (name, totals["lines"], totals["events"]["accepted"], totals["events"]["rejected"],
           time.monotonic() - t0))
    return _checked(EventSet(path, totals))


def _checked(es):
    if len(es.lines) != es.count:
        raise RuntimeError("%s holds %d non-blank lines but its totals count %d events"
                           % (es.path, len(es.lines), es.count))
    return es


_TEAM_RE = re.compile(rb'"team"\s*:\s*"((?:[^"\\]|\\.)*)"')


def event_key(line):
    """The message key of an event line: its team (decoded, so an escaped and
    a raw spelling of one team share a partition); "-" when it has none."""
    m = _TEAM_RE.search(line)
    if not m:
        return b"-"
    raw = m.group(1)
    try:
        team = json.loads(b'"' + raw + b'"')
        key = team.encode("utf-8", "surrogateescape")
    except (ValueError, UnicodeError):
        key = raw
    key = key.replace(b"\t", b" ").replace(b"\n", b" ").replace(b"\r", b" ")
    return key or b"-"


def partition_of(key, partitions):
    """librdkafka's default partitioner (consistent_random) for a non-empty key."""
    return zlib.crc32(key) % partitions


def keyed(lines, key_fn=event_key):
    """[(key, value)] for event lines."""
    return [(key_fn(ln), ln) for ln in lines]


def split_tail_per_partition(pairs, partitions):
    """Splits keyed messages into (rest, tail) where tail holds the last
    message of every partition that gets any: produced last, it makes every
    partition move after a disruption, so a consumer's applied offsets show
    when it has read everything."""
    last = {}
    for i, (k, _) in enumerate(pairs):
        last[partition_of(k, partitions)] = i
    idx = set(last.values())
    rest = [p for i, p in enumerate(pairs) if i not in idx]
    tail = [p for i, p in enumerate(pairs) if i in idx]
    return rest, tail


def write_keyed(path, pairs):
    with open(path, "wb") as f:
        for k, v in pairs:
            f.write(k + b"\t" + v + b"\n")
    return path


# ---------------------------------------------------------------------------
# kcat

def kcat(args, timeout=120, input_bytes=None):
    if not KCAT:
        raise RuntimeError("kcat is not installed (Debian package kcat)")
    p = subprocess.run([KCAT] + list(args), input=input_bytes, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout,
                       stdin=None if input_bytes is not None else subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError("kcat %s exited %d: %s" % (" ".join(args), p.returncode,
                                                    p.stderr.decode("utf-8", "replace")[-2000:]))
    return p.stdout


def produce_file(boot, topic, path, timeout=600):
    """Produces a key<TAB>value file; raises if any delivery failed."""
    kcat(["-b", boot, "-t", topic, "-P", "-K", "\t", "-l", path] + list(PRODUCER_PROPS),
         timeout=timeout)


def produce_pairs(boot, topic, pairs, workdir, tag):
    path = os.path.join(workdir, "produce-%s-%d.txt" % (tag, time.monotonic_ns()))
    write_keyed(path, pairs)
    try:
        produce_file(boot, topic, path)
    finally:
        os.unlink(path)
    return len(pairs)


class StreamProducer(threading.Thread):
    """One kcat producer fed through its stdin at `rate` messages/s (in small
    chunks), like a live service emitting events. join() then check .error."""

    def __init__(self, boot, topic, pairs, rate, chunk_interval=0.05, name="stream"):
        super().__init__(name=name, daemon=True)
        self.boot, self.topic, self.pairs, self.rate = boot, topic, pairs, rate
        self.chunk_interval = chunk_interval
        self.sent = 0
        self.error = None
        self._stop_evt = threading.Event()
        self.proc = None

    def run(self):
        try:
            self.proc = subprocess.Popen(
                [KCAT, "-b", self.boot, "-t", self.topic, "-P", "-K", "\t", "-X", "linger.ms=5"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            t0 = time.monotonic()
            n = len(self.pairs)
            while self.sent < n and not self._stop_evt.is_set():
                due = min(n, int((time.monotonic() - t0) * self.rate) + 1)
                if due > self.sent:
                    chunk = self.pairs[self.sent:due]
                    self.proc.stdin.write(b"".join(k + b"\t" + v + b"\n" for k, v in chunk))
                    self.proc.stdin.flush()
                    self.sent = due
                time.sleep(self.chunk_interval)
            self.proc.stdin.close()
            err = self.proc.stderr.read()
            rc = self.proc.wait(timeout=120)
            if rc != 0:
                self.error = "kcat exited %d: %s" % (rc, err.decode("utf-8", "replace")[-2000:])
        except Exception as e:  # reported by the test
            self.error = "%s: %s" % (type(e).__name__, e)
            if self.proc and self.proc.poll() is None:
                self.proc.kill()

    def stop(self):
        self._stop_evt.set()


def end_offsets(boot, topic, partitions):
    """High watermarks (next offset) of each partition."""
    out = []
    for p in range(partitions):
        text = kcat(["-b", boot, "-Q", "-t", "%s:%d:-1" % (topic, p)], timeout=60).decode()
        m = re.search(r"\[%d\] offset (-?\d+)" % p, text)
        if not m:
            raise RuntimeError("unexpected kcat -Q output: %r" % text)
        out.append(int(m.group(1)))
    return out


class Message:
    __slots__ = ("partition", "offset", "key", "value", "headers")

    def __init__(self, partition, offset, key, value, headers):
        self.partition, self.offset, self.key, self.value, self.headers = (
            partition, offset, key, value, headers)

    def __repr__(self):
        return "Message(p%d@%d key=%r %d bytes headers=%r)" % (
            self.partition, self.offset, self.key, len(self.value or b""), self.headers)


def consume_all(boot, topic, timeout=120):
    """Every message of a topic with exact key/value bytes and headers
    (values of our headers never contain ',' or '=')."""
    out = kcat(["-b", boot, "-t", topic, "-C", "-e", "-q", "-o", "beginning",
                "-f", "%p %o %K %S %h\\n%k%s\\n"], timeout=timeout)
    msgs = []
    i = 0
    while i < len(out):
        nl = out.index(b"\n", i)
        head = out[i:nl].decode("utf-8", "replace").split(" ", 4)
        part, off, klen, vlen = (int(x) for x in head[:4])
        hdrs = {}
        htext = head[4] if len(head) > 4 else ""
        for kv in filter(None, htext.split(",")):
            k, _, v = kv.partition("=")
            hdrs[k] = v
        i = nl + 1
        key = out[i:i + klen] if klen >= 0 else None
        i += max(klen, 0)
        value = out[i:i + vlen] if vlen >= 0 else None
        i += max(vlen, 0)
        if out[i:i + 1] != b"\n":
            raise RuntimeError("kcat output out of sync at byte %d" % i)
        i += 1
        msgs.append(Message(part, off, key, value, hdrs))
    return msgs


# ---------------------------------------------------------------------------
# the daemon

_LIVE = set()
_LIVE_LOCK = threading.Lock()


def _kill_live():
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:
        try:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        except Exception:
            pass


atexit.register(_kill_live)

# Kafka client timeouts for tests: a SIGKILLed member leaves the group
# after session.timeout.ms, so a restarted daemon gets its partitions back
# within ~3 s instead of Kafka's 45 s default. The broker must allow it
# (group.min.session.timeout.ms, see BROKER_EXTRA_PROPS).
TEST_KAFKA_PROPERTIES = {
    "session.timeout.ms": "3000",
    "heartbeat.interval.ms": "500",
}
# offset.metadata.max.bytes: room for the commit claims of the kill test,
# whose preload creates about a thousand series in its first scrapes (see
# KILL_CLAIM_BYTES in test_kafka_delivery.py).
BROKER_EXTRA_PROPS = "group.min.session.timeout.ms=1000\noffset.metadata.max.bytes=65536\n"


def _yaml_str(s):
    return json.dumps(str(s))  # JSON strings are valid YAML double-quoted scalars


class Daemon:
    """ai-finops-exporter consuming `topic` as a member of `group`."""

    def __init__(self, binary, workdir, name, brokers, topic, group, dlq_topic,
                 port=None, threads=2, properties=None, extra_args=(), log_level="info"):
        self.binary = binary
        self.workdir = workdir
        self.name = name
        self.brokers = brokers
        self.topic = topic
        self.group = group
        self.dlq_topic = dlq_topic
        self.port = port or free_port()
        self.threads = threads
        self.properties = dict(TEST_KAFKA_PROPERTIES if properties is None else properties)
        self.extra_args = list(extra_args)
        self.log_level = log_level
        self.proc = None
        self.starts = []  # monotonic start times, one per incarnation
        self.exit_codes = []
        os.makedirs(workdir, exist_ok=True)
        self.log_path = os.path.join(workdir, name + ".log")
        self.config_path = os.path.join(workdir, name + ".yaml")
        with open(self.log_path, "wb"):
            pass

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def metrics_url(self):
        return self.base + "/metrics"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def command(self):
        cmd = [self.binary]
        if self.properties:
            with open(self.config_path, "w") as f:
                f.write("kafka:\n  properties:\n")
                for k, v in sorted(self.properties.items()):
                    f.write("    %s: %s\n" % (k, _yaml_str(v)))
            cmd += ["--config", self.config_path]
        cmd += ["--kafka.brokers=" + self.brokers, "--kafka.topics=" + self.topic,
                "--kafka.threads=%d" % self.threads, "--kafka.group-id=" + self.group,
                "--kafka.dlq-topic=" + self.dlq_topic,
                "--web.listen-address=127.0.0.1:%d" % self.port,
                "--log.level=" + self.log_level] + self.extra_args
        return cmd

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("start daemons from the main thread (parent-death signal)")
        cmd = self.command()
        with open(self.log_path, "ab") as f:
            f.write(("==== [%.3f] incarnation %d: %s\n" % (time.monotonic() - _T0, len(self.starts) + 1,
                                                         " ".join(cmd))).encode())
        prefix = [SETPRIV, "--pdeathsig", "KILL"] if SETPRIV else []
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(prefix + cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT)
        finally:
            logf.close()
        with _LIVE_LOCK:
            _LIVE.add(self.proc)
        self.starts.append(time.monotonic())
        return self.proc

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _reaped(self, rc):
        with _LIVE_LOCK:
            _LIVE.discard(self.proc)
        self.exit_codes.append(rc)
        with open(self.log_path, "ab") as f:
            f.write(("==== [%.3f] exited %s\n" % (time.monotonic() - _T0, rc)).encode())
        return rc

    def kill(self):
        """SIGKILL; returns when the process is gone."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        return self._reaped(self.proc.wait())

    def terminate(self, timeout=60):
        """SIGTERM, wait; returns the exit status (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self._reaped(self.proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def readyz(self, timeout=5):
        return http_get(self.base + "/readyz", timeout=timeout)[0]

    def wait_ready(self, timeout=60, want=200):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None and want == 200:
                return False
            if self.readyz(timeout=2) == want:
                return True
            time.sleep(0.05)
        return False

    def log_tail(self, n=40, grep=None):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        if grep:
            lines = [ln for ln in lines if re.search(grep, ln)]
        return "\n".join(lines[-n:])

    def close(self):
        if self.alive():
            self.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ---------------------------------------------------------------------------
# the scraper

_KAFKA_LINE_RE = re.compile(
    r'^(ai_finops_(?:kafka|dlq)_[a-z_]+)(?:\{topic="([^"]*)",partition="(\d+)"\})? (-?\d+)$')
_START_RE = re.compile(r"^process_start_time_seconds (\S+)$", re.M)


class Snap:
    """One completed scrape."""
    __slots__ = ("time", "incarnation", "values", "kafka", "parts", "seq")

    def __init__(self, t, incarnation, values, kafka, parts, seq):
        self.time = t
        self.incarnation = incarnation
        self.values = values  # family -> {key tuple: int}
        self.kafka = kafka    # self-metric name -> int (unlabeled ones)
        self.parts = parts    # metric name -> {(topic, partition): int}
        self.seq = seq

    def events(self):
        ev = self.values.get(EVENTS, {})
        return sum(ev.values())


class Incarnation:
    __slots__ = ("key", "first_time", "last_time", "scrapes", "first", "last", "prev", "observed_events",
                 "nonzero_first")

    def __init__(self, key, t):
        self.key = key
        self.first_time = self.last_time = t
        self.scrapes = 0
        self.first = None
        self.last = None
        self.prev = None  # the scrape before `last`
        self.observed_events = 0
        self.nonzero_first = 0


class Scraper(threading.Thread):
    """Scrapes one daemon's /metrics every `interval` s (start to start) and
    accumulates what increase() sees, per series, exactly."""

    def __init__(self, url, interval=0.2, name="scraper", tracked=DEFAULT_TRACKED, timeout=10.0,
                 dump_path=None):
        super().__init__(name=name, daemon=True)
        self.url = url
        self.interval = interval
        self.tracked = tuple(tracked)
        self.timeout = timeout
        self.dump_path = dump_path
        self._stop_evt = threading.Event()
        self._cond = threading.Condition()
        self.ok = 0
        self.failed = 0
        self.seq = 0
        self.latest = None
        self.latest_body = b""
        self.parse_errors = []
        self.incarnations = {}          # key -> Incarnation, in order of appearance
        self._last = {}                 # (incarnation, family, key) -> value
        self._last_prom = {}            # (family, key) -> value (pure Prometheus)
        self.observed = {f: {} for f in self.tracked}
        self.observed_prom = {f: {} for f in self.tracked}
        self.nonzero_first = []         # (incarnation, family, key, value), first few
        self.nonzero_first_sum = {f: 0 for f in self.tracked}  # what increase() missed that way
        self.resets = 0

    # -- thread ----------------------------------------------------------------
    def run(self):
        next_t = time.monotonic()
        while not self._stop_evt.is_set():
            if self.scrape_once() is None:
                # Unreachable (starting or restarting daemon): retry soon, so
                # the first scrape of an incarnation comes before it consumes.
                # (Prometheus would wait a whole interval; what a daemon shows
                # on a late first scrape is tested by exact_1m.)
                next_t = time.monotonic() + 0.02
            else:
                next_t += self.interval
            now = time.monotonic()
            if next_t < now:
                next_t = now + 0.02
            self._stop_evt.wait(next_t - now)

    def stop(self):
        self._stop_evt.set()
        self.join(timeout=30)

    # -- one scrape ---------------------------------------------------------------
    def _filter(self, text):
        keep = []
        prefixes = tuple(f + c for f in self.tracked for c in ("{", " "))
        heads = tuple("# %s %s " % (kw, f) for f in self.tracked for kw in ("HELP", "TYPE"))
        kafka, parts, start = {}, {}, None
        for line in text.split("\n"):
            if line.startswith(prefixes) or line.startswith(heads):
                keep.append(line)
            elif line.startswith(("ai_finops_kafka_", "ai_finops_dlq_")):
                m = _KAFKA_LINE_RE.match(line)
                if m:
                    if m.group(2) is not None:
                        parts.setdefault(m.group(1), {})[(m.group(2), int(m.group(3)))] = int(m.group(4))
                    else:
                        kafka[m.group(1)] = int(m.group(4))
            elif line.startswith("process_start_time_seconds "):
                start = line.split(" ", 1)[1].strip()
        return "\n".join(keep) + "\n", kafka, parts, start

    def scrape_once(self):
        t = time.monotonic()
        status, body = http_get(self.url, timeout=self.timeout)
        if status != 200:
            with self._cond:
                self.failed += 1
                self._cond.notify_all()
            return None
        text = body.decode("utf-8", "replace")
        sub, kafka, parts, start = self._filter(text)
        ex = expo.parse(sub)
        values = {}
        errors = list(ex.errors)
        for fam in self.tracked:
            names, parse_value, _ = FAMILIES[fam]
            try:
                raw = ex.series(fam, names)
            except ValueError as e:
                errors.append(str(e))
                raw = {}
            vals = {}
            for k, v in raw.items():
                try:
                    vals[k] = parse_value(v)
                except ValueError as e:
                    errors.append("%s%r: %s" % (fam, k, e))
            values[fam] = vals
        inc_key = start if start is not None else "unknown"
        with self._cond:
            self.seq += 1
            snap = Snap(t, inc_key, values, kafka, parts, self.seq)
            if errors and len(self.parse_errors) < 20:
                self.parse_errors.extend(errors[: 20 - len(self.parse_errors)])
            inc = self.incarnations.get(inc_key)
            if inc is None:
                inc = self.incarnations[inc_key] = Incarnation(inc_key, t)
                inc.first = snap
            inc.last_time = t
            inc.scrapes += 1
            inc.prev = inc.last
            inc.last = snap
            for fam, vals in values.items():
                obs = self.observed[fam]
                obs_p = self.observed_prom[fam]
                for k, v in vals.items():
                    lk = (inc_key, fam, k)
                    prev = self._last.get(lk)
                    if prev is None:
                        if v != 0:
                            inc.nonzero_first += 1
                            self.nonzero_first_sum[fam] += v
                            if len(self.nonzero_first) < 20:
                                self.nonzero_first.append((inc_key, fam, k, v))
                    else:
                        d = v - prev if v >= prev else v
                        if v < prev:
                            self.resets += 1
                        if d:
                            obs[k] = obs.get(k, 0) + d
                            if fam == EVENTS:
                                inc.observed_events += d
                    self._last[lk] = v
                    pk = (fam, k)
                    prev = self._last_prom.get(pk)
                    if prev is not None:
                        d = v - prev if v >= prev else v
                        if d:
                            obs_p[k] = obs_p.get(k, 0) + d
                    self._last_prom[pk] = v
            self.ok += 1
            self.latest = snap
            self.latest_body = body
            self._cond.notify_all()
        if self.dump_path:
            with open(self.dump_path, "wb") as f:
                f.write(body)
        return snap

    # -- queries --------------------------------------------------------------------
    def wait_for(self, pred, timeout):
        """Waits until pred(self) (called under the lock after each scrape) is
        true; returns its last value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                r = pred(self)
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    return r
                self._cond.wait(min(left, 0.5))

    def wait_scrapes(self, n, timeout=30):
        """Waits for n more successful scrapes."""
        with self._cond:
            target = self.ok + n
        return self.wait_for(lambda s: s.ok >= target, timeout)

    def observed_total(self, fam):
        with self._cond:
            return sum(self.observed[fam].values())

    def observed_copy(self, fam):
        with self._cond:
            return dict(self.observed[fam])

    def summary(self):
        with self._cond:
            return "%d scrapes ok, %d failed, %d incarnations, %d counter resets" % (
                self.ok, self.failed, len(self.incarnations), self.resets)


# ---------------------------------------------------------------------------
# comparisons

def fmt_key(names, key):
    return "{" + ",".join('%s="%s"' % (n, expo.escape_label_value(v)) for n, v in zip(names, key)) + "}"


def expected_series(totals, fam):
    """Expected {key: int} of a family from gen_events totals."""
    names = FAMILIES[fam][0]
    if fam == COST:
        src = totals["cost_nanos"]
    elif fam == TOKENS:
        src = totals["tokens"]
    elif fam == GPU:
        src = totals["gpu_nanoseconds"]
    elif fam == EVENTS:
        return {(k,): v for k, v in totals["events"].items()}
    elif fam == REJECTED:
        return {(k,): v for k, v in totals["rejected"].items()}
    else:
        raise KeyError(fam)
    return {tuple(s["labels"][n] for n in names): s["value"] for s in src}


def compare_series(fam, expected, got, max_lines=15):
    """expected/got: {key: int}; a zero on either side equals an absent series.
    Returns (ok, detail)."""
    names, _, render = FAMILIES[fam]
    diffs = []
    for k in sorted(set(expected) | set(got), key=lambda k: tuple(str(x) for x in k)):
        w, g = expected.get(k, 0), got.get(k, 0)
        if w != g:
            d = g - w
            diffs.append((abs(d), "%s%s got %s want %s (%s%s)" % (
                fam, fmt_key(names, k), render(g), render(w), "+" if d > 0 else "-", render(abs(d)))))
    nonzero = sum(1 for v in expected.values() if v)
    detail = "%d expected non-zero series, %d observed" % (nonzero, sum(1 for v in got.values() if v))
    if diffs:
        over = sum(1 for _, s in diffs if "(+" in s)
        detail += "; %d differ (%d over, %d under), total got %s want %s; largest:\n%s" % (
            len(diffs), over, len(diffs) - over, render(sum(got.values())), render(sum(expected.values())),
            "\n".join(s for _, s in sorted(diffs, key=lambda x: -x[0])[:max_lines]))
    return not diffs, detail
