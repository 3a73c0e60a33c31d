#!/usr/bin/env python3
"""End-to-end delivery tests of ai-finops-exporter against a real Kafka broker.

The property (docs/delivery.md, checkpointed delivery): what a reader of
/metrics observes by Prometheus's counter semantics equals what was
produced, to the nano-dollar, whatever the readers, timing, CPU contention,
SIGKILLs, broker restarts, rebalances or dead-letter outages.

One single-node Apache Kafka broker (scripts/kafka-local.sh, with fast
cleanup of abandoned transactions) serves the whole run; each test uses its
own topics, state topic and consumer group. Events come from gen_events.py
(exact expected totals), are keyed by team (a team's events stay in one
partition) and produced with kcat. A Scraper (kafka_harness.py) plays
Prometheus over ALL daemons of a test: samples merged in scrape start order,
a series is its name + label set as served (the daemon's `shard` label; no
instance label), counter semantics in integers; its totals summed over shard
must equal the generator's exactly (ai_finops_events_total,
ai_finops_events_rejected_total, ai_finops_cost_dollars_total).

Tests:
  exact_1m        1,000,000 events (0.3% defective) on 8 partitions, one daemon;
                  its Scraper starts 1.5 s after /readyz on a backlog: the
                  first scrape shows every counter as 0 (the new-series hold),
                  served and observed totals exact, tokens and GPU-seconds
                  exact, every rejected event in the DLQ exactly once, the
                  state topic created compacted.
  dead_letters    good events with one bad event per reject reason; the DLQ
                  holds each bad one exactly once, byte for byte, with headers.
  dlq_outage      the dead-letter topic is deleted mid-stream, SIGTERM during
                  the outage is bounded, the topic is recreated: exact, each
                  rejected event after the deletion is in the DLQ exactly
                  once (by source partition and offset), /healthz 200 always.
  kill_restart    >= 200,000 events, >= 20 SIGKILLs at random instants (some
                  within 0.3 s of a start, some while partitions move between
                  two daemons), restarts reusing the transactional id half of
                  the time, every core busy with a CPU hog, a second reader at
                  random 0.05-0.35 s intervals: both readers exact; the DLQ
                  holds every rejected event exactly once.
  two_daemons     two daemons, one gets SIGTERM mid-stream: exact.
  rebalance       1 -> 3 -> 1 daemons in one group while >= 300,000 events
                  stream in: exact; /healthz 200 throughout on every live
                  daemon; the two leaving daemons exit 0 on SIGTERM within
                  kafka.shutdown_timeout_ms + a margin.
  broker_restart  the broker is stopped mid-stream and restarted: exact.
  prometheus      two real Prometheus servers (an HA pair, Debian's package)
                  scrape two daemons every 1 s (instance blanked on sharded
                  series) while another client reads /metrics at random
                  intervals; >= 30,000 events in batches that bring new series,
                  one daemon leaving and rejoining; the RAW samples each server
                  stored, under counter semantics, are exact. Exit 77 (skip)
                  only when no prometheus binary can be installed.

Consumers use session.timeout.ms=3000 (the broker allows it) so that a
SIGKILLed member leaves the group in ~3 s instead of 45 s.

Usage: test_kafka_delivery.py --binary PATH [--workdir DIR] [--only NAME[,NAME]]
       [--seed N] [--kills N] [--keep] [--count-* N]
Prints PASS/FAIL lines and `N passed, N failed` last; exit status 1 on
failure, 77 when every selected test was skipped.
"""

import argparse
import os
import random
import re
import shutil
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import expo  # noqa: E402
import gen_events  # noqa: E402
import kafka_harness as kh  # noqa: E402
import prom_harness as ph  # noqa: E402
from testlib import Results  # noqa: E402
from kafka_broker import KafkaBroker  # noqa: E402
from kafka_harness import COST, EVENTS, GPU, REJECTED, TOKENS, log  # noqa: E402

TRACKED = (EVENTS, REJECTED, COST)

# Daemon settings of the tests (docs/delivery.md). A new series is shown as
# 0 for the hold; scrapers read every 0.2-0.5 s, so each sees it at 0 unless
# nobody serves its shard for the whole hold: the kill test's restarts (a
# session timeout, then up to the transaction timeout plus the broker's
# 1 s abort check before a fresh transactional id can restore) get more.
CHECKPOINT_MS = 300
TXN_TIMEOUT_MS = 5000
SHUTDOWN_TIMEOUT_MS = 5000
HOLD_MS = 3000
MULTI_HOLD_MS = 10000
KILL_HOLD_MS = 20000
# SIGTERM must end within kafka.shutdown_timeout_ms plus this (leaving the
# group, closing the clients, on a busy 2-core machine).
SIGTERM_MARGIN_S = 30
# Deadline for a condition that must become true (never a pass criterion).
EXACT_TIMEOUT_S = 600
STALL_S = 180


class Skip(Exception):
    """The test cannot run here (reason in the message): exit 77."""


class Ctx:
    def __init__(self, args, res, kb):
        self.args = args
        self.res = res
        self.kb = kb
        self.boot = kb.bootstrap
        self.binary = args.binary
        self.seed = args.seed

    def workdir(self, name):
        d = os.path.join(self.args.workdir, name)
        os.makedirs(d, exist_ok=True)
        return d

    def topics(self, name, partitions, dlq_partitions=1):
        topic, dlq = "ai-costs.%s" % name, "ai-costs-dlq.%s" % name
        self.kb.create_topics({topic: partitions, dlq: dlq_partitions})
        return topic, dlq

    def keyed_stream(self, name, partitions, events, count, seed):
        """A workdir, a topic and its dead-letter topic, and `count` generated
        events (0.3% defective) keyed by team: (wd, topic, dlq, es, rest,
        tail), tail holding each partition's last event."""
        wd = self.workdir(name)
        topic, dlq = self.topics(name, partitions)
        es = kh.generate(self.args.workdir, events, count, seed=seed, bad_ratio=0.003)
        rest, tail = kh.split_tail_per_partition(kh.keyed(es.lines), partitions)
        return wd, topic, dlq, es, rest, tail

    def daemon(self, test, dname, wd, topic, dlq, hold_ms=HOLD_MS, txn_id=None, **kw):
        """A daemon of test `test` with the checkpoint settings above, its
        own state topic per test and a transactional id per daemon."""
        return kh.Daemon(self.binary, wd, dname, self.boot, topic, "g-" + test, dlq,
                         state_topic="ai-finops-state.%s" % test,
                         txn_id=txn_id or "txn-%s-%s" % (test, dname), hold_ms=hold_ms,
                         checkpoint_ms=CHECKPOINT_MS, txn_timeout_ms=TXN_TIMEOUT_MS,
                         shutdown_timeout_ms=SHUTDOWN_TIMEOUT_MS, **kw)

    def scraper(self, topic, name="scraper", interval=(0.2, 0.5), seed=0):
        return kh.Scraper(name=name, interval=interval, seed=self.seed + seed,
                          shard_re=re.compile(r"^%s-\d+\Z" % re.escape(topic)))


