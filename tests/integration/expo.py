#!/usr/bin/env python3
"""Strict parser and checker for the Prometheus text exposition format 0.0.4.

parse(data) never raises: it returns an Exposition with the families, the
samples in order, and `errors` (syntax and semantic problems, each naming
its line). The checks go beyond what promtool 2.42 does:

  * the whole payload is valid UTF-8 and ends with a line feed;
  * every sample belongs to a family that has a TYPE (and a HELP);
  * HELP/TYPE appear at most once per family and before its samples;
  * each family is contiguous (all its lines together);
  * no duplicate series (same sample name + same label set, in any order);
  * no duplicate label names in a sample, no reserved `__` label names;
  * only the escapes \\\\ \\" \\n in label values (\\\\ \\n in HELP);
  * counters are non-negative and not NaN; histogram buckets are cumulative,
    end with le="+Inf" and agree with _count;
  * no sample timestamps (an exporter must not set them), unless allowed.

Values are kept as the exact strings the exporter wrote. parse_decimal_nanos
and parse_uint turn them into Python ints exactly (never through float).

run_promtool(text) pipes the text into `promtool check metrics`.

Command line: expo.py FILE|URL  -> prints the problems, exit 1 if any.
"""

import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal, InvalidOperation

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# What Go's strconv.ParseFloat accepts that an exporter plausibly writes.
FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
SPECIAL_FLOATS = {"+Inf": float("inf"), "Inf": float("inf"), "-Inf": float("-inf"), "NaN": float("nan")}
TIMESTAMP_RE = re.compile(r"-?[0-9]+\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
CANONICAL_DECIMAL_RE = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]{0,8}[1-9]))?\Z")
CANONICAL_UINT_RE = re.compile(r"(0|[1-9][0-9]*)\Z")
NANO = 1_000_000_000


class Sample:
    __slots__ = ("name", "labels", "value", "timestamp", "lineno", "family")

    def __init__(self, name, labels, value, timestamp, lineno):
        self.name = name
        self.labels = labels          # tuple of (name, value) in written order
        self.value = value            # the exact string written
        self.timestamp = timestamp    # string or None
        self.lineno = lineno
        self.family = None

    @property
    def labeldict(self):
        return dict(self.labels)

    def key(self):
        return (self.name, frozenset(self.labels))

    def float_value(self):
        return float_value(self.value)

    def __repr__(self):
        return "Sample(%s%s %s @%d)" % (self.name, format_labels(self.labels), self.value, self.lineno)


class Family:
    __slots__ = ("name", "type", "help", "samples", "first_lineno", "implicit")

    def __init__(self, name, lineno):
        self.name = name
        self.type = None
        self.help = None
        self.samples = []
        self.first_lineno = lineno
        self.implicit = False  # created by a sample without TYPE

    def __repr__(self):
        return "Family(%s, %s, %d samples)" % (self.name, self.type, len(self.samples))


class Exposition:
    def __init__(self):
        self.families = {}   # name -> Family, in order of first appearance
        self.samples = []
        self.errors = []

    def error(self, lineno, msg):
        self.errors.append("line %d: %s" % (lineno, msg) if lineno else msg)

    def family(self, name):
        return self.families.get(name)

    def series(self, family, label_names=None):
        """Samples of a family (or of one sample name) as a dict keyed by the
        tuple of label values in `label_names` order (default: sorted label
        names of each sample). Raises ValueError if a sample's label names
        differ from `label_names`."""
        fam = self.families.get(family)
        samples = fam.samples if fam else [s for s in self.samples if s.name == family]
        out = {}
        for s in samples:
            d = dict(s.labels)
            if label_names is None:
                key = tuple(sorted(d.items()))
            else:
                if set(d) != set(label_names):
                    raise ValueError("line %d: %s has labels %s, expected %s"
                                     % (s.lineno, s.name, sorted(d), sorted(label_names)))
                key = tuple(d[n] for n in label_names)
            out[key] = s.value
        return out

    def series_sum(self, family, label_names, parse_value, over=("shard",)):
        """Like series(), for a family whose samples also carry the labels in
        `over` (the Kafka input's shard): values parsed with parse_value and
        summed over those labels, keyed by the rest in label_names order.
        Samples without them count as they are."""
        fam = self.families.get(family)
        samples = fam.samples if fam else [s for s in self.samples if s.name == family]
        out = {}
        for s in samples:
            d = dict(s.labels)
            for name in over:
                d.pop(name, None)
            if set(d) != set(label_names):
                raise ValueError("line %d: %s has labels %s, expected %s (plus %s)"
                                 % (s.lineno, s.name, sorted(d), sorted(label_names), list(over)))
            key = tuple(d[n] for n in label_names)
            out[key] = out.get(key, 0) + parse_value(s.value)
        return out


