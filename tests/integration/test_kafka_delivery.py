#!/usr/bin/env python3
"""End-to-end delivery tests of ai-finops-exporter against a real Kafka broker.

One single-node Apache Kafka broker (scripts/kafka-local.sh) serves the whole
run; each test uses its own topics and consumer group. Events come from
gen_events.py (exact expected totals), are keyed by team (a team's events stay
in one partition) and produced with kcat. A Scraper thread (kafka_harness.py)
plays Prometheus: it scrapes /metrics every 200 ms and sums what increase()
would count, exactly, in nano-dollars.

Tests:
  exact_1m        1,000,000 events (0.3% defective) on 8 partitions, one daemon
                  with 2 consumer threads; every cost, token and GPU series, the
                  event and reject counters equal the generator's totals
                  exactly, and every rejected event reached the dead-letter
                  topic. Its Scraper starts 1.5 s after /readyz (a backlog is
                  being consumed): the first scrape must show every counter as
                  0 and increase() must still add up to everything.
  dead_letters    good events with one bad event per reject reason interleaved;
                  the good ones count exactly, the DLQ holds each bad one byte
                  for byte with the right reason and source headers.
  dlq_outage      the dead-letter topic is missing while bad events arrive and
                  the producer queue fills: /healthz answers, SIGTERM exits 0
                  within its bound; the topic is created and the daemon
                  restarted: observed exactly, every letter delivered.
  kill_restart    >= 200,000 events (preloaded, streamed, and in bursts) while
                  the daemon is SIGKILLed at random moments >= 5 times and
                  restarted; what the Scraper's increase() observed must equal
                  what was produced, per series.
  two_daemons     two daemons in one group, a Scraper each, 300,000 events;
                  one gets SIGTERM mid-stream (must exit 0); the two observed
                  totals add up to what was produced.
  broker_restart  the broker is stopped mid-stream (/readyz must turn 503) and
                  restarted (/readyz 200 again); everything produced before and
                  after is observed exactly once (kcat cannot produce while
                  every broker is down, so the stream pauses for the outage).

Test timings: consumers use session.timeout.ms=3000 (the broker allows it) so
that a SIGKILLed member leaves the group in ~3 s instead of 45 s.

Usage: test_kafka_delivery.py --binary PATH [--workdir DIR] [--only NAME[,NAME]]
       [--seed N] [--kill-runs N] [--kills N] [--keep]
Prints PASS/FAIL lines and `N passed, N failed` last; exit status 1 on failure.
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import expo  # noqa: E402
import kafka_harness as kh  # noqa: E402
from testlib import Results  # noqa: E402
from kafka_broker import KafkaBroker  # noqa: E402
from kafka_harness import COST, EVENTS, GPU, REJECTED, TOKENS, log  # noqa: E402


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


# ---------------------------------------------------------------------------
# shared steps

def check_produced(ctx, name, topic, partitions, want):
    ends = kh.end_offsets(ctx.boot, topic, partitions)
    ctx.res.check("%s: topic holds every produced event" % name, sum(ends) == want,
                  "%d messages in %d partitions (%s), want %d" % (sum(ends), partitions, ends, want))
    return ends


def wait_consumed(ctx, scrapers, topic, ends, since, timeout):
    """Waits until the current incarnations (scraped after `since`) have
    applied the last offset of every non-empty partition (or, for a
    partition they did not have to read, committed it), then for 3 more
    scrapes of each live scraper. Returns (ok, detail)."""
    deadline = time.monotonic() + timeout
    missing = {}
    while time.monotonic() < deadline:
        missing = {}
        for p, end in enumerate(ends):
            if end <= 0:
                continue
            seen = []
            for sc in scrapers:
                snap = sc.latest
                if snap is None or snap.time < since:
                    continue
                applied = snap.parts.get("ai_finops_kafka_applied_offset", {}).get((topic, p))
                committed = snap.parts.get("ai_finops_kafka_committed_offset", {}).get((topic, p))
                if applied == end - 1 or (committed is not None and committed >= end):
                    break
                seen.append((applied, committed))
            else:
                missing[p] = (seen, end)
        if not missing:
            for sc in scrapers:
                if sc.is_alive():
                    sc.wait_scrapes(3, timeout=30)
            return True, ""
        time.sleep(0.1)
    return False, "partitions not consumed {partition: ([(applied, committed) per scraper], end)}: %s" % missing


def compare_observed(ctx, name, totals, observed, what="observed by increase()"):
    """observed: family -> {key: int}."""
    ok = True
    for fam in (EVENTS, REJECTED, COST):
        good, detail = kh.compare_series(fam, kh.expected_series(totals, fam), observed.get(fam, {}))
        ok &= ctx.res.check("%s: %s %s exact" % (name, fam, what), good, detail)
    return ok


def merge_observed(scrapers, families=(EVENTS, REJECTED, COST)):
    out = {}
    for fam in families:
        acc = {}
        for sc in scrapers:
            for k, v in sc.observed_copy(fam).items():
                acc[k] = acc.get(k, 0) + v
        out[fam] = acc
    return out


def scraper_health(ctx, name, sc):
    ctx.res.check("%s: %s scrapes parse cleanly" % (name, sc.name), not sc.parse_errors,
                  sc.summary() if not sc.parse_errors else "\n".join(sc.parse_errors[:10]))
    ctx.res.check("%s: %s: every series is shown as 0 to the scraper first" % (name, sc.name),
                  not sc.nonzero_first, "%d first samples were non-zero, e.g. %s"
                  % (len(sc.nonzero_first), sc.nonzero_first[:5]) if sc.nonzero_first else "")
    prom = {f: dict(sc.observed_prom[f]) for f in sc.tracked}
    same = all(prom[f] == sc.observed_copy(f) for f in sc.tracked)
    ctx.res.check("%s: %s: pure Prometheus reset logic agrees with per-incarnation logic" % (name, sc.name),
                  same, "" if same else "events: per-incarnation %d, pure reset logic %d"
                  % (sum(sc.observed_copy(EVENTS).values()), sum(prom[EVENTS].values())))


def sigterm_check(ctx, name, d, timeout=60):
    t0 = time.monotonic()
    rc = d.terminate(timeout=timeout)
    ctx.res.check("%s: %s SIGTERM -> exit 0" % (name, d.name), rc == 0,
                  "exit status %s after %.1f s%s" % (rc, time.monotonic() - t0,
                                                   "" if rc == 0 else "\n" + d.log_tail(20)))
    return rc


# kafka.commit_metadata_max_bytes of the kill test's daemon; the test broker
# allows it (kafka_harness.BROKER_EXTRA_PROPS).
KILL_CLAIM_BYTES = 65536


def kafka_stats(snap):
    if snap is None:
        return "no scrape"
    k = snap.kafka
    return ", ".join("%s=%s" % (n.replace("ai_finops_", ""), k.get(n)) for n in (
        "ai_finops_kafka_rebalances_total", "ai_finops_kafka_commits_total",
        "ai_finops_kafka_commit_failures_total", "ai_finops_kafka_duplicates_skipped_total",
        "ai_finops_kafka_claims_cut_total", "ai_finops_kafka_claim_replayed_total",
        "ai_finops_dlq_produced_total", "ai_finops_dlq_failures_total"))


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

    with kh.Daemon(ctx.binary, wd, "daemon", ctx.boot, topic, "g-" + name, dlq) as d:
        sc = kh.Scraper(d.metrics_url, name="scraper")
        t_start = time.monotonic()
        d.start()
        try:
            # Like a Prometheus whose first scrape comes after the daemon has
            # consumed part of a backlog: that first scrape must show every
            # counter as 0 (increase() ignores a series' first sample), and
            # the observed increase() must still add up to everything.
            if not res.check("%s: daemon ready" % name, d.wait_ready(120), d.log_tail(20)):
                return
            time.sleep(1.5)
            sc.start()
            first = sc.wait_for(lambda s: s.latest, timeout=30)
            nonzero = {f: {k: v for k, v in first.values[f].items() if v} for f in first.values} if first else {}
            res.check("%s: a first scrape %.1f s after ready (%s events consumed) shows every counter as 0"
                      % (name, first.time - t_start if first else -1, first.events() if first else "?"),
                      first is not None and not any(nonzero.values()),
                      "non-zero on the first scrape: %s" % "; ".join(
                          "%s: %d series, e.g. %s" % (f, len(v), sorted(v.items())[:3])
                          for f, v in nonzero.items() if v))
            got = sc.wait_for(lambda s: (not d.alive()) or (s.latest is not None and s.latest.events() >= count),
                              timeout=600)
            t_done = sc.latest.time if sc.latest else time.monotonic()
            if not res.check("%s: daemon consumed %d events" % (name, count),
                             d.alive() and got and sc.latest.events() == count,
                             "events %s, daemon %s\n%s" % (sc.latest.events() if sc.latest else None,
                                                           "alive" if d.alive() else "exited", d.log_tail(20))):
                return
            # first non-zero events count: consumption start
            wall = t_done - t_start
            log("%s: ingest wall time %.2f s from daemon start (%.0f events/s), incl. group join"
                % (name, wall, count / wall))
            sc.wait_scrapes(3)
            snap = sc.latest
            for fam in (EVENTS, REJECTED, COST):
                ok, detail = kh.compare_series(fam, kh.expected_series(es.totals, fam), snap.values[fam])
                res.check("%s: scraped %s exact" % (name, fam), ok, detail)
            compare_observed(ctx, name, es.totals, {f: sc.observed_copy(f) for f in (EVENTS, REJECTED, COST)})
            # one full scrape: every family, strict exposition checks
            status, body = kh.http_get(d.metrics_url, timeout=60)
            with open(os.path.join(wd, "metrics.txt"), "wb") as f:
                f.write(body)
            ex = expo.parse(body)
            res.check("%s: full exposition parses cleanly" % name, status == 200 and not ex.errors,
                      "HTTP %s, %d samples, %d problems %s" % (status, len(ex.samples), len(ex.errors),
                                                              ex.errors[:5]))
            for fam in (TOKENS, GPU):
                names, parse_value, _ = kh.FAMILIES[fam]
                try:
                    gotv = {k: parse_value(v) for k, v in ex.series(fam, names).items()}
                except ValueError as e:
                    res.check("%s: scraped %s exact" % (name, fam), False, str(e))
                    continue
                ok, detail = kh.compare_series(fam, kh.expected_series(es.totals, fam), gotv)
                res.check("%s: scraped %s exact" % (name, fam), ok, detail)
            # dead letters
            rejected = es.totals["events"]["rejected"]
            sc.wait_for(lambda s: s.latest.kafka.get("ai_finops_dlq_produced_total") == rejected, timeout=30)
            dl = sum(kh.end_offsets(ctx.boot, dlq, 1))
            res.check("%s: every rejected event is in the DLQ" % name,
                      dl == rejected and sc.latest.kafka.get("ai_finops_dlq_produced_total") == rejected,
                      "DLQ holds %d, dlq_produced_total %s, rejected %d"
                      % (dl, sc.latest.kafka.get("ai_finops_dlq_produced_total"), rejected))
            log("%s: kafka self-metrics: %s" % (name, kafka_stats(sc.latest)))
            scraper_health(ctx, name, sc)
            sigterm_check(ctx, name, d)
        finally:
            sc.stop()


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
    # spread them over partitions: key each with a random good event's team
    interleave_bad(pairs, bad, rng)
    kh.produce_pairs(ctx.boot, topic, pairs, wd, "dlq")
    n = len(pairs)
    ends = check_produced(ctx, name, topic, parts, n)
    expected = expected_with_bad(es, bad)

    with kh.Daemon(ctx.binary, wd, "daemon", ctx.boot, topic, "g-" + name, dlq) as d:
        sc = kh.Scraper(d.metrics_url, name="scraper")
        t0 = time.monotonic()
        d.start()
        sc.start()
        try:
            ok, detail = wait_consumed(ctx, [sc], topic, ends, t0, timeout=120)
            if not res.check("%s: daemon consumed everything" % name, ok, detail if ok else detail + "\n" + d.log_tail(20)):
                return
            compare_observed(ctx, name, expected, {f: sc.observed_copy(f) for f in (EVENTS, REJECTED, COST)})
            for fam in (EVENTS, REJECTED, COST):
                good, detail = kh.compare_series(fam, kh.expected_series(expected, fam), sc.latest.values[fam])
                res.check("%s: scraped %s exact" % (name, fam), good, detail)
            sc.wait_for(lambda s: s.latest.kafka.get("ai_finops_dlq_produced_total", 0) >= len(bad), timeout=30)
            pending = sc.latest.parts.get("ai_finops_dlq_pending", {})
            res.check("%s: dlq_produced_total == bad events, nothing pending" % name,
                      sc.latest.kafka.get("ai_finops_dlq_produced_total") == len(bad)
                      and not any(pending.values()),
                      "dlq_produced_total %s, want %d; dlq_pending %s"
                      % (sc.latest.kafka.get("ai_finops_dlq_produced_total"), len(bad), pending))
            scraper_health(ctx, name, sc)
            sigterm_check(ctx, name, d)
        finally:
            sc.stop()

    # the dead-letter topic, byte for byte
    letters = kh.consume_all(ctx.boot, dlq)
    source = {(m.partition, m.offset): m for m in kh.consume_all(ctx.boot, topic)}
    want = {}
    for reason, payload in bad:
        want.setdefault(payload, []).append(reason)
    problems = []
    seen = {}
    for m in letters:
        h = m.headers
        src = None
        try:
            src = source.get((int(h.get("ai_finops_source_partition", "-1")),
                              int(h.get("ai_finops_source_offset", "-1"))))
        except ValueError:
            pass
        if h.get("ai_finops_source_topic") != topic:
            problems.append("letter %r: source topic header %r, want %r" % (m, h.get("ai_finops_source_topic"), topic))
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
            continue
        if h.get("ai_finops_reason") not in want[payload]:
            problems.append("letter %r: reason %r, want %s" % (m, h.get("ai_finops_reason"), want[payload]))
        seen[payload] = seen.get(payload, 0) + 1
    for payload, reasons in want.items():
        if seen.get(payload, 0) != len(reasons):
            problems.append("bad event (%s) %r is in the DLQ %d times, want %d"
                            % (reasons[0], payload[:100], seen.get(payload, 0), len(reasons)))
    res.check("%s: DLQ holds each bad event once, byte for byte, with reason and source headers" % name,
              not problems, "%d letters for %d bad events" % (len(letters), len(bad)) if not problems
              else "%d problems:\n%s" % (len(problems), "\n".join(problems[:20])))


# ---------------------------------------------------------------------------
# 2b. dlq_outage

# Bound on SIGTERM during a dead-letter outage: the drain wait below (3 s),
# the dead-letter flush (5 s) and leaving the group, with room for a busy
# machine. Before the fix a worker blocked in librdkafka until
# message.timeout.ms (300 s) released room in the producer queue.
DLQ_OUTAGE_SIGTERM_S = 60


def test_dlq_outage(ctx):
    """The dead-letter topic is missing (auto-creation is off) while bad
    events arrive: the producer queue (20 letters) fills, workers wait for
    room; /healthz still answers and SIGTERM exits 0 within its bound. Then
    the topic is created and the daemon restarted: everything is observed
    exactly once and every bad event reaches the topic."""
    name, res = "dlq_outage", ctx.res
    wd = ctx.workdir(name)
    parts = 2
    topic = "ai-costs.%s" % name
    dlq = "ai-costs-dlq.%s" % name  # not created yet: the outage
    ctx.kb.create_topics({topic: parts})
    es = kh.generate(ctx.args.workdir, "events-dlq-outage", 4000, seed=ctx.seed + 5, bad_ratio=0.0)
    rng = random.Random(ctx.seed + 5)
    pairs = kh.keyed(es.lines)
    bad = bad_events() * 8
    interleave_bad(pairs, bad, rng)
    kh.produce_pairs(ctx.boot, topic, pairs, wd, "dlq-outage")
    ends = check_produced(ctx, name, topic, parts, len(pairs))
    expected = expected_with_bad(es, bad)

    props = dict(kh.TEST_KAFKA_PROPERTIES)
    props["queue.buffering.max.messages"] = "20"
    with kh.Daemon(ctx.binary, wd, "daemon", ctx.boot, topic, "g-" + name, dlq, properties=props,
                   extra_args=["--kafka.shutdown-scrape-wait-ms=3000"]) as d:
        sc = kh.Scraper(d.metrics_url, name="scraper")
        d.start()
        sc.start()
        try:
            full = sc.wait_for(lambda s: s.latest is not None and sum(
                s.latest.parts.get("ai_finops_dlq_pending", {}).values()) >= 20, timeout=120)
            if not res.check("%s: dead letters pile up while the topic is missing" % name, full,
                             kafka_stats(sc.latest) + "\n" + d.log_tail(20)):
                return
            status = kh.http_get(d.base + "/healthz", timeout=30)[0]
            res.check("%s: /healthz answers during the outage" % name, status == 200,
                      "status %s" % status)
            t0 = time.monotonic()
            rc = d.terminate(timeout=DLQ_OUTAGE_SIGTERM_S)
            res.check("%s: SIGTERM during the outage exits 0 within %d s" % (name, DLQ_OUTAGE_SIGTERM_S),
                      rc == 0, "exit status %s after %.1f s\n%s" % (rc, time.monotonic() - t0, d.log_tail(20)))

            ctx.kb.create_topics({dlq: 1})
            t1 = time.monotonic()
            d.start()
            ok, detail = wait_consumed(ctx, [sc], topic, ends, t1, timeout=180)
            if not res.check("%s: the restarted daemon consumed everything" % name, ok,
                             detail if ok else detail + "\n" + d.log_tail(20)):
                return
            sc.wait_for(lambda s: not any(s.latest.parts.get("ai_finops_dlq_pending", {}).values()),
                        timeout=60)
            sc.wait_scrapes(3, timeout=30)
            compare_observed(ctx, name, expected, {f: sc.observed_copy(f) for f in (EVENTS, REJECTED, COST)})
            scraper_health(ctx, name, sc)
            sigterm_check(ctx, name, d)
        finally:
            sc.stop()
    letters = kh.consume_all(ctx.boot, dlq)
    got = {}
    for m in letters:
        got[m.value] = got.get(m.value, 0) + 1
    want = {}
    for _, payload in bad:
        want[payload] = want.get(payload, 0) + 1
    missing = {p[:60]: n for p, n in want.items() if got.get(p, 0) < n}
    res.check("%s: every bad event reached the dead-letter topic (at least once)" % name, not missing,
              "%d letters; short: %s" % (len(letters), missing))


# ---------------------------------------------------------------------------
# 3. kill_restart

def test_kill_restart(ctx):
    runs = max(1, ctx.args.kill_runs)
    for r in range(runs):
        _kill_restart_once(ctx, r, runs)


def _kill_restart_once(ctx, run, runs):
    name = "kill_restart" if runs == 1 else "kill_restart#%d" % (run + 1)
    res = ctx.res
    parts = 8
    seed = ctx.seed + 2 + 1000 * run
    rng = random.Random(seed)
    wd, topic, dlq, es, rest, tail = ctx.keyed_stream(
        name.replace("#", "-"), parts, "events-kill-%d" % seed, ctx.args.count_kill, seed)
    count = es.count
    n_pre = len(rest) * 3 // 10
    n_burst = len(rest) // 10
    preload = rest[:n_pre]
    bursts = [rest[len(rest) - (i + 1) * n_burst: len(rest) - i * n_burst] for i in range(3)]
    stream = rest[n_pre: len(rest) - 3 * n_burst]
    kills = ctx.args.kills
    delays = [round(rng.uniform(0.5, 3.0), 3) for _ in range(kills)]
    burst_at = sorted(rng.sample(range(kills), 3))
    log("%s: seed %d, %d events (preload %d, stream %d, bursts 3x%d, tail %d); kill delays %s; bursts "
        "before kills %s" % (name, seed, count, len(preload), len(stream), n_burst, len(tail), delays,
                             [b + 1 for b in burst_at]))
    kh.produce_pairs(ctx.boot, topic, preload, wd, "preload")

    # Claims sized for the preload's flood of new series (docs/delivery.md,
    # "Claims cut short": a cut claim re-counts by design, so this test
    # checks exactness where claims fit, and checks that they did).
    d = kh.Daemon(ctx.binary, wd, "daemon", ctx.boot, topic, "g-" + name.replace("#", "-"), dlq,
                  extra_args=["--kafka.commit-metadata-max-bytes=%d" % KILL_CLAIM_BYTES])
    sc = kh.Scraper(d.metrics_url, name="scraper")
    kill_log = []
    streamer = None
    try:
        d.start()
        sc.start()
        # the stream spans the kill phase (~ 5 s per restart cycle)
        streamer = kh.StreamProducer(ctx.boot, topic, stream, rate=len(stream) / (kills * 4.5))
        streamer.start()
        for i, delay in enumerate(delays):
            t_wait = time.monotonic()
            if not d.wait_ready(timeout=90):
                res.check("%s: daemon ready before kill %d" % (name, i + 1), False,
                          "not ready within 90 s; alive=%s\n%s" % (d.alive(), d.log_tail(30)))
                return
            t_ready = time.monotonic()
            if i in burst_at:
                kh.produce_pairs(ctx.boot, topic, bursts[burst_at.index(i)], wd, "burst")
            left = delay - (time.monotonic() - t_ready)
            if left > 0:
                time.sleep(left)
            with sc._cond:
                snap = sc.latest
                inc = sc.incarnations.get(snap.incarnation) if snap else None
                prev = inc.prev if inc else None
            t_kill = time.monotonic()
            d.kill()
            kill_log.append(kill_info(i + 1, t_kill, t_ready - t_wait, delay, streamer.sent, snap, prev))
            d.start()
        if not d.wait_ready(timeout=90):
            res.check("%s: daemon ready after the last restart" % name, False, d.log_tail(30))
            return
        t_last = time.monotonic()
        streamer.join(timeout=300)
        if streamer.error or streamer.is_alive():
            res.check("%s: stream producer" % name, False, streamer.error or "still running")
            return
        kh.produce_pairs(ctx.boot, topic, tail, wd, "tail")
        ends = check_produced(ctx, name, topic, parts, count)
        ok, detail = wait_consumed(ctx, [sc], topic, ends, t_last, timeout=180)
        if not res.check("%s: last incarnation consumed everything" % name, ok, detail if ok else detail + "\n" + d.log_tail(20)):
            return
        observed = {f: sc.observed_copy(f) for f in (EVENTS, REJECTED, COST)}
        total = sum(observed[EVENTS].values())
        # per-kill report
        incs = list(sc.incarnations.values())
        log("%s: %s; %d kills; observed %d events of %d produced (%+d)" % (
            name, sc.summary(), len(kill_log), total, count, total - count))
        for k in kill_log:
            log("  kill %(kill)d at %(t).2f s (ready after %(ready_after).1f s, killed %(delay).2f s later; "
                "%(streamed)d streamed so far): last scrape %(age)s s before the kill; at that scrape: "
                "%(unc)s applied events not committed (%(shown)s of them newly shown by it), "
                "%(dlq)s dead letters pending" % k)
        shown = sum(k["shown"] for k in kill_log if isinstance(k["shown"], int) and not k["dlq"])
        held = sum(k["unc"] for k in kill_log if isinstance(k["unc"], int) and k["dlq"])
        missed = sc.nonzero_first_sum.get(EVENTS, 0)
        log("  excess %+d events; estimated from the last scrape before each kill: %d newly shown and not "
            "committable (one scrape of commit lag) + %d shown but held uncommitted behind pending dead "
            "letters (both re-read, counted twice) - %d in series first shown non-zero (never counted) = %+d"
            % (total - count, shown, held, missed, shown + held - missed))
        for j, inc in enumerate(incs):
            log("  incarnation %d (start %s): %d scrapes, observed %d events; %s" % (
                j + 1, inc.key, inc.scrapes, inc.observed_events, kafka_stats(inc.last)))
        cuts = [(j + 1, inc.last.kafka.get("ai_finops_kafka_claims_cut_total"))
                for j, inc in enumerate(incs) if inc.last is not None]
        res.check("%s: no commit claim was cut (claims of %d bytes)" % (name, KILL_CLAIM_BYTES),
                  all(not c for _, c in cuts), "claims_cut_total per incarnation: %s" % cuts)
        ok = compare_observed(ctx, name, es.totals, observed)
        if not ok:
            print("    reproduce: %s --binary %s --workdir %s --only kill_restart --seed %d"
                  % (sys.argv[0], ctx.binary, ctx.args.workdir, ctx.seed), flush=True)
        ctx.kill_results.append((name, seed, total - count))
        scraper_health(ctx, name, sc)
        sigterm_check(ctx, name, d)
    finally:
        if streamer is not None:
            streamer.stop()
        sc.stop()
        d.close()


def kill_info(n, t_kill, ready_after, delay, streamed, snap, prev):
    """What the last completed scrape before a SIGKILL showed: events applied
    but not committed (a restart re-reads them; the ones the scrape showed
    are then counted twice by increase()), how many of them that scrape
    showed for the first time, and pending dead letters (they hold commits)."""
    info = {"kill": n, "t": t_kill - kh._T0, "ready_after": ready_after, "delay": delay,
            "streamed": streamed, "age": "?", "unc": "?", "shown": "?", "dlq": "?"}
    if snap is None:
        return info
    info["age"] = "%.3f" % (t_kill - snap.time)
    applied = snap.parts.get("ai_finops_kafka_applied_offset", {})
    committed = snap.parts.get("ai_finops_kafka_committed_offset", {})
    info["unc"] = sum(max(0, a + 1 - max(committed.get(k, -1), 0)) for k, a in applied.items() if a >= 0)
    if prev is not None:
        pa = prev.parts.get("ai_finops_kafka_applied_offset", {})
        info["shown"] = sum(max(0, a - max(pa.get(k, -1), max(committed.get(k, -1), 0) - 1))
                            for k, a in applied.items() if a >= 0)
    info["dlq"] = sum(snap.parts.get("ai_finops_dlq_pending", {}).values())
    return info


# ---------------------------------------------------------------------------
# 4. two_daemons

def test_two_daemons(ctx):
    name, res = "two_daemons", ctx.res
    parts = 8
    wd, topic, dlq, es, rest, tail = ctx.keyed_stream(name, parts, "events-two", ctx.args.count_two,
                                                      ctx.seed + 3)
    count = es.count
    preload, stream = rest[: len(rest) // 3], rest[len(rest) // 3:]
    kh.produce_pairs(ctx.boot, topic, preload, wd, "preload")
    group = "g-" + name
    a = kh.Daemon(ctx.binary, wd, "daemon-a", ctx.boot, topic, group, dlq)
    b = kh.Daemon(ctx.binary, wd, "daemon-b", ctx.boot, topic, group, dlq)
    sa = kh.Scraper(a.metrics_url, name="scraper-a")
    sb = kh.Scraper(b.metrics_url, name="scraper-b")
    streamer = kh.StreamProducer(ctx.boot, topic, stream, rate=len(stream) / 12.0)
    try:
        a.start()
        sa.start()
        b.start()
        sb.start()
        ok = a.wait_ready(60) and b.wait_ready(60)
        if not res.check("%s: both daemons ready (partitions shared)" % name, ok,
                         "a: %s, b: %s" % (a.readyz(), b.readyz())):
            return
        t_ready = time.monotonic()
        streamer.start()
        time.sleep(5.0)
        la = sa.latest.kafka.get("ai_finops_kafka_assigned_partitions") if sa.latest else None
        lb = sb.latest.kafka.get("ai_finops_kafka_assigned_partitions") if sb.latest else None
        log("%s: %.1f s after both ready: assigned a=%s b=%s; b observed %d events; SIGTERM to b"
            % (name, time.monotonic() - t_ready, la, lb, sb.observed_total(EVENTS)))
        t_term = time.monotonic()
        rc = sigterm_check(ctx, name, b)
        log("%s: b exited %s after %.2f s" % (name, rc, time.monotonic() - t_term))
        sb.stop()
        streamer.join(timeout=300)
        if not res.check("%s: stream producer" % name, not streamer.error and not streamer.is_alive(),
                         streamer.error or ""):
            return
        kh.produce_pairs(ctx.boot, topic, tail, wd, "tail")
        ends = check_produced(ctx, name, topic, parts, count)
        ok, detail = wait_consumed(ctx, [sa], topic, ends, time.monotonic(), timeout=180)
        if not res.check("%s: a consumed everything after b left" % name, ok, detail if ok else detail + "\n" + a.log_tail(20)):
            return
        ea, eb = sa.observed_total(EVENTS), sb.observed_total(EVENTS)
        log("%s: observed a=%d b=%d sum=%d produced=%d (%+d); a: %s; b: %s" % (
            name, ea, eb, ea + eb, count, ea + eb - count, kafka_stats(sa.latest), kafka_stats(sb.latest)))
        compare_observed(ctx, name, es.totals, merge_observed([sa, sb]), "observed by increase() on a + b")
        scraper_health(ctx, name, sa)
        scraper_health(ctx, name, sb)
        sigterm_check(ctx, name, a)
    finally:
        streamer.stop()
        sa.stop()
        sb.stop()
        a.close()
        b.close()


# ---------------------------------------------------------------------------
# 5. broker_restart

def test_broker_restart(ctx):
    name, res = "broker_restart", ctx.res
    parts = 4
    wd, topic, dlq, es, rest, tail = ctx.keyed_stream(name, parts, "events-broker",
                                                      ctx.args.count_broker, ctx.seed + 4)
    count = es.count
    q = len(rest) // 4
    preload, stream1, stream2, after = rest[:q], rest[q:2 * q], rest[2 * q:3 * q], rest[3 * q:]
    kh.produce_pairs(ctx.boot, topic, preload, wd, "preload")
    d = kh.Daemon(ctx.binary, wd, "daemon", ctx.boot, topic, "g-" + name, dlq)
    sc = kh.Scraper(d.metrics_url, name="scraper")
    # kcat exits when every broker is down, so the stream pauses for the
    # outage: it runs right up to the broker's stop, and resumes after.
    s1 = kh.StreamProducer(ctx.boot, topic, stream1, rate=len(stream1) / 4.0)
    s2 = None
    try:
        d.start()
        sc.start()
        if not res.check("%s: daemon ready" % name, d.wait_ready(60), "" if d.readyz() == 200 else d.log_tail(20)):
            return
        s1.start()
        s1.join(timeout=120)
        if not res.check("%s: stream producer before the outage" % name, not s1.error and not s1.is_alive(),
                         s1.error or ""):
            return
        snap = sc.latest
        log("%s: stopping the broker right after the stream (%d events observed, committed offsets %s, "
            "applied %s)" % (name, sc.observed_total(EVENTS),
                             sorted(snap.parts.get("ai_finops_kafka_committed_offset", {}).values()),
                             sorted(snap.parts.get("ai_finops_kafka_applied_offset", {}).values())))
        t_stop = time.monotonic()
        ctx.kb.stop()
        t_stopped = time.monotonic()
        ok = d.wait_ready(timeout=15, want=503)
        res.check("%s: /readyz 503 within 15 s of the broker going down" % name, ok,
                  "broker stop took %.1f s; /readyz %s after %.1f s" % (
                      t_stopped - t_stop, d.readyz(), time.monotonic() - t_stopped))
        t503 = time.monotonic() - t_stopped
        time.sleep(3.0)
        snap = sc.latest
        up = snap.kafka.get("ai_finops_kafka_broker_up") if snap else None
        log("%s: broker down (its stop took %.1f s); /readyz 503 %.1f s after; broker_up=%s, "
            "commit failures %s" % (name, t_stopped - t_stop, t503, up,
                                    snap.kafka.get("ai_finops_kafka_commit_failures_total") if snap else None))
        res.check("%s: ai_finops_kafka_broker_up is 0 during the outage" % name, up == 0, "broker_up=%s" % up)
        t_restart = time.monotonic()
        ctx.kb.restart()
        log("%s: broker restarted in %.1f s" % (name, time.monotonic() - t_restart))
        t_up = time.monotonic()
        ok = d.wait_ready(timeout=90)
        res.check("%s: /readyz 200 again after the broker restart" % name, ok,
                  "after %.1f s: /readyz %s%s" % (time.monotonic() - t_up, d.readyz(),
                                                  "" if ok else "\n" + d.log_tail(20)))
        log("%s: /readyz 200 %.1f s after the broker came back" % (name, time.monotonic() - t_up))
        s2 = kh.StreamProducer(ctx.boot, topic, stream2, rate=len(stream2) / 4.0)
        s2.start()
        s2.join(timeout=120)
        if not res.check("%s: stream producer after the outage" % name, not s2.error and not s2.is_alive(),
                         s2.error or ""):
            return
        kh.produce_pairs(ctx.boot, topic, after + tail, wd, "after")
        ends = check_produced(ctx, name, topic, parts, count)
        ok, detail = wait_consumed(ctx, [sc], topic, ends, time.monotonic(), timeout=180)
        if not res.check("%s: daemon consumed everything" % name, ok, detail if ok else detail + "\n" + d.log_tail(20)):
            return
        log("%s: %s; %s" % (name, sc.summary(), kafka_stats(sc.latest)))
        compare_observed(ctx, name, es.totals, {f: sc.observed_copy(f) for f in (EVENTS, REJECTED, COST)})
        for fam in (EVENTS, REJECTED, COST):
            good, detail = kh.compare_series(fam, kh.expected_series(es.totals, fam), sc.latest.values[fam])
            res.check("%s: final scraped %s exact" % (name, fam), good, detail)
        scraper_health(ctx, name, sc)
        sigterm_check(ctx, name, d)
    finally:
        s1.stop()
        if s2 is not None:
            s2.stop()
        sc.stop()
        d.close()


TESTS = [
    ("exact_1m", test_exact_1m),
    ("dead_letters", test_dead_letters),
    ("dlq_outage", test_dlq_outage),
    ("kill_restart", test_kill_restart),
    ("two_daemons", test_two_daemons),
    ("broker_restart", test_broker_restart),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="the ai-finops-exporter executable")
    ap.add_argument("--workdir", help="where events, logs and the broker live (default: a temp dir)")
    ap.add_argument("--only", action="append", default=[],
                    help="run only this test (repeatable or comma-separated): " + ", ".join(n for n, _ in TESTS))
    ap.add_argument("--seed", type=int, default=20251123, help="seeds events and kill timings")
    ap.add_argument("--kill-runs", type=int, default=1, help="repeat kill_restart this many times")
    ap.add_argument("--kills", type=int, default=6, help="SIGKILLs per kill_restart run (>= 5)")
    ap.add_argument("--count-1m", type=int, default=1_000_000)
    ap.add_argument("--count-kill", type=int, default=200_000)
    ap.add_argument("--count-two", type=int, default=300_000)
    ap.add_argument("--count-broker", type=int, default=100_000)
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
    broker_dir = os.path.join(args.workdir, "broker")
    shutil.rmtree(broker_dir, ignore_errors=True)  # a previous run's broker data
    props = os.path.join(args.workdir, "broker-extra.properties")
    with open(props, "w") as f:
        f.write(kh.BROKER_EXTRA_PROPS)
    log("seed %d, workdir %s, binary %s" % (args.seed, args.workdir, args.binary))
    t_all = time.monotonic()
    try:
        with KafkaBroker(broker_dir, keep_workdir=True, env={"KAFKA_LOCAL_EXTRA_PROPS": props}) as kb:
            log("broker up on %s" % kb.bootstrap)
            ctx = Ctx(args, res, kb)
            ctx.timings = {}
            ctx.kill_results = []
            for n, fn in TESTS:
                if only and n not in only:
                    continue
                before = res.failed
                t0 = time.monotonic()
                log("==== %s" % n)
                try:
                    fn(ctx)
                except Exception as e:
                    res.check("%s: ran without an exception" % n, False,
                              "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
                if not kb.is_running():  # a test that stops the broker must not break the next one
                    log("broker not running after %s: restarting it" % n)
                    kb.restart()
                dt = time.monotonic() - t0
                res.tests.append((n, res.failed == before, dt))
                log("==== %s %s in %.1f s" % (n, "passed" if res.failed == before else "FAILED", dt))
            if ctx.kill_results and len(ctx.kill_results) > 1:
                off = [r for r in ctx.kill_results if r[2]]
                log("kill_restart: %d of %d runs off: %s" % (len(off), len(ctx.kill_results), off))
    except Exception as e:
        res.check("broker and harness", False, "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
    finally:
        kh._kill_live()
    print("---- summary (%.0f s total)" % (time.monotonic() - t_all))
    for n, ok, dt in res.tests:
        print("  %-16s %s  %6.1f s" % (n, "ok  " if ok else "FAIL", dt))
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
    return 0 if res.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