# ---------------------------------------------------------------------------
# shared steps

def check_produced(ctx, name, topic, partitions, want):
    ends = kh.end_offsets(ctx.boot, topic, partitions)
    ctx.res.check("%s: topic holds every produced event" % name, sum(ends) == want,
                  "%d messages in %d partitions (%s), want %d" % (sum(ends), partitions, ends, want))
    return ends


def served_detail(sc, expected):
    served = sc.served_copy()
    out = []
    for fam in TRACKED:
        ok, detail = kh.compare_series(fam, kh.expected_series(expected, fam), kh.project(served, fam), max_lines=5)
        if not ok:
            out.append(detail)
    return "\n".join(out)


def wait_exact(ctx, name, sc, expected, daemons, timeout=EXACT_TIMEOUT_S):
    """Waits until what the live targets of sc serve, summed over shard,
    equals expected (every event checkpointed and every hold over), then
    for 3 more scrapes of each target. The served totals must be exact."""
    t0 = time.monotonic()
    # Gives up early only when nothing served changed for STALL_S (the
    # checkpoints are stuck): a failing run should not hold CI for the
    # whole deadline.
    last = {"served": None, "t": t0}

    def done(s):
        if kh.served_matches(s, expected, TRACKED):
            return True
        if not any(d.alive() for d in daemons):
            return "stalled"  # every daemon has exited: nothing more will come
        served = s.served()
        now = time.monotonic()
        if served != last["served"]:
            last["served"], last["t"] = served, now
        elif now - last["t"] > STALL_S:
            return "stalled"
        return False
    ok = sc.wait_for(done, timeout)
    stalled = ok == "stalled"
    ok = ok is True
    detail = "after %.1f s%s" % (time.monotonic() - t0, "" if not stalled else " (every daemon exited)"
                                 if not any(d.alive() for d in daemons)
                                 else " (nothing served changed for %d s)" % STALL_S)
    if not ok:
        detail += ": served (summed over shard) differs:\n%s\n%s\n%s" % (
            served_detail(sc, expected), sc.summary(), "\n".join(
                "--- %s:\n%s" % (d.name, d.log_tail(15)) for d in daemons))
    ctx.res.check("%s: %s: the served counters reach the expected totals exactly" % (name, sc.name), ok, detail)
    if ok:
        sc.wait_scrapes(3, timeout=120)
    return ok


def compare_observed(ctx, name, expected, sc, what=None):
    """The Scraper's counter semantics, summed over shard, per family."""
    ok = True
    what = what or "%s: counter semantics over every daemon" % sc.name
    anomalies = sc.counters.anomalies()
    for fam in TRACKED:
        good, detail = kh.compare_series(fam, kh.expected_series(expected, fam), sc.observed(fam))
        if not good and anomalies:
            detail += "\n(" + anomalies + ")"
        ok &= ctx.res.check("%s: %s: %s exact" % (name, what, fam), good, detail)
    # Served values are checkpointed and a restore brings back at least
    # what was served, so no series ever goes down (a decrease is what
    # makes counter semantics count a restored value again).
    dec = sc.counters.decreases
    ctx.res.check("%s: %s: no served series ever decreased" % (name, sc.name), not dec,
                  "" if not dec else "%d decreases, first: %s" % (len(dec), "; ".join(
                      "%s %d -> %d (%s at %s)" % (kh.identity_str(i), p, v, src, kh._when(t))
                      for t, src, i, p, v in dec[:5])))
    return ok


def scraper_health(ctx, name, sc):
    ctx.res.check("%s: %s: scrapes parse cleanly, every series has its shard label last" % (name, sc.name),
                  not sc.parse_errors, sc.summary() if not sc.parse_errors else "\n".join(sc.parse_errors[:10]))


def ready_check(ctx, what, d, timeout):
    ok = d.wait_ready(timeout)
    return ctx.res.check(what, ok, "" if ok else "not ready within %d s (alive: %s)\n%s" % (
        timeout, d.alive(), d.log_tail(20)))


def sigterm_check(ctx, name, d, bound=None):
    """SIGTERM; exit 0 within bound (default kafka.shutdown_timeout_ms plus
    the margin)."""
    bound = bound or SHUTDOWN_TIMEOUT_MS / 1000.0 + SIGTERM_MARGIN_S
    t0 = time.monotonic()
    rc = d.terminate(timeout=bound)
    dt = time.monotonic() - t0
    ctx.res.check("%s: %s SIGTERM -> exit 0 within %.0f s" % (name, d.name, bound), rc == 0,
                  "exit status %s after %.1f s%s" % (rc, dt, "" if rc == 0 else "\n" + d.log_tail(20)))
    return rc, dt


def letters_of(ctx, dlq, topic):
    """Dead letters: {(source partition, offset): [letter]} and problems."""
    letters = kh.consume_all(ctx.boot, dlq, timeout=300)
    pos, problems = {}, []
    for m in letters:
        h = m.headers
        if h.get("ai_finops_source_topic") != topic:
            problems.append("letter %r: source topic header %r, want %r" % (m, h.get("ai_finops_source_topic"), topic))
        try:
            k = (int(h.get("ai_finops_source_partition", "")), int(h.get("ai_finops_source_offset", "")))
        except ValueError:
            problems.append("letter %r: no source partition/offset headers" % (m,))
            continue
        pos.setdefault(k, []).append(m)
    return letters, pos, problems


def check_letters_once(ctx, name, dlq, topic, want_count=None, want_positions=None, timeout=60):
    """Every rejected event in the DLQ exactly once: no (source partition,
    offset) twice, and either exactly want_positions or want_count of them.
    Waits (read_committed) up to timeout for the last letters."""
    deadline = time.monotonic() + timeout
    while True:
        letters, pos, problems = letters_of(ctx, dlq, topic)
        dups = {k: len(v) for k, v in pos.items() if len(v) > 1}
        if want_positions is not None:
            missing = sorted(set(want_positions) - set(pos))
            extra = sorted(set(pos) - set(want_positions))
            ok = not missing and not extra
        else:
            missing = extra = []
            ok = len(pos) == want_count
        ok = ok and not dups and not problems
        if ok or time.monotonic() > deadline or dups or extra:
            break
        time.sleep(1.0)
    want = len(want_positions) if want_positions is not None else want_count
    ctx.res.check("%s: each rejected event is in the DLQ exactly once (by source partition and offset)" % name,
                  ok, "%d letters, %d source positions, want %d; %d twice %s; missing %s; unexpected %s; %s" % (
                      len(letters), len(pos), want, len(dups), sorted(dups.items())[:5], missing[:5], extra[:5],
                      problems[:5]))
    return letters, pos