def float_value(v):
    if v in SPECIAL_FLOATS:
        return SPECIAL_FLOATS[v]
    return float(v)


def parse_decimal_nanos(s, canonical=True):
    """Exact non-negative decimal string -> int nano-units.

    canonical=True accepts only what the exporter must write: an integer
    part without leading zeros and optionally '.' plus 1..9 digits with no
    trailing zero ('5', '0.5', '123.000000001'). canonical=False accepts any
    finite non-negative float spelling whose value is a whole number of
    nano-units ('5.0', '1e-9', '2.50')."""
    if canonical:
        m = CANONICAL_DECIMAL_RE.match(s)
        if not m:
            raise ValueError("not a canonical exact decimal: %r" % s)
        frac = m.group(2) or ""
        return int(m.group(1)) * NANO + int(frac.ljust(9, "0") or "0")
    if not FLOAT_RE.match(s):
        raise ValueError("not a decimal number: %r" % s)
    try:
        d = Decimal(s) * NANO
    except InvalidOperation:
        raise ValueError("not a decimal number: %r" % s) from None
    if d < 0 or d != d.to_integral_value():
        raise ValueError("not a non-negative whole number of nano-units: %r" % s)
    return int(d)


def format_nanos(n):
    """int nano-units -> canonical decimal string (inverse of parse_decimal_nanos)."""
    i, f = divmod(n, NANO)
    return str(i) if f == 0 else "%d.%s" % (i, ("%09d" % f).rstrip("0"))


def parse_uint(s):
    """Canonical non-negative integer string -> int (no sign, exponent, '.0')."""
    if not CANONICAL_UINT_RE.match(s):
        raise ValueError("not a canonical unsigned integer: %r" % s)
    return int(s)


def escape_label_value(v):
    return v.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def format_labels(labels):
    if not labels:
        return ""
    return "{" + ",".join('%s="%s"' % (k, escape_label_value(v)) for k, v in labels) + "}"


# -- the line parser -----------------------------------------------------------

class _LineError(Exception):
    pass


def _skip_blank(line, i):
    n = len(line)
    while i < n and line[i] in " \t":
        i += 1
    return i


def _read_name(line, i, regex, what):
    m = regex.match(line, i)
    if not m:
        raise _LineError("expected a %s at column %d" % (what, i + 1))
    return m.group(0), m.end()


