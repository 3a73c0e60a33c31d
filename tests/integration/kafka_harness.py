"""Helpers for the Kafka end-to-end tests of ai-finops-exporter (stdlib + kcat).

* Daemon      - one ai-finops-exporter process consuming Kafka; restartable
                on the same HTTP port (and, or not, the same transactional
                id); always killed at the end (context manager, atexit hook,
                and the kernel's parent-death signal through
                `setpriv --pdeathsig KILL` when available).
* Scraper     - a Prometheus-like reader: one thread per target (daemon)
                GETs /metrics at random intervals; the samples of all
                targets are merged in scrape start order and fed to one
                Counters (below).
* Counters    - Prometheus's counter semantics, exactly, in integers: per
                series identity (metric name + label set as served; the
                daemon's `shard` label keeps a series one series whichever
                process serves it, so no instance label is added), the sum of
                increases between consecutive samples, a decrease counting as
                a reset (the new value is added), the first sample of an
                identity contributing nothing. Compared with the generator's
                totals summed over shard.
* HealthPoller, CpuHogs - /healthz watched throughout; one busy loop per core.
* events      - gen_events.py output (cached per parameters), keyed by team,
                and produced with kcat (files, bursts, or a paced stream).
* kcat        - end offsets, consuming a topic with exact bytes and headers;
                Kafka's TopicCommand for deleting and describing topics.

Daemons must be started from the main thread: the parent-death signal is
tied to the thread that forked the child.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import random
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
# Transactions (the checkpoints, docs/delivery.md): the broker aborts a
# transaction left open by a SIGKILLed daemon after its
# kafka.transaction_timeout_ms; checking for such every second (the default
# is 10 s) lets the next owner of its partitions restore soon after.
BROKER_EXTRA_PROPS = ("group.min.session.timeout.ms=1000\n"
                      "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000\n")


def _yaml_str(s):
    return json.dumps(str(s))  # JSON strings are valid YAML double-quoted scalars


class Daemon:
    """ai-finops-exporter consuming `topic` as a member of `group`."""

    def __init__(self, binary, workdir, name, brokers, topic, group, dlq_topic,
                 port=None, threads=2, properties=None, extra_args=(), log_level="info",
                 state_topic=None, txn_id=None, hold_ms=None, checkpoint_ms=None, txn_timeout_ms=None,
                 shutdown_timeout_ms=None):
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
        # Checkpointed delivery (docs/delivery.md); None leaves the default.
        # txn_id may be changed between starts (a restart with a fresh id).
        self.state_topic = state_topic
        self.txn_id = txn_id
        self.hold_ms = hold_ms
        self.checkpoint_ms = checkpoint_ms
        self.txn_timeout_ms = txn_timeout_ms
        self.shutdown_timeout_ms = shutdown_timeout_ms
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
                "--log.level=" + self.log_level]
        for flag, v in (("--kafka.state-topic", self.state_topic), ("--kafka.transactional-id", self.txn_id),
                        ("--counters.new-series-hold-ms", self.hold_ms),
                        ("--kafka.checkpoint-interval-ms", self.checkpoint_ms),
                        ("--kafka.transaction-timeout-ms", self.txn_timeout_ms),
                        ("--kafka.shutdown-timeout-ms", self.shutdown_timeout_ms)):
            if v is not None:
                cmd.append("%s=%s" % (flag, v))
        return cmd + self.extra_args

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
# series identity and counter semantics

SHARD = "shard"
_SELF_LINE_RE = re.compile(r'^(ai_finops_(?:kafka|dlq)_[a-z_]+)(?:\{([^}]*)\})? (\S+)$')
_SELF_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _number(s):
    try:
        return int(s)
    except ValueError:
        try:
            return float(s)
        except ValueError:
            return None


def _when(t):
    return "%.2f s" % (t - _T0) if t < 1e9 else "@%.3f" % t


def identity_str(ident):
    fam, labels = ident
    return fam + expo.format_labels(labels)


def project(values, fam):
    """{identity: int} -> {key: int} of one family, the key being the
    family's label values without the shard (FAMILIES order): sums over
    shard (and over anything else outside the family's label names)."""
    names = FAMILIES[fam][0]
    out = {}
    for (f, labels), v in values.items():
        if f != fam:
            continue
        d = dict(labels)
        k = tuple(d.get(n, "") for n in names)
        out[k] = out.get(k, 0) + v
    return out


def parse_tracked(text, tracked=DEFAULT_TRACKED, sharded=True, shard_re=None):
    """Parses the tracked families of one /metrics body (str).
    Returns (values, kafka, parts, errors): values {identity: int} where an
    identity is (family, sorted ((label, value), ...)) -- the metric name and
    the label set as served, nothing added; kafka {self-metric: number} for
    the unlabeled ai_finops_kafka_*/ai_finops_dlq_* samples, parts {name:
    {(topic, partition): number}} for those with topic and partition labels.
    With sharded, every tracked sample must carry the family's labels plus a
    last label `shard` (matching shard_re when given)."""
    prefixes = tuple(f + c for f in tracked for c in ("{", " "))
    heads = tuple("# %s %s " % (kw, f) for f in tracked for kw in ("HELP", "TYPE"))
    keep, kafka, parts = [], {}, {}
    for line in text.split("\n"):
        if line.startswith(prefixes) or line.startswith(heads):
            keep.append(line)
        elif line.startswith(("ai_finops_kafka_", "ai_finops_dlq_")):
            m = _SELF_LINE_RE.match(line)
            if not m:
                continue
            v = _number(m.group(3))
            if m.group(2) is None:
                kafka[m.group(1)] = v
            else:
                lab = dict(_SELF_LABEL_RE.findall(m.group(2)))
                if "topic" in lab and "partition" in lab:
                    parts.setdefault(m.group(1), {})[(lab["topic"], int(lab["partition"]))] = v
    ex = expo.parse("\n".join(keep) + "\n")
    errors = list(ex.errors)
    values = {}
    for fam in tracked:
        names, parse_value, _ = FAMILIES[fam]
        want = list(names) + ([SHARD] if sharded else [])
        f = ex.families.get(fam)
        for s in (f.samples if f else []):
            lnames = [n for n, _ in s.labels]
            if sorted(lnames) != sorted(want) or (sharded and lnames[-1] != SHARD):
                errors.append("%s: labels %s, want %s (shard last)" % (s, lnames, want))
                continue
            if sharded and shard_re is not None and not shard_re.match(dict(s.labels)[SHARD]):
                errors.append("%s: shard %r does not match %s" % (s, dict(s.labels)[SHARD], shard_re.pattern))
            try:
                v = parse_value(s.value)
            except ValueError as e:
                errors.append("%s: %s" % (s, e))
                continue
            values[(fam, tuple(sorted(s.labels)))] = v
    return values, kafka, parts, errors


class Counters:
    """Prometheus's counter semantics over one merged stream of samples:
    per series identity, the sum of increases between consecutive samples;
    a decrease is a counter reset (the new value is added); the first
    sample of an identity contributes nothing. Feed samples in timestamp
    order (add())."""

    def __init__(self):
        self.last = {}           # identity -> last value
        self.observed = {}       # identity -> sum of increases
        self.first_nonzero = []  # (t, source, identity, value): lost by counter semantics
        self.decreases = []      # (t, source, identity, previous, value): counted as resets

    def add(self, t, source, values):
        last, obs = self.last, self.observed
        for ident, v in values.items():
            prev = last.get(ident)
            if prev is None:
                if v:
                    self.first_nonzero.append((t, source, ident, v))
            else:
                if v >= prev:
                    d = v - prev
                else:
                    d = v
                    self.decreases.append((t, source, ident, prev, v))
                if d:
                    obs[ident] = obs.get(ident, 0) + d
            last[ident] = v

    def projected(self, fam):
        return project(self.observed, fam)

    def lost_first(self, fam):
        return sum(v for _, _, (f, _), v in self.first_nonzero if f == fam)

    def anomalies(self, limit=5):
        """One line on first samples that were not 0 and on decreases (both
        make counter semantics miss or re-add values), or ""."""
        out = []
        if self.first_nonzero:
            out.append("%d series first seen non-zero (not counted), e.g. %s" % (
                len(self.first_nonzero), ", ".join("%s=%s (%s at %s)" % (identity_str(i), v, src, _when(t))
                                                   for t, src, i, v in self.first_nonzero[:limit])))
        if self.decreases:
            out.append("%d decreases (counted as resets), e.g. %s" % (
                len(self.decreases), ", ".join("%s %s->%s (%s at %s)" % (identity_str(i), p, v, src, _when(t))
                                               for t, src, i, p, v in self.decreases[:limit])))
        return "; ".join(out)


class Snap:
    """One completed scrape of one target."""
    __slots__ = ("time", "target", "values", "kafka", "parts", "seq")

    def __init__(self, t, target, values, kafka, parts, seq):
        self.time = t
        self.target = target
        self.values = values  # {identity: int}
        self.kafka = kafka    # self-metric name -> number (unlabeled ones)
        self.parts = parts    # metric name -> {(topic, partition): number}
        self.seq = seq

    def events(self):
        return sum(v for (f, _), v in self.values.items() if f == EVENTS)


class _Target(threading.Thread):
    def __init__(self, scraper, name, url):
        super().__init__(name="%s/%s" % (scraper.name, name), daemon=True)
        self.scraper, self.tname, self.url = scraper, name, url
        self.stop_evt = threading.Event()
        self.rng = random.Random("%s/%s/%d" % (scraper.name, name, scraper.seed))

    def run(self):
        sc = self.scraper
        next_t = time.monotonic()
        while not self.stop_evt.is_set():
            sc._scrape(self)
            next_t += self.rng.uniform(*sc.interval)
            now = time.monotonic()
            if next_t < now:
                next_t = now
            self.stop_evt.wait(next_t - now)


class Scraper:
    """A Prometheus-like reader of the /metrics of any number of targets
    (daemons), each scraped by its own thread at random intervals in
    `interval` (start to start). All targets' samples are merged into one
    stream ordered by scrape start time (a ticket taken at the start orders
    the application) and fed to one Counters: a series is its metric name
    and label set as served (no instance label is added), so a shard that
    moves between daemons stays one series."""

    def __init__(self, name="scraper", interval=(0.2, 0.5), tracked=DEFAULT_TRACKED, timeout=10.0,
                 seed=0, sharded=True, shard_re=None):
        self.name = name
        self.interval = interval if isinstance(interval, tuple) else (interval, interval)
        self.tracked = tuple(tracked)
        self.timeout = timeout
        self.seed = seed
        self.sharded = sharded
        self.shard_re = shard_re
        self.counters = Counters()
        self._cond = threading.Condition()
        self._ticket = 0
        self._applied = 0
        self._targets = {}
        self.ok = {}           # target -> successful scrapes
        self.failed = {}       # target -> failed scrapes
        self.last_ok = {}      # target -> did the last attempt succeed
        self.latest = {}       # target -> Snap (last successful)
        self.parse_errors = []
        self.seq = 0

    # -- targets ------------------------------------------------------------------
    def add_target(self, name, url):
        with self._cond:
            if name in self._targets:
                return
            t = _Target(self, name, url)
            self._targets[name] = t
            self.ok.setdefault(name, 0)
            self.failed.setdefault(name, 0)
        t.start()

    def remove_target(self, name):
        with self._cond:
            t = self._targets.pop(name, None)
        if t is not None:
            t.stop_evt.set()
            t.join(timeout=self.timeout + 30)
        with self._cond:
            self.latest.pop(name, None)
            self.last_ok.pop(name, None)

    def stop(self):
        for name in list(self._targets):
            self.remove_target(name)

    # -- one scrape ---------------------------------------------------------------
    def _scrape(self, target):
        with self._cond:
            ticket = self._ticket
            self._ticket += 1
            t = time.monotonic()
        parsed = None
        try:
            status, body = http_get(target.url, timeout=self.timeout)
            if status == 200:
                parsed = parse_tracked(body.decode("utf-8", "replace"), self.tracked, self.sharded, self.shard_re)
        finally:
            with self._cond:
                while self._applied != ticket:
                    self._cond.wait(0.5)
                try:
                    if parsed is None:
                        self.failed[target.tname] = self.failed.get(target.tname, 0) + 1
                        self.last_ok[target.tname] = False
                    else:
                        values, kafka, parts, errors = parsed
                        if errors and len(self.parse_errors) < 20:
                            self.parse_errors.extend(errors[: 20 - len(self.parse_errors)])
                        self.seq += 1
                        self.counters.add(t, target.tname, values)
                        self.latest[target.tname] = Snap(t, target.tname, values, kafka, parts, self.seq)
                        self.ok[target.tname] = self.ok.get(target.tname, 0) + 1
                        self.last_ok[target.tname] = True
                finally:
                    self._applied += 1
                    self._cond.notify_all()

    # -- queries (the lock is held while a predicate runs) ---------------------------
    def wait_for(self, pred, timeout):
        """Waits until pred(self) is true (checked after each scrape and
        every 0.5 s); returns its last value."""
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

    def wait_scrapes(self, n, timeout=60):
        """Waits until every current target that answered its last scrape
        has n more successful scrapes."""
        with self._cond:
            target = {k: self.ok.get(k, 0) + n for k in self._targets if self.last_ok.get(k)}
        return self.wait_for(lambda s: all(s.ok.get(k, 0) >= v for k, v in target.items()
                                           if k in s._targets), timeout)

    def served(self):
        """What the targets serve now: the union of the last successful
        scrape of each target whose last attempt succeeded. (An identity
        served by two targets at once keeps the larger value.) Call with
        the lock held (in a predicate) or through served_copy()."""
        out = {}
        for name, snap in self.latest.items():
            if not self.last_ok.get(name) or name not in self._targets:
                continue
            for ident, v in snap.values.items():
                if out.get(ident, -1) < v:
                    out[ident] = v
        return out

    def served_copy(self):
        with self._cond:
            return self.served()

    def observed(self, fam):
        """Counter semantics of the merged stream, summed over shard."""
        with self._cond:
            return self.counters.projected(fam)

    def observed_total(self, fam):
        return sum(self.observed(fam).values())

    def latest_of(self, target):
        with self._cond:
            return self.latest.get(target)

    def summary(self):
        with self._cond:
            return "%s: %s; %d series" % (self.name, ", ".join(
                "%s %d ok/%d failed" % (k, self.ok.get(k, 0), self.failed.get(k, 0)) for k in sorted(self.ok)),
                len(self.counters.last))


def served_matches(sc, expected, families=DEFAULT_TRACKED):
    """Predicate for Scraper.wait_for: what the live targets serve, summed
    over shard, equals expected (totals in gen_events' shape) for every
    family."""
    served = sc.served()
    if not served:
        return False
    for fam in families:
        want = {k: v for k, v in expected_series(expected, fam).items() if v}
        got = {k: v for k, v in project(served, fam).items() if v}
        if want != got:
            return False
    return True


# ---------------------------------------------------------------------------
# probes, CPU hogs

class HealthPoller(threading.Thread):
    """Polls /healthz of every watched daemon every `interval` s and keeps
    each answer that is not 200 (None: no answer within `timeout`)."""

    def __init__(self, interval=0.2, timeout=10.0):
        super().__init__(name="healthz", daemon=True)
        self.interval, self.timeout = interval, timeout
        self._lock = threading.Lock()
        self._watched = {}
        self.polls = {}
        self.bad = []  # (t, daemon, status)
        self._stop_evt = threading.Event()

    def watch(self, d):
        with self._lock:
            self._watched[d.name] = d.base

    def unwatch(self, d):
        with self._lock:
            self._watched.pop(d.name, None)

    def run(self):
        while not self._stop_evt.is_set():
            with self._lock:
                items = list(self._watched.items())
            for name, base in items:
                status = http_get(base + "/healthz", timeout=self.timeout)[0]
                with self._lock:
                    if name not in self._watched:  # unwatched meanwhile (being stopped)
                        continue
                    self.polls[name] = self.polls.get(name, 0) + 1
                    if status != 200:
                        self.bad.append((time.monotonic(), name, status))
            self._stop_evt.wait(self.interval)

    def stop(self):
        self._stop_evt.set()
        self.join(timeout=self.timeout + 10)

    def report(self):
        with self._lock:
            polls = ", ".join("%s %d" % kv for kv in sorted(self.polls.items()))
            if not self.bad:
                return True, "polls: %s, all 200" % polls
            return False, "polls: %s; %d not 200, e.g. %s" % (polls, len(self.bad), ", ".join(
                "%s %s at %.2f s" % (n, s, t - _T0) for t, n, s in self.bad[:10]))


class CpuHogs:
    """One busy-looping shell per core (or n), killed by stop(), the
    context manager, the atexit hook, or the kernel when the test process
    dies (parent-death signal)."""

    def __init__(self, n=None):
        self.n = n or os.cpu_count() or 1
        self.procs = []

    def start(self):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("start CPU hogs from the main thread (parent-death signal)")
        prefix = [SETPRIV, "--pdeathsig", "KILL"] if SETPRIV else []
        for _ in range(self.n):
            p = subprocess.Popen(prefix + ["sh", "-c", "while :; do :; done"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with _LIVE_LOCK:
                _LIVE.add(p)
            self.procs.append(p)
        return self

    def alive(self):
        return sum(1 for p in self.procs if p.poll() is None)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            with _LIVE_LOCK:
                _LIVE.discard(p)
        self.procs = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# ---------------------------------------------------------------------------
# topic administration beyond kafka-local.sh (Kafka's own TopicCommand on the
# jars kafka-local.sh cached)

def _kafka_libs():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ.get("HOME", "/root"), ".cache")
    version = os.environ.get("KAFKA_LOCAL_VERSION", "4.3.1")
    return os.path.join(cache, "ai-finops-exporter", "kafka-" + version, "libs")


def topic_command(boot, args, timeout=180):
    """Runs org.apache.kafka.tools.TopicCommand; returns its stdout; raises
    on failure."""
    java = os.environ.get("KAFKA_LOCAL_JAVA") or shutil.which("java")
    if not java:
        raise RuntimeError("java not found")
    log4j = os.path.join(HERE, "..", "..", "scripts", "kafka", "log4j2-tools.xml")
    cmd = [java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
           "-Dlog4j2.configurationFile=" + os.path.abspath(log4j), "-cp", os.path.join(_kafka_libs(), "*"),
           "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", boot] + list(args)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                       timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("TopicCommand %s exited %d: %s" % (" ".join(args), p.returncode,
                                                             (p.stdout + p.stderr).decode("utf-8", "replace")[-2000:]))
    return p.stdout.decode("utf-8", "replace")


def delete_topic(boot, topic):
    topic_command(boot, ["--delete", "--topic", topic])


def describe_topic(boot, topic):
    return topic_command(boot, ["--describe", "--topic", topic])


def topic_exists(boot, topic):
    out = kcat(["-b", boot, "-L", "-t", topic], timeout=60).decode("utf-8", "replace")
    return bool(re.search(r'topic "%s" with \d+ partitions' % re.escape(topic), out)) and "Broker: Unknown topic" not in out


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