def rejected_positions(ctx, topic, since=None):
    """{(partition, offset): reason} of every message of the topic that the
    contract rejects (gen_events.classify), optionally only at offsets >=
    since[partition]."""
    out = {}
    for m in kh.consume_all(ctx.boot, topic, timeout=300):
        if since is not None and m.offset < since.get(m.partition, 0):
            continue
        value = m.value if m.value is not None else b""
        if not value.strip(b" \t\r"):
            reason = "invalid_json"
        else:
            reason, _ = gen_events.classify(value)
        if reason:
            out[(m.partition, m.offset)] = reason
    return out


def stop_all(*things):
    for t in things:
        if t is None:
            continue
        try:
            t.stop() if not isinstance(t, kh.Daemon) else t.close()
        except Exception as e:  # keep stopping the rest
            log("stopping %r: %s" % (t, e))


# ---------------------------------------------------------------------------
# 1. exact_1m

def test_exact_1m(ctx):
    name, res = "exact_1m", ctx.res
    wd = ctx.workdir(name)
    parts = 8
    topic, dlq = ctx.topics(name, parts)
    es = kh.generate(ctx.args.workdir, "events-1m", ctx.args.count_1m, seed=ctx.seed, bad_ratio=0.003)
    count = es.count
    t0 = time.monotonic()
    path = kh.write_keyed(os.path.join(wd, "keyed.txt"), kh.keyed(es.lines))
    es._lines = None  # free ~300 MB
    kh.produce_file(ctx.boot, topic, path, timeout=900)
    os.unlink(path)
    log("%s: produced %d events in %.1f s" % (name, count, time.monotonic() - t0))
    check_produced(ctx, name, topic, parts, count)

    # A hold well above the 1.5 s before the first scrape: every series
    # first checkpointed before that scrape is still shown as 0.
    d = ctx.daemon(name, "daemon", wd, topic, dlq, hold_ms=10000)
    sc = ctx.scraper(topic)
    try:
        t_start = time.monotonic()
        d.start()
        if not ready_check(ctx, "%s: daemon ready" % name, d, 120):
            return
        time.sleep(1.5)
        sc.add_target(d.name, d.metrics_url)
        first = sc.wait_for(lambda s: s.latest.get(d.name), timeout=60)
        nonzero = {i: v for i, v in first.values.items() if v} if first else {}
        res.check("%s: a first scrape %.1f s after start shows every counter as 0 (new-series hold)"
                  % (name, first.time - t_start if first else -1),
                  first is not None and not nonzero,
                  "%d series, %d non-zero, e.g. %s" % (len(first.values) if first else 0, len(nonzero), sorted(
                      (kh.identity_str(i), v) for i, v in nonzero.items())[:5]))
        if not wait_exact(ctx, name, sc, es.totals, [d], timeout=900):
            return
        wall = time.monotonic() - t_start
        log("%s: served exactly %.1f s after the daemon's start (%.0f events/s incl. group join and the %d ms hold)"
            % (name, wall, count / wall, d.hold_ms))
        compare_observed(ctx, name, es.totals, sc)
        res.check("%s: every series was first seen at 0" % name, not sc.counters.first_nonzero,
                  sc.counters.anomalies())
        # one full scrape: every family, strict exposition checks
        status, body = kh.http_get(d.metrics_url, timeout=60)
        with open(os.path.join(wd, "metrics.txt"), "wb") as f:
            f.write(body)
        ex = expo.parse(body)
        res.check("%s: full exposition parses cleanly" % name, status == 200 and not ex.errors,
                  "HTTP %s, %d samples, %d problems %s" % (status, len(ex.samples), len(ex.errors), ex.errors[:5]))
        values, _, _, errors = kh.parse_tracked(body.decode("utf-8", "replace"), (TOKENS, GPU))
        for fam in (TOKENS, GPU):
            ok, detail = kh.compare_series(fam, kh.expected_series(es.totals, fam), kh.project(values, fam))
            res.check("%s: served %s exact (summed over shard)" % (name, fam), ok and not errors,
                      detail + ("" if not errors else "\n" + "\n".join(errors[:5])))
        check_letters_once(ctx, name, dlq, topic, want_count=es.totals["events"]["rejected"])
        try:
            desc = kh.describe_topic(ctx.boot, d.state_topic)
            res.check("%s: the daemon created its state topic compacted" % name,
                      "cleanup.policy=compact" in desc, desc[-1500:])
        except RuntimeError as e:
            res.check("%s: the daemon created its state topic compacted" % name, False, str(e))
        scraper_health(ctx, name, sc)
        sigterm_check(ctx, name, d)
    finally:
        stop_all(sc, d)


# ---------------------------------------------------------------------------
# 2. dead_letters

def bad_events():
    """(reason, payload bytes): one or more per reject reason a message can produce."""
    T = b'"team":"dlq-test","project":"bad-events","source":"openai-api"'
    big_pad = b"x" * 66000
    deep = b"[" * 17 + b"]" * 17
    return [
        ("invalid_json", b'{' + T + b',"cost_usd":01}'),
        ("invalid_json", b'{' + T + b',"cost_usd":1.5'),
        ("not_object", b'[1,2,3]'),
        ("not_object", b'"just a string"'),
        ("trailing_data", b'{' + T + b',"cost_usd":1} x'),
        ("too_large", b'{' + T + b',"cost_usd":1,"pad":"' + big_pad + b'"}'),
        ("too_deep", b'{' + T + b',"cost_usd":1,"nested":' + deep + b'}'),
        ("wrong_type", b'{' + T + b',"cost_usd":"12"}'),
        ("wrong_type", b'{"team":1,"project":"bad-events","cost_usd":1}'),
        ("duplicate_field", b'{' + T + b',"cost_usd":1,"cost_usd":1000}'),
        ("invalid_cost", b'{' + T + b',"cost_usd":-1}'),
        ("invalid_cost", b'{' + T + b',"cost_usd":1e400}'),
        ("invalid_tokens", b'{' + T + b',"cost_usd":1,"input_tokens":1.5}'),
        ("invalid_usage", b'{' + T + b',"cost_usd":1,"gpu_count":-1,"duration_seconds":10}'),
        ("invalid_label", b'{"team":"dlq-\xff-test","project":"bad-events","cost_usd":1}'),
        ("invalid_label", b'{"team":"dlq-test","project":"__overflow__","cost_usd":1}'),
        ("invalid_timestamp", b'{' + T + b',"cost_usd":1,"timestamp":"2025-13-01T00:00:00Z"}'),
        ("unpriced", b'{"team":"dlq-test","project":"bad-events"}'),
    ]


def interleave_bad(pairs, bad, rng):
    """Inserts each (reason, payload) of bad at a random place in the keyed
    pairs, keyed like a random good event (so spread over partitions)."""
    for reason, payload in bad:
        pos = rng.randrange(len(pairs) + 1)
        pairs.insert(pos, (rng.choice(pairs)[0] if pairs else b"dlq", payload))