def _read_label_value(line, i):
    """line[i] is just after the opening quote; returns (value, index after
    the closing quote)."""
    out = []
    n = len(line)
    start = i
    while i < n:
        c = line[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= n:
                break
            e = line[i + 1]
            if e == "\\":
                out.append("\\")
            elif e == '"':
                out.append('"')
            elif e == "n":
                out.append("\n")
            else:
                raise _LineError("invalid escape sequence '\\%s' in label value at column %d" % (e, i + 1))
            i += 2
            continue
        out.append(c)
        i += 1
    raise _LineError("unterminated label value starting at column %d" % start)


def _parse_sample(line):
    i = _skip_blank(line, 0)
    name, i = _read_name(line, i, METRIC_NAME_RE, "metric name")
    labels = []
    if i < len(line) and line[i] == "{":
        i += 1
        seen = set()
        while True:
            i = _skip_blank(line, i)
            if i < len(line) and line[i] == "}":
                i += 1
                break
            lname, i = _read_name(line, i, LABEL_NAME_RE, "label name")
            i = _skip_blank(line, i)
            if i >= len(line) or line[i] != "=":
                raise _LineError("expected '=' after label name %r" % lname)
            i = _skip_blank(line, i + 1)
            if i >= len(line) or line[i] != '"':
                raise _LineError("expected '\"' to start the value of label %r" % lname)
            value, i = _read_label_value(line, i + 1)
            if lname in seen:
                raise _LineError("duplicate label name %r" % lname)
            if lname.startswith("__"):
                raise _LineError("reserved label name %r" % lname)
            seen.add(lname)
            labels.append((lname, value))
            i = _skip_blank(line, i)
            if i < len(line) and line[i] == ",":
                i += 1
                continue
            if i < len(line) and line[i] == "}":
                i += 1
                break
            raise _LineError("expected ',' or '}' after the value of label %r" % lname)
    if i >= len(line) or line[i] not in " \t":
        raise _LineError("expected a blank before the value")
    rest = [t for t in re.split(r"[ \t]+", line[i:].strip(" \t"))]
    if not rest or rest == [""]:
        raise _LineError("missing value")
    if len(rest) > 2:
        raise _LineError("unexpected text after value and timestamp: %r" % " ".join(rest[2:]))
    value = rest[0]
    if value not in SPECIAL_FLOATS and not FLOAT_RE.match(value):
        raise _LineError("invalid value %r" % value)
    ts = None
    if len(rest) == 2:
        ts = rest[1]
        if not TIMESTAMP_RE.match(ts):
            raise _LineError("invalid timestamp %r" % ts)
    return name, tuple(labels), value, ts


def _unescape_help(s):
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            e = s[i + 1] if i + 1 < len(s) else ""
            if e == "\\":
                out.append("\\")
            elif e == "n":
                out.append("\n")
            else:
                raise _LineError("invalid escape sequence '\\%s' in HELP" % e)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse(data, allow_timestamps=False):
    """Parses an exposition (bytes or str). Never raises; see .errors."""
    ex = Exposition()
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            lineno = data.count(b"\n", 0, e.start) + 1
            ex.error(lineno, "invalid UTF-8 at byte offset %d (%s)" % (e.start, e.reason))
            text = bytes(data).decode("utf-8", "replace")
    else:
        text = data
    if not text:
        ex.error(0, "empty exposition")
        return ex
    if not text.endswith("\n"):
        ex.error(text.count("\n") + 1, "the last line does not end with a line feed")
        text += "\n"
    lines = text.split("\n")[:-1]

    current = None     # the family whose block we are in
    closed = {}        # family name -> last line of its (ended) block
    last_line = {}     # family name -> last line seen
    seen_keys = {}     # series key -> line

    def enter(fam, lineno):
        nonlocal current
        if current is not fam:
            if fam.name in closed:
                ex.error(lineno, "family %s is not contiguous: its block ended at line %d"
                         % (fam.name, closed[fam.name]))
                del closed[fam.name]
            if current is not None:
                closed[current.name] = last_line[current.name]
            current = fam
        last_line[fam.name] = lineno

    def family_for_sample(name):
        fam = ex.families.get(name)
        if fam is not None and fam.type not in ("histogram", "summary"):
            return fam
        for suffix, types in (("_bucket", ("histogram",)), ("_count", ("histogram", "summary")),
                              ("_sum", ("histogram", "summary"))):
            if name.endswith(suffix):
                base = ex.families.get(name[: -len(suffix)])
                if base is not None and base.type in types:
                    return base
        if fam is not None and fam.type == "summary":
            return fam  # the quantile samples
        return fam

    for lineno, line in enumerate(lines, 1):
        if "\r" in line:
            ex.error(lineno, "carriage return in line")
        if line.strip(" \t") == "":
            continue
        try:
            stripped = line.lstrip(" \t")
            if stripped.startswith("#"):
                toks = stripped[1:].lstrip(" \t")
                parts = re.split(r"[ \t]+", toks, maxsplit=2)
                if parts[0] not in ("HELP", "TYPE") or len(parts) < 2 or parts[1] == "":
                    continue  # a plain comment
                kw, name = parts[0], parts[1]
                if not METRIC_NAME_RE.fullmatch(name):
                    raise _LineError("invalid metric name %r in %s" % (name, kw))
                arg = parts[2] if len(parts) > 2 else ""
                fam = ex.families.get(name)
                if fam is None:
                    fam = ex.families[name] = Family(name, lineno)
                enter(fam, lineno)
                if fam.samples:
                    ex.error(lineno, "%s for %s after its samples" % (kw, name))
                if kw == "HELP":
                    if fam.help is not None:
                        ex.error(lineno, "second HELP for %s" % name)
                    fam.help = _unescape_help(arg)
                else:
                    t = arg.strip(" \t")
                    if t not in TYPES:
                        raise _LineError("unknown type %r for %s" % (t, name))
                    if fam.type is not None:
                        ex.error(lineno, "second TYPE for %s" % name)
                    fam.type = t
                continue
            name, labels, value, ts = _parse_sample(line)
        except _LineError as e:
            ex.error(lineno, "%s: %r" % (e, line[:200]))
            continue
        s = Sample(name, labels, value, ts, lineno)
        fam = family_for_sample(name)
        if fam is None or fam.type is None:
            ex.error(lineno, "sample %s has no TYPE" % name)
            if fam is None:
                fam = ex.families[name] = Family(name, lineno)
                fam.implicit = True
        enter(fam, lineno)
        s.family = fam
        fam.samples.append(s)
        ex.samples.append(s)
        k = s.key()
        if k in seen_keys:
            ex.error(lineno, "duplicate series %s%s (first at line %d)"
                     % (name, format_labels(sorted(labels)), seen_keys[k]))
        else:
            seen_keys[k] = lineno
        if ts is not None and not allow_timestamps:
            ex.error(lineno, "sample %s has a timestamp" % name)
        if fam.type == "histogram" and name == fam.name:
            ex.error(lineno, "histogram %s has a sample without _bucket/_sum/_count suffix" % name)
        if fam.type == "summary" and name == fam.name and "quantile" not in dict(labels):
            ex.error(lineno, "summary sample %s without a quantile label" % name)
        if fam.type in ("histogram",) and name == fam.name + "_bucket" and "le" not in dict(labels):
            ex.error(lineno, "histogram bucket without le label")

    _semantic_checks(ex)
    return ex


def _semantic_checks(ex):
    for fam in ex.families.values():
        if fam.type is not None and fam.help is None:
            ex.error(fam.first_lineno, "family %s has no HELP" % fam.name)
        if fam.type == "counter":
            for s in fam.samples:
                v = s.float_value()
                if v != v or v < 0:
                    ex.error(s.lineno, "counter %s has value %s" % (s.name, s.value))
        if fam.type == "histogram":
            _check_histogram(ex, fam)


def _check_histogram(ex, fam):
    groups = {}
    for s in fam.samples:
        d = dict(s.labels)
        le = d.pop("le", None)
        key = frozenset(d.items())
        g = groups.setdefault(key, {"buckets": [], "count": None, "sum": None})
        if s.name == fam.name + "_bucket" and le is not None:
            try:
                bound = float_value(le)
            except ValueError:
                ex.error(s.lineno, "histogram %s: invalid le %r" % (fam.name, le))
                continue
            g["buckets"].append((bound, s.float_value(), s.lineno))
        elif s.name == fam.name + "_count":
            g["count"] = (s.float_value(), s.lineno)
        elif s.name == fam.name + "_sum":
            g["sum"] = s
    for g in groups.values():
        b = g["buckets"]
        if not b:
            continue
        if b != sorted(b, key=lambda x: x[0]):
            ex.error(b[0][2], "histogram %s: buckets not in increasing le order" % fam.name)
        prev = 0.0
        for bound, v, lineno in sorted(b, key=lambda x: x[0]):
            if v < prev:
                ex.error(lineno, "histogram %s: bucket le=%s is not cumulative" % (fam.name, bound))
            prev = v
        top = max(b, key=lambda x: x[0])
        if top[0] != float("inf"):
            ex.error(top[2], "histogram %s: no le=\"+Inf\" bucket" % fam.name)
        elif g["count"] is None:
            ex.error(top[2], "histogram %s: no _count" % fam.name)
        elif g["count"][0] != top[1]:
            ex.error(g["count"][1], "histogram %s: _count %s != +Inf bucket %s"
                     % (fam.name, g["count"][0], top[1]))
        if g["sum"] is None:
            ex.error(top[2], "histogram %s: no _sum" % fam.name)


def check(data, allow_timestamps=False):
    """Returns the list of problems (empty when the exposition is clean)."""
    return parse(data, allow_timestamps).errors


# -- promtool -------------------------------------------------------------------

class PromtoolResult:
    def __init__(self, ok, returncode, output, available=True):
        self.ok = ok
        self.returncode = returncode
        self.output = output
        self.available = available

    def __repr__(self):
        return "PromtoolResult(ok=%s, rc=%s, output=%r)" % (self.ok, self.returncode, self.output)


def find_promtool():
    return shutil.which("promtool") or ("/usr/bin/promtool" if os.path.exists("/usr/bin/promtool") else None)


def run_promtool(data, promtool=None, timeout=120):
    """Runs `promtool check metrics` with the exposition on stdin. ok is True
    only for exit status 0 (lint problems exit non-zero and are failures)."""
    exe = promtool or find_promtool()
    if not exe:
        return PromtoolResult(False, None, "promtool not found (Debian: apt-get install prometheus)", False)
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        p = subprocess.run([exe, "check", "metrics"], input=data, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return PromtoolResult(False, None, "promtool timed out after %d s" % timeout)
    out = p.stdout.decode("utf-8", "replace").strip()
    return PromtoolResult(p.returncode == 0, p.returncode, out)


def main(argv):
    if len(argv) != 2:
        print("usage: expo.py FILE|URL", file=sys.stderr)
        return 2
    src = argv[1]
    if src.startswith(("http://", "https://")):
        import urllib.request
        with urllib.request.urlopen(src, timeout=30) as r:
            data = r.read()
    else:
        with open(src, "rb") as f:
            data = f.read()
    ex = parse(data)
    print("%d families, %d samples" % (len(ex.families), len(ex.samples)))
    for e in ex.errors:
        print("expo: " + e)
    pr = run_promtool(data)
    print("promtool: %s (rc=%s)%s" % ("ok" if pr.ok else "FAILED", pr.returncode,
                                      "\n" + pr.output if pr.output else ""))
    return 0 if not ex.errors and pr.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
