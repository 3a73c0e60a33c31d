#!/usr/bin/env python3
"""The Python baseline of bench/kafka_drain.py: what a typical hand-written
exporter does. A confluent-kafka consumer (librdkafka underneath, batch
consume) parses each event with json.loads and adds its cost_usd (a float)
to a prometheus_client Counter labeled by team, project and source; rejects
(not JSON, not an object, bad or missing cost) go to a second counter.

  python_baseline.py BROKERS TOPIC PARTITIONS EXPECTED_MESSAGES

Needs python3-confluent-kafka and python3-prometheus-client (Debian), so run
it with the system interpreter (/usr/bin/python3). Prints one JSON line like
raw_drain: messages, seconds (first message to last), seconds_total,
cpu_seconds, librdkafka_cpu_seconds (its threads' share, bench/threadcpu.py),
and the sum of costs it counted (a float, for a sanity check).
"""

import json
import resource
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from prometheus_client import CollectorRegistry, Counter

import threadcpu


def main(argv):
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    brokers, topic, partitions, expected = argv[1], argv[2], int(argv[3]), int(argv[4])
    registry = CollectorRegistry()
    cost = Counter("ai_finops_cost_dollars", "Cost in USD.", ["team", "project", "source"], registry=registry)
    rejected = Counter("ai_finops_events_rejected", "Rejected events.", ["reason"], registry=registry)
    t0 = time.monotonic()
    c = Consumer({"bootstrap.servers": brokers, "group.id": "python-baseline-%d" % time.time(),
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    n = 0
    eof = set()
    first = last = None
    idle_since = time.monotonic()
    total = 0.0
    loads = json.loads
    while n < expected or len(eof) < partitions:
        msgs = c.consume(1000, 0.5)
        now = time.monotonic()
        if not msgs:
            if now - idle_since > 30:
                break
            continue
        idle_since = now
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            n += 1
            try:
                ev = loads(m.value())
                if not isinstance(ev, dict):
                    rejected.labels("not_object").inc()
                    continue
                v = ev.get("cost_usd")
                if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                    rejected.labels("invalid_cost").inc()
                    continue
                cost.labels(ev.get("team") or "unattributed", ev.get("project") or "unattributed",
                            ev.get("source") or "unknown").inc(v)
                total += v
            except (ValueError, TypeError, AttributeError):
                rejected.labels("invalid_json").inc()
        if first is None:
            first = now
        last = time.monotonic()
    t1 = time.monotonic()
    rdk_cpu = threadcpu.librdkafka_seconds()
    c.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"messages": n, "seconds": (last or t1) - (first or t0), "seconds_total": t1 - t0,
                      "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 3),
                      "librdkafka_cpu_seconds": round(rdk_cpu, 3), "cost_sum_float": total}))
    return 0 if n >= expected else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