def expected_with_bad(es, bad):
    """The generator's totals of the good events es plus the rejects of bad."""
    expected = dict(es.totals)
    rej = {}
    for reason, _ in bad:
        rej[reason] = rej.get(reason, 0) + 1
    expected["rejected"] = rej
    expected["events"] = {"accepted": es.totals["events"]["accepted"], "rejected": len(bad)}
    return expected


def test_dead_letters(ctx):
    name, res = "dead_letters", ctx.res
    wd = ctx.workdir(name)
    parts = 4
    topic, dlq = ctx.topics(name, parts)
    es = kh.generate(ctx.args.workdir, "events-dlq-good", 3000, seed=ctx.seed + 1, bad_ratio=0.0)
    rng = random.Random(ctx.seed + 1)
    pairs = kh.keyed(es.lines)
    bad = bad_events()
    interleave_bad(pairs, bad, rng)
    kh.produce_pairs(ctx.boot, topic, pairs, wd, "dlq")
    check_produced(ctx, name, topic, parts, len(pairs))
    expected = expected_with_bad(es, bad)

    d = ctx.daemon(name, "daemon", wd, topic, dlq)
    sc = ctx.scraper(topic)
    try:
        d.start()
        sc.add_target(d.name, d.metrics_url)
        if not wait_exact(ctx, name, sc, expected, [d], timeout=300):
            return
        compare_observed(ctx, name, expected, sc)
        scraper_health(ctx, name, sc)
        sigterm_check(ctx, name, d)
    finally:
        stop_all(sc, d)

    # the dead-letter topic, byte for byte, each source message once
    source = {(m.partition, m.offset): m for m in kh.consume_all(ctx.boot, topic)}
    want_pos = {k for k, m in source.items() if m.value in {p for _, p in bad}}
    letters, pos = check_letters_once(ctx, name, dlq, topic, want_positions=want_pos)
    want = {}
    for reason, payload in bad:
        want.setdefault(payload, []).append(reason)
    problems = []
    for m in letters:
        h = m.headers
        try:
            src = source.get((int(h.get("ai_finops_source_partition", "-1")),
                              int(h.get("ai_finops_source_offset", "-1"))))
        except ValueError:
            src = None
        if src is None:
            problems.append("letter %r: headers name no message of %s" % (m, topic))
        else:
            if src.value != m.value:
                problems.append("letter %r: value differs from the source message %r (%r vs %r)"
                                % (m, src, (m.value or b"")[:80], (src.value or b"")[:80]))
            if src.key != m.key:
                problems.append("letter %r: key %r differs from the source key %r" % (m, m.key, src.key))
        payload = m.value if m.value is not None else b""
        if payload not in want:
            problems.append("letter %r is not one of the bad events: %r" % (m, payload[:120]))
        elif h.get("ai_finops_reason") not in want[payload]:
            problems.append("letter %r: reason %r, want %s" % (m, h.get("ai_finops_reason"), want[payload]))
    res.check("%s: each letter is its source message byte for byte, with reason and source headers" % name,
              not problems and letters, "%d letters for %d bad events" % (len(letters), len(bad)) if not problems
              else "%d problems:\n%s" % (len(problems), "\n".join(problems[:20])))


# ---------------------------------------------------------------------------
# 3. dlq_outage

def test_dlq_outage(ctx):
    """The dead-letter topic is deleted while bad events keep coming: the
    checkpoints (whose transactions carry the letters) cannot complete.
    Daemon a runs through the whole outage; daemon b gets SIGTERM in the
    middle of it and must exit 0 within its bound (its partition moves to
    a); /healthz answers 200 throughout. The topic is recreated: everything
    is observed exactly once, and each rejected event after the deletion is
    in the new topic exactly once (the letters before it went with the
    deleted topic; they were all there, once, before)."""
    name, res = "dlq_outage", ctx.res
    wd = ctx.workdir(name)
    parts = 2
    topic, dlq = ctx.topics(name, parts)
    es = kh.generate(ctx.args.workdir, "events-dlq-outage", 6000, seed=ctx.seed + 5, bad_ratio=0.0)
    rng = random.Random(ctx.seed + 5)
    pairs = kh.keyed(es.lines)
    bad = bad_events() * 9
    interleave_bad(pairs, bad, rng)
    expected = expected_with_bad(es, bad)
    n = len(pairs)
    part1, part2, part3 = pairs[: n // 3], pairs[n // 3: 2 * n // 3], pairs[2 * n // 3:]

    a = ctx.daemon(name, "daemon-a", wd, topic, dlq, hold_ms=MULTI_HOLD_MS)
    b = ctx.daemon(name, "daemon-b", wd, topic, dlq, hold_ms=MULTI_HOLD_MS)
    sc = ctx.scraper(topic)
    hp = kh.HealthPoller()
    try:
        hp.start()
        for d in (a, b):
            d.start()
            sc.add_target(d.name, d.metrics_url)
            if not ready_check(ctx, "%s: %s ready" % (name, d.name), d, 120):
                return
            hp.watch(d)
        kh.produce_pairs(ctx.boot, topic, part1, wd, "part1")
        ends1 = kh.end_offsets(ctx.boot, topic, parts)
        want1 = rejected_positions(ctx, topic)
        t0 = time.monotonic()
        got = None
        while time.monotonic() - t0 < 180:
            _, pos, _ = letters_of(ctx, dlq, topic)
            if set(pos) >= set(want1):
                got = pos
                break
            time.sleep(1.0)
        if not res.check("%s: the letters of the first third are in the DLQ, once each, before the outage" % name,
                         got is not None and set(got) == set(want1) and all(len(v) == 1 for v in got.values()),
                         "want %d positions, DLQ holds %s" % (len(want1), None if got is None else len(got))):
            return
        t_del = time.monotonic()
        kh.delete_topic(ctx.boot, dlq)
        while kh.topic_exists(ctx.boot, dlq) and time.monotonic() - t_del < 120:
            time.sleep(0.5)
        log("%s: dead-letter topic deleted (%.1f s)" % (name, time.monotonic() - t_del))
        kh.produce_pairs(ctx.boot, topic, part2, wd, "part2")
        time.sleep(4.0)  # checkpoints fail meanwhile; /healthz is polled throughout
        hp.unwatch(b)
        sigterm_check(ctx, name + " (during the outage)", b)
        time.sleep(4.0)
        gone = not kh.topic_exists(ctx.boot, dlq)
        snap = sc.latest_of(a.name)
        res.check("%s: the dead-letter topic was still missing at the end of the outage" % name, gone,
                  "" if gone else "it exists again before the test recreated it")
        log("%s: during the outage: daemon-a checkpoint failures %s, checkpoints %s" % (
            name, snap.kafka.get("ai_finops_kafka_checkpoint_failures_total") if snap else "?",
            snap.kafka.get("ai_finops_kafka_checkpoints_total") if snap else "?"))
        ctx.kb.create_topics({dlq: 1})
        log("%s: dead-letter topic recreated after %.1f s" % (name, time.monotonic() - t_del))
        kh.produce_pairs(ctx.boot, topic, part3, wd, "part3")
        check_produced(ctx, name, topic, parts, n)
        if not wait_exact(ctx, name, sc, expected, [a, b]):
            return
        compare_observed(ctx, name, expected, sc)
        ok, detail = hp.report()
        res.check("%s: /healthz 200 throughout on every live daemon (outage included)" % name, ok, detail)
        scraper_health(ctx, name, sc)
        hp.unwatch(a)
        sigterm_check(ctx, name, a)
        want23 = rejected_positions(ctx, topic, since=dict(enumerate(ends1)))
        check_letters_once(ctx, name + " (after the deletion)", dlq, topic, want_positions=set(want23))
    finally:
        stop_all(hp, sc, a, b)


def kh_wait(pred, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


# ---------------------------------------------------------------------------
# 4. kill_restart

def kill_plan(rng, kills):
    """Modes of the kills: 'early' (within 0.3 s of the victim's start),
    'moving' (two daemons in the group; 0.3-3 s after a member's start, so
    while partitions move), 'random' (0.3-3 s after the victim is ready).
    Returns (modes, two-daemon phase range)."""
    modes = ["random"] * kills
    p0 = kills // 3
    phase = range(p0, p0 + max(2, min(kills // 4, kills - p0 - 2)))
    for i in phase:
        modes[i] = "moving"
    # not the kill right after the two-daemon phase: the SIGTERM of the
    # second daemon comes first, so its victim started long before
    rest = [i for i in range(kills) if i not in phase and i != phase.stop]
    for i in rng.sample(rest, min(len(rest) - 1, max(2, kills // 5))):
        modes[i] = "early"
    return modes, phase


def test_kill_restart(ctx):
    name, res = "kill_restart", ctx.res
    parts = 8
    seed = ctx.seed + 2
    rng = random.Random(seed)
    wd, topic, dlq, es, rest, tail = ctx.keyed_stream(name, parts, "events-kill-%d" % seed, ctx.args.count_kill, seed)
    count = es.count
    n_pre = len(rest) * 3 // 10
    n_burst = len(rest) // 10
    preload = rest[:n_pre]
    bursts = [rest[len(rest) - (i + 1) * n_burst: len(rest) - i * n_burst] for i in range(3)]
    stream = rest[n_pre: len(rest) - 3 * n_burst]
    kills = ctx.args.kills
    modes, phase = kill_plan(rng, kills)
    burst_at = sorted(rng.sample(range(kills), 3))
    log("%s: seed %d, %d events (preload %d, stream %d, bursts 3x%d, tail %d); %d kills: %s; two daemons for "
        "kills %d-%d; bursts before kills %s" % (name, seed, count, len(preload), len(stream), n_burst, len(tail),
                                                 kills, " ".join(m[0] for m in modes), phase.start + 1, phase.stop,
                                                 [b + 1 for b in burst_at]))
    kh.produce_pairs(ctx.boot, topic, preload, wd, "preload")

    a = ctx.daemon(name, "daemon-a", wd, topic, dlq, hold_ms=KILL_HOLD_MS)
    b = ctx.daemon(name, "daemon-b", wd, topic, dlq, hold_ms=KILL_HOLD_MS)
    sc = ctx.scraper(topic)
    reader = ctx.scraper(topic, name="reader", interval=(0.05, 0.35), seed=1)
    hogs = kh.CpuHogs()
    streamer = None
    kill_log = []
    txn_gen = {a.name: 0, b.name: 0}

    def restart(d):
        reuse = rng.random() < 0.5
        if not reuse:
            txn_gen[d.name] += 1
            d.txn_id = "txn-%s-%s-%d" % (name, d.name, txn_gen[d.name])
        d.start()
        return reuse

    try:
        hogs.start()
        log("%s: %d CPU hogs busy" % (name, hogs.n))
        a.start()
        for s in (sc, reader):
            s.add_target(a.name, a.metrics_url)
            s.add_target(b.name, b.metrics_url)
        streamer = kh.StreamProducer(ctx.boot, topic, stream, rate=len(stream) / (kills * 6.0))
        streamer.start()
        last_start = {a.name: time.monotonic()}
        reused = None
        for i, mode in enumerate(modes):
            if i == phase.start:
                b.start()
                last_start[b.name] = time.monotonic()
            if i == phase.stop:
                b.wait_ready(timeout=180)  # a SIGTERM before its handlers are set would just kill it
                rc, dt = sigterm_check(ctx, name + " (end of the two-daemon phase)", b)
                log("%s: daemon-b left (exit %s after %.1f s)" % (name, rc, dt))
            victim = rng.choice([a, b]) if i in phase else a
            if mode == "early":
                t_at = last_start[victim.name] + rng.uniform(0.05, 0.3)
            elif mode == "moving":
                t_at = max(last_start.values()) + rng.uniform(0.3, 3.0)
            else:
                if not victim.wait_ready(timeout=180):
                    res.check("%s: %s ready before kill %d" % (name, victim.name, i + 1), False,
                              "not ready within 180 s; alive=%s\n%s" % (victim.alive(), victim.log_tail(30)))
                    return
                t_at = time.monotonic() + rng.uniform(0.3, 3.0)
            left = t_at - time.monotonic()
            if left > 0:
                time.sleep(left)
            assigned = {d.name: (sc.latest_of(d.name).kafka.get("ai_finops_kafka_assigned_partitions")
                                 if sc.latest_of(d.name) and d.alive() else None) for d in (a, b)}
            t_kill = time.monotonic()
            since = t_kill - last_start[victim.name]
            victim.kill()
            reused = restart(victim)
            last_start[victim.name] = time.monotonic()
            ready = mode == "random"  # killed after /readyz said 200
            if i in burst_at:  # after the restart: an early kill must not wait for it
                kh.produce_pairs(ctx.boot, topic, bursts[burst_at.index(i)], wd, "burst")
            kill_log.append((mode, since, "kill %d (%s) of %s %.2f s after its start (ready: %s), at %.1f s; "
                             "%d streamed; assigned partitions at the last scrapes %s; restarted with %s transactional id"
                             % (i + 1, mode, victim.name, since, ready, t_kill - kh._T0, streamer.sent, assigned,
                                "the same" if reused else "a fresh")))
            log("%s: %s" % (name, kill_log[-1][2]))
        if b.alive():
            b.wait_ready(timeout=180)  # a SIGTERM before its handlers are set would just kill it
            sigterm_check(ctx, name + " (end of the two-daemon phase)", b)
        if not a.wait_ready(timeout=180):
            res.check("%s: daemon ready after the last restart" % name, False, a.log_tail(30))
            return
        streamer.join(timeout=600)
        if not res.check("%s: stream producer" % name, not streamer.error and not streamer.is_alive(),
                         streamer.error or ("still running" if streamer.is_alive() else "")):
            return
        kh.produce_pairs(ctx.boot, topic, tail, wd, "tail")
        check_produced(ctx, name, topic, parts, count)
        # (how soon an early kill lands is reported, not checked: timing
        # never fails a test)
        early = sum(1 for m, _, _ in kill_log if m == "early")
        within = sum(1 for m, since, _ in kill_log if m == "early" and since <= 0.3)
        moving = sum(1 for m, _, _ in kill_log if m == "moving")
        res.check("%s: %d SIGKILLs, %d aimed within 0.3 s of a start (%d landed within it), %d while two daemons "
                  "share the group" % (name, len(kill_log), early, within, moving),
                  len(kill_log) == kills and early >= 1 and moving >= 1, "\n".join(ln for _, _, ln in kill_log))
        res.check("%s: the CPU hogs ran throughout the kills" % name, hogs.alive() == hogs.n,
                  "%d of %d hogs alive" % (hogs.alive(), hogs.n))
        ok1 = wait_exact(ctx, name, sc, es.totals, [a, b])
        ok2 = wait_exact(ctx, name, reader, es.totals, [a, b])
        hogs.stop()
        if ok1:
            compare_observed(ctx, name, es.totals, sc)
        if ok2:
            compare_observed(ctx, name, es.totals, reader)
        log("%s: %s; %s; anomalies: %s" % (name, sc.summary(), reader.summary(),
                                           sc.counters.anomalies() or "none"))
        check_letters_once(ctx, name, dlq, topic, want_count=es.totals["events"]["rejected"])
        scraper_health(ctx, name, sc)
        scraper_health(ctx, name, reader)
        sigterm_check(ctx, name, a)
        if not (ok1 and ok2):
            print("    reproduce: %s --binary %s --workdir %s --only kill_restart --seed %d"
                  % (sys.argv[0], ctx.binary, ctx.args.workdir, ctx.seed), flush=True)
    finally:
        hogs.stop()
        if streamer is not None:
            streamer.stop()
        stop_all(sc, reader, a, b)


# ---------------------------------------------------------------------------
# 5. two_daemons

def test_two_daemons(ctx):
    name, res = "two_daemons", ctx.res
    parts = 8
    wd, topic, dlq, es, rest, tail = ctx.keyed_stream(name, parts, "events-two", ctx.args.count_two, ctx.seed + 3)
    count = es.count
    preload, stream = rest[: len(rest) // 3], rest[len(rest) // 3:]
    kh.produce_pairs(ctx.boot, topic, preload, wd, "preload")
    a = ctx.daemon(name, "daemon-a", wd, topic, dlq, hold_ms=MULTI_HOLD_MS)
    b = ctx.daemon(name, "daemon-b", wd, topic, dlq, hold_ms=MULTI_HOLD_MS)
    sc = ctx.scraper(topic)
    streamer = kh.StreamProducer(ctx.boot, topic, stream, rate=len(stream) / 12.0)
    try:
        a.start()
        sc.add_target(a.name, a.metrics_url)
        if not ready_check(ctx, "%s: a ready" % name, a, 120):
            return
        b.start()
        sc.add_target(b.name, b.metrics_url)
        if not ready_check(ctx, "%s: b ready" % name, b, 120):
            return
        streamer.start()
        time.sleep(5.0)
        log("%s: SIGTERM to b mid-stream (%d of %d streamed)" % (name, streamer.sent, len(stream)))
        sigterm_check(ctx, name, b)
        streamer.join(timeout=300)
        if not res.check("%s: stream producer" % name, not streamer.error and not streamer.is_alive(),
                         streamer.error or ""):
            return
        kh.produce_pairs(ctx.boot, topic, tail, wd, "tail")
        check_produced(ctx, name, topic, parts, count)
        if not wait_exact(ctx, name, sc, es.totals, [a, b]):
            return
        compare_observed(ctx, name, es.totals, sc)
        check_letters_once(ctx, name, dlq, topic, want_count=es.totals["events"]["rejected"])
        scraper_health(ctx, name, sc)
        sigterm_check(ctx, name, a)
    finally:
        streamer.stop()
        stop_all(sc, a, b)


# ---------------------------------------------------------------------------
# 6. rebalance

def test_rebalance(ctx):
    """1 -> 3 -> 1 daemons while events stream in."""
    name, res = "rebalance", ctx.res
    parts = 8
    wd, topic, dlq, es, rest, tail = ctx.keyed_stream(name, parts, "events-rebalance", ctx.args.count_rebalance,
                                                      ctx.seed + 6)
    count = es.count
    preload, stream = rest[: len(rest) // 5], rest[len(rest) // 5:]
    kh.produce_pairs(ctx.boot, topic, preload, wd, "preload")
    ds = [ctx.daemon(name, "daemon-%s" % c, wd, topic, dlq, hold_ms=MULTI_HOLD_MS) for c in "abc"]
    a, b, c = ds
    sc = ctx.scraper(topic)
    reader = ctx.scraper(topic, name="reader", interval=(0.05, 0.35), seed=1)
    hp = kh.HealthPoller()
    stream_s = 60.0
    streamer = kh.StreamProducer(ctx.boot, topic, stream, rate=len(stream) / stream_s)
    try:
        hp.start()
        a.start()
        for s in (sc, reader):
            for d in ds:
                s.add_target(d.name, d.metrics_url)
        if not ready_check(ctx, "%s: a ready" % name, a, 120):
            return
        hp.watch(a)
        streamer.start()
        time.sleep(stream_s / 6)
        log("%s: 1 -> 3 (%d of %d streamed)" % (name, streamer.sent, len(stream)))
        b.start()
        c.start()
        for d in (b, c):
            if not ready_check(ctx, "%s: %s ready" % (name, d.name), d, 120):
                return
            hp.watch(d)
        time.sleep(stream_s / 3)

        def assigned(s):
            return {d.name: (s.latest[d.name].kafka.get("ai_finops_kafka_assigned_partitions")
                             if d.name in s.latest else None) for d in ds}
        spread = sc.wait_for(lambda s: all(v for v in assigned(s).values()) and assigned(s), timeout=120)
        res.check("%s: the partitions were spread over the three daemons" % name, bool(spread),
                  "ai_finops_kafka_assigned_partitions: %s" % (spread or assigned(sc)))
        log("%s: 3 -> 1 (%d of %d streamed)" % (name, streamer.sent, len(stream)))
        for d in (b, c):
            hp.unwatch(d)
            sigterm_check(ctx, name, d)
        streamer.join(timeout=600)
        if not res.check("%s: stream producer" % name, not streamer.error and not streamer.is_alive(),
                         streamer.error or ""):
            return
        kh.produce_pairs(ctx.boot, topic, tail, wd, "tail")
        check_produced(ctx, name, topic, parts, count)
        ok1 = wait_exact(ctx, name, sc, es.totals, ds)
        ok2 = wait_exact(ctx, name, reader, es.totals, ds)
        if ok1:
            compare_observed(ctx, name, es.totals, sc)
        if ok2:
            compare_observed(ctx, name, es.totals, reader)
        ok, detail = hp.report()
        res.check("%s: /healthz 200 throughout on every live daemon" % name, ok, detail)
        check_letters_once(ctx, name, dlq, topic, want_count=es.totals["events"]["rejected"])
        scraper_health(ctx, name, sc)
        hp.unwatch(a)
        sigterm_check(ctx, name, a)
    finally:
        streamer.stop()
        stop_all(hp, sc, reader, *ds)


# ---------------------------------------------------------------------------
# 7. broker_restart

def test_broker_restart(ctx):
    name, res = "broker_restart", ctx.res
    parts = 4
    wd, topic, dlq, es, rest, tail = ctx.keyed_stream(name, parts, "events-broker", ctx.args.count_broker,
                                                      ctx.seed + 4)
    count = es.count
    q = len(rest) // 4
    preload, stream1, stream2, after = rest[:q], rest[q:2 * q], rest[2 * q:3 * q], rest[3 * q:]
    kh.produce_pairs(ctx.boot, topic, preload, wd, "preload")
    d = ctx.daemon(name, "daemon", wd, topic, dlq)
    sc = ctx.scraper(topic)
    # kcat exits when every broker is down, so the stream pauses for the
    # outage: it runs right up to the broker's stop, and resumes after.
    s1 = kh.StreamProducer(ctx.boot, topic, stream1, rate=len(stream1) / 4.0)
    s2 = None
    try:
        d.start()
        sc.add_target(d.name, d.metrics_url)
        if not ready_check(ctx, "%s: daemon ready" % name, d, 120):
            return
        s1.start()
        s1.join(timeout=120)
        if not res.check("%s: stream producer before the outage" % name, not s1.error and not s1.is_alive(),
                         s1.error or ""):
            return
        log("%s: stopping the broker right after the stream (%d events served)" % (
            name, sum(kh.project(sc.served_copy(), EVENTS).values())))
        t_stop = time.monotonic()
        ctx.kb.stop()
        t_stopped = time.monotonic()
        ok = d.wait_ready(timeout=60, want=503)
        res.check("%s: /readyz 503 while the broker is down" % name, ok,
                  "broker stop took %.1f s; /readyz %s after %.1f s" % (
                      t_stopped - t_stop, d.readyz(), time.monotonic() - t_stopped))
        time.sleep(3.0)
        t_restart = time.monotonic()
        ctx.kb.restart()
        log("%s: broker restarted in %.1f s" % (name, time.monotonic() - t_restart))
        t_up = time.monotonic()
        ok = d.wait_ready(timeout=180)
        res.check("%s: /readyz 200 again after the broker restart" % name, ok,
                  "after %.1f s: /readyz %s%s" % (time.monotonic() - t_up, d.readyz(),
                                                  "" if ok else "\n" + d.log_tail(20)))
        s2 = kh.StreamProducer(ctx.boot, topic, stream2, rate=len(stream2) / 4.0)
        s2.start()
        s2.join(timeout=120)
        if not res.check("%s: stream producer after the outage" % name, not s2.error and not s2.is_alive(),
                         s2.error or ""):
            return
        kh.produce_pairs(ctx.boot, topic, after + tail, wd, "after")
        check_produced(ctx, name, topic, parts, count)
        if not wait_exact(ctx, name, sc, es.totals, [d]):
            return
        compare_observed(ctx, name, es.totals, sc)
        check_letters_once(ctx, name, dlq, topic, want_count=es.totals["events"]["rejected"])
        scraper_health(ctx, name, sc)
        sigterm_check(ctx, name, d)
    finally:
        s1.stop()
        if s2 is not None:
            s2.stop()
        stop_all(sc, d)


# ---------------------------------------------------------------------------
# 8. prometheus

def batches_with_new_series(pairs, nb, rng):
    """Splits keyed events into nb batches so that every batch brings teams
    (so series, and in a team's partition) never seen before: team j first
    appears in batch j % nb; an event goes to the later of its team's first
    batch and its own place in the stream."""
    teams = []
    seen = set()
    for k, _ in pairs:
        if k not in seen:
            seen.add(k)
            teams.append(k)
    rng.shuffle(teams)
    first = {t: j % nb for j, t in enumerate(teams)}
    out = [[] for _ in range(nb)]
    n = len(pairs)
    for i, (k, v) in enumerate(pairs):
        out[max(first[k], i * nb // n)].append((k, v))
    return out


def prom_check(ctx, name, prom, expected, t_done, timeout=300):
    """Waits until the last stored sample of each series adds up to the
    expected totals and Prometheus has scraped twice more, then applies
    counter semantics to every RAW sample it stored: exact."""
    res = ctx.res
    deadline = time.monotonic() + timeout
    view, served_ok, t_final = None, False, None
    while time.monotonic() < deadline:
        try:
            view = ph.PromView(prom, TRACKED)
        except RuntimeError as e:
            log("%s: %s" % (name, e))
            time.sleep(1.0)
            continue
        last = view.last()
        served_ok = all({k: v for k, v in kh.project(last, f).items() if v}
                        == {k: v for k, v in kh.expected_series(expected, f).items() if v} for f in TRACKED)
        if served_ok:
            if t_final is None:
                t_final = view.last_time()
            elif view.last_time() >= t_final + 2.5:  # two more scrapes of 1 s
                break
        time.sleep(1.0)
    detail = ""
    if not served_ok and view is not None:
        detail = "\n".join(kh.compare_series(f, kh.expected_series(expected, f), kh.project(view.last(), f),
                                             max_lines=5)[1] for f in TRACKED)
    res.check("%s: %s: its last samples reach the expected totals exactly" % (name, prom.name), served_ok,
              detail + ("" if served_ok else "\n" + prom.log_tail(10)))
    if view is None:
        return
    res.check("%s: %s: every stored series has a shard label and no instance, every value exact" % (
        name, prom.name), not view.problems, "%d series, %d samples" % (len(view.series), view.samples())
        if not view.problems else "\n".join(view.problems[:10]))
    c = view.counters()
    anomalies = c.anomalies()
    for fam in TRACKED:
        good, detail = kh.compare_series(fam, kh.expected_series(expected, fam), c.projected(fam))
        if not good and anomalies:
            detail += "\n(" + anomalies + ")"
        res.check("%s: %s: counter semantics over its raw samples: %s exact" % (name, prom.name, fam), good, detail)
    res.check("%s: %s: no stored series ever decreased" % (name, prom.name), not c.decreases,
              "" if not c.decreases else anomalies)


def test_prometheus(ctx):
    name, res = "prometheus", ctx.res
    binary = ph.find_prometheus()
    if not binary:
        raise Skip("no prometheus binary (Debian package prometheus) and scripts/setup.sh could not install it")
    parts = 4
    nb = 6
    wd, topic, dlq, es, rest, tail = ctx.keyed_stream(name, parts, "events-prom", ctx.args.count_prom, ctx.seed + 7)
    rng = random.Random(ctx.seed + 7)
    batches = batches_with_new_series(rest, nb, rng)
    log("%s: %d events in %d batches of %s" % (name, es.count, nb, [len(x) for x in batches]))
    a = ctx.daemon(name, "daemon-a", wd, topic, dlq, hold_ms=MULTI_HOLD_MS)
    b = ctx.daemon(name, "daemon-b", wd, topic, dlq, hold_ms=MULTI_HOLD_MS)
    targets = ["127.0.0.1:%d" % d.port for d in (a, b)]
    proms = [ph.Prometheus(binary, wd, "prometheus-%d" % i, targets) for i in (1, 2)]
    reader = ctx.scraper(topic, name="reader", interval=(0.05, 0.35), seed=1)
    try:
        for d in (a, b):
            d.start()
            reader.add_target(d.name, d.metrics_url)
            if not ready_check(ctx, "%s: %s ready" % (name, d.name), d, 120):
                return
        for p in proms:
            p.start()
        for p in proms:
            if not res.check("%s: %s ready" % (name, p.name), p.wait_ready(), "" if p.alive() else p.log_tail(20)):
                return
        for p in proms:
            ok = kh_wait(lambda: len([v for v in p.up().values() if v == "1"]) == 2, 120, 0.5)
            if not res.check("%s: %s scrapes both daemons" % (name, p.name), ok, "up: %s" % p.up()):
                return
        for i, batch in enumerate(batches):
            kh.produce_pairs(ctx.boot, topic, batch, wd, "batch%d" % i)
            log("%s: batch %d: %d events" % (name, i + 1, len(batch)))
            if i == 1:
                sigterm_check(ctx, name + " (b leaves)", b)
            if i == 3:
                b.start()
                log("%s: b rejoins" % name)
            time.sleep(rng.uniform(2.0, 4.0))
        kh.produce_pairs(ctx.boot, topic, tail, wd, "tail")
        check_produced(ctx, name, topic, parts, es.count)
        if wait_exact(ctx, name, reader, es.totals, [a, b]):
            compare_observed(ctx, name, es.totals, reader)
        t_done = time.time()
        for p in proms:
            prom_check(ctx, name, p, es.totals, t_done)
        scraper_health(ctx, name, reader)
        sigterm_check(ctx, name, a)
        sigterm_check(ctx, name, b)
    finally:
        stop_all(reader, a, b, *proms)


TESTS = [
    ("exact_1m", test_exact_1m),
    ("dead_letters", test_dead_letters),
    ("dlq_outage", test_dlq_outage),
    ("kill_restart", test_kill_restart),
    ("two_daemons", test_two_daemons),
    ("rebalance", test_rebalance),
    ("broker_restart", test_broker_restart),
    ("prometheus", test_prometheus),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="the ai-finops-exporter executable")
    ap.add_argument("--workdir", help="where events, logs and the broker live (default: a temp dir)")
    ap.add_argument("--only", action="append", default=[],
                    help="run only this test (repeatable or comma-separated): " + ", ".join(n for n, _ in TESTS))
    ap.add_argument("--seed", type=int, default=20251123, help="seeds events and kill timings")
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs in kill_restart (>= 5)")
    ap.add_argument("--count-1m", type=int, default=1_000_000)
    ap.add_argument("--count-kill", type=int, default=200_000)
    ap.add_argument("--count-two", type=int, default=300_000)
    ap.add_argument("--count-rebalance", type=int, default=300_000)
    ap.add_argument("--count-broker", type=int, default=100_000)
    ap.add_argument("--count-prom", type=int, default=36_000)
    ap.add_argument("--keep", action="store_true", help="keep the workdir even when everything passed")
    args = ap.parse_args(argv)
    only = [n for o in args.only for n in o.split(",") if n]
    names = [n for n, _ in TESTS]
    for n in only:
        if n not in names:
            ap.error("unknown test %r (known: %s)" % (n, ", ".join(names)))
    if args.kills < 5:
        ap.error("--kills must be at least 5")
    if not os.access(args.binary, os.X_OK):
        ap.error("%s is not an executable" % args.binary)
    args.binary = os.path.abspath(args.binary)
    tmp = None
    if not args.workdir:
        tmp = args.workdir = tempfile.mkdtemp(prefix="kafka-delivery-")
    args.workdir = os.path.abspath(args.workdir)
    os.makedirs(args.workdir, exist_ok=True)
    if not kh.KCAT:
        print("kcat not found (Debian package kcat)")
        print("0 passed, 1 failed")
        return 1

    res = Results()
    skipped = []
    broker_dir = os.path.join(args.workdir, "broker")
    shutil.rmtree(broker_dir, ignore_errors=True)  # a previous run's broker data
    props = os.path.join(args.workdir, "broker-extra.properties")
    with open(props, "w") as f:
        f.write(kh.BROKER_EXTRA_PROPS)
    log("seed %d, workdir %s, binary %s" % (args.seed, args.workdir, args.binary))
    t_all = time.monotonic()
    selected = [(n, fn) for n, fn in TESTS if not only or n in only]
    if [n for n, _ in selected] == ["prometheus"] and not ph.find_prometheus():
        print("SKIP prometheus: no prometheus binary (Debian package prometheus) and scripts/setup.sh could "
              "not install it")
        return 77
    try:
        with KafkaBroker(broker_dir, keep_workdir=True, env={"KAFKA_LOCAL_EXTRA_PROPS": props}) as kb:
            log("broker up on %s" % kb.bootstrap)
            ctx = Ctx(args, res, kb)
            for n, fn in selected:
                before = res.failed
                t0 = time.monotonic()
                log("==== %s" % n)
                try:
                    fn(ctx)
                except Skip as e:
                    print("SKIP %s: %s" % (n, e), flush=True)
                    skipped.append(n)
                    continue
                except Exception as e:
                    res.check("%s: ran without an exception" % n, False,
                              "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
                if not kb.is_running():  # a test that stops the broker must not break the next one
                    log("broker not running after %s: restarting it" % n)
                    kb.restart()
                dt = time.monotonic() - t0
                res.tests.append((n, res.failed == before, dt))
                log("==== %s %s in %.1f s" % (n, "passed" if res.failed == before else "FAILED", dt))
    except Exception as e:
        res.check("broker and harness", False, "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
    finally:
        kh._kill_live()
    print("---- summary (%.0f s total)" % (time.monotonic() - t_all))
    for n, ok, dt in res.tests:
        print("  %-16s %s  %6.1f s" % (n, "ok  " if ok else "FAIL", dt))
    for n in skipped:
        print("  %-16s skip" % n)
    if res.failed == 0 and not args.keep:
        shutil.rmtree(broker_dir, ignore_errors=True)
        for f in os.listdir(args.workdir):  # generated events (kept after a failure to rerun fast)
            if f.startswith("events-"):
                os.unlink(os.path.join(args.workdir, f))
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("(workdir kept: %s)" % args.workdir)
    print("%d passed, %d failed" % (res.passed, res.failed))
    if res.failed == 0 and skipped and len(skipped) == len(selected):
        return 77
    return 0 if res.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
