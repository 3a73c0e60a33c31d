#!/usr/bin/env python3
"""Smoke test of scripts/kafka-local.sh and tests/integration/kafka_broker.py.

Runs a real Kafka broker on 127.0.0.1, round-trips 1000 messages through it
with kcat, restarts it, and checks that no broker JVM is left behind (after
stop, after an exception in the context manager, after SIGTERM and SIGKILL of
the owning process). Plain script: python3 tests/integration/test_kafka_broker.py
prints 'N passed, N failed' and exits 0 only if everything passed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from kafka_broker import KafkaBroker, broker_processes, wait_gone  # noqa: E402

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
N_MESSAGES = 1000


def kcat(*args: str, input_file: str | None = None, timeout: float = 60) -> bytes:
    assert KCAT, "kcat (Debian package kafkacat) is not installed"
    p = subprocess.run([KCAT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    assert p.returncode == 0, f"kcat {' '.join(args)} exited {p.returncode}: {p.stderr.decode(errors='replace')}"
    return p.stdout


def make_messages(n: int, tag: str) -> list[bytes]:
    # JSON cost events of varying length with non-ASCII bytes; no newlines
    # (kcat -l splits the file on '\n').
    return [json.dumps({"seq": i, "tag": tag, "provider": "openai", "model": "gpt-4o",
                        "cost_usd": f"0.{i:06d}", "team": "ünïcødé ✓", "pad": "x" * (i % 97)},
                       ensure_ascii=False).encode() for i in range(n)]


def produce(boot: str, topic: str, messages: list[bytes], workdir: Path) -> None:
    path = workdir / f"produce-{topic}-{time.monotonic_ns()}.txt"
    path.write_bytes(b"".join(m + b"\n" for m in messages))
    kcat("-b", boot, "-t", topic, "-P", "-l", str(path))


def consume_all(boot: str, topic: str) -> list[bytes]:
    out = kcat("-b", boot, "-t", topic, "-C", "-e", "-o", "beginning", "-q")
    assert out == b"" or out.endswith(b"\n"), "kcat output does not end in a newline"
    return out.split(b"\n")[:-1]


def partitions_of(boot: str) -> dict[str, int]:
    meta = json.loads(kcat("-b", boot, "-L", "-J"))
    return {t["topic"]: len(t["partitions"]) for t in meta["topics"]}


# --------------------------------------------------------------------- tests

class Ctx:
    root: Path
    kb: KafkaBroker
    sent: list[bytes]


def test_start(ctx: Ctx) -> None:
    ctx.kb = KafkaBroker(ctx.root / "main")
    t0 = time.monotonic()
    boot = ctx.kb.start()
    print(f"    broker up on {boot} in {time.monotonic() - t0:.1f} s")
    assert boot.startswith("127.0.0.1:"), boot
    assert (ctx.kb.workdir / "bootstrap").read_text().strip() == boot
    assert ctx.kb.is_running()
    assert broker_processes(ctx.kb.workdir) == [ctx.kb.pid]


def test_create_topics(ctx: Ctx) -> None:
    kb = ctx.kb
    kb.create_topics({"ai-costs": 4, "ai-costs-dlq": 1})
    kb._run("create-topic", str(kb.workdir), "positional", "3")  # NAME PARTITIONS form
    kb.create_topics({"ai-costs": 4})  # idempotent
    parts = partitions_of(kb.bootstrap)
    assert parts.get("ai-costs") == 4, parts
    assert parts.get("ai-costs-dlq") == 1, parts
    assert parts.get("positional") == 3, parts


def test_roundtrip_1000(ctx: Ctx) -> None:
    ctx.sent = make_messages(N_MESSAGES, "first")
    produce(ctx.kb.bootstrap, "ai-costs", ctx.sent, ctx.root)
    got = consume_all(ctx.kb.bootstrap, "ai-costs")
    assert len(got) == N_MESSAGES, f"consumed {len(got)} messages, want {N_MESSAGES}"
    assert sorted(got) == sorted(ctx.sent), "consumed messages differ from produced ones"


def test_auto_create_disabled(ctx: Ctx) -> None:
    # A producer's metadata request would auto-create the topic if the broker allowed it.
    p = subprocess.run([KCAT, "-b", ctx.kb.bootstrap, "-t", "no-such-topic", "-P",
                        "-X", "message.timeout.ms=3000"], input=b"x\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode != 0, "producing to a missing topic succeeded"
    assert "no-such-topic" not in partitions_of(ctx.kb.bootstrap), "topic was auto-created"


def test_restart_keeps_port_and_data(ctx: Ctx) -> None:
    kb = ctx.kb
    boot, old_pid = kb.bootstrap, kb.pid
    kb.stop()
    assert wait_gone(old_pid), f"broker pid {old_pid} still alive after stop"
    assert not kb.is_running()
    assert broker_processes(kb.workdir) == []
    kb.stop()  # safe when not running
    t0 = time.monotonic()
    assert kb.restart() == boot, f"restart moved the broker from {boot} to {kb.bootstrap}"
    print(f"    restarted in {time.monotonic() - t0:.1f} s")
    assert kb.pid != old_pid
    got = consume_all(boot, "ai-costs")
    assert sorted(got) == sorted(ctx.sent), f"after restart consumed {len(got)} messages, want the {N_MESSAGES} sent"
    more = make_messages(10, "after-restart")
    produce(boot, "ai-costs", more, ctx.root)
    got = consume_all(boot, "ai-costs")
    assert sorted(got) == sorted(ctx.sent + more), f"consumed {len(got)} messages, want {N_MESSAGES + 10}"


def test_stop_leaves_no_process(ctx: Ctx) -> None:
    kb = ctx.kb
    pid = kb.pid
    t0 = time.monotonic()
    kb.stop()
    print(f"    stopped in {time.monotonic() - t0:.1f} s")
    assert wait_gone(pid), f"broker pid {pid} still alive"
    assert broker_processes(kb.workdir) == []
    assert not (kb.workdir / "broker.pid").exists()
    assert "shut down completed" in kb.log_file.read_text(errors="replace"), "no clean shutdown in server.log"


def test_context_manager_stops_on_exception(ctx: Ctx) -> None:
    workdir = ctx.root / "ctx"
    pid = None
    try:
        with KafkaBroker(workdir) as kb:
            pid = kb.pid
            assert broker_processes(workdir) == [pid]
            raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        pass
    assert pid is not None
    assert wait_gone(pid), f"broker pid {pid} survived the with-block"
    assert broker_processes(workdir) == []


CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from kafka_broker import KafkaBroker
kb = KafkaBroker(sys.argv[2])
kb.start()
print(kb.pid, flush=True)
time.sleep(600)
"""


def _child_then_signal(ctx: Ctx, name: str, sig: int) -> None:
    workdir = ctx.root / name
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(HERE), str(workdir)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        line = child.stdout.readline().decode().strip()
        assert line.isdigit(), f"child did not start a broker: {line!r} {child.stderr.read().decode()[-2000:]}"
        pid = int(line)
        assert broker_processes(workdir) == [pid]
        child.send_signal(sig)
        child.wait(timeout=60)
        assert wait_gone(pid, timeout=45), f"broker pid {pid} survived {signal.Signals(sig).name} of its owner"
        assert broker_processes(workdir) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        subprocess.run(["bash", str(HERE.parents[1] / "scripts" / "kafka-local.sh"), "stop", str(workdir)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_sigterm_of_owner_stops_broker(ctx: Ctx) -> None:
    _child_then_signal(ctx, "sigterm", signal.SIGTERM)


def test_sigkill_of_owner_stops_broker(ctx: Ctx) -> None:
    _child_then_signal(ctx, "sigkill", signal.SIGKILL)


TESTS = [
    test_start,
    test_create_topics,
    test_roundtrip_1000,
    test_auto_create_disabled,
    test_restart_keeps_port_and_data,
    test_stop_leaves_no_process,
    test_context_manager_stops_on_exception,
    test_sigterm_of_owner_stops_broker,
    test_sigkill_of_owner_stops_broker,
]
# These need the broker started by test_start; skip them if it failed.
NEEDS_MAIN = {test_create_topics, test_roundtrip_1000, test_auto_create_disabled,
              test_restart_keeps_port_and_data, test_stop_leaves_no_process}


def main() -> int:
    passed = failed = 0
    ctx = Ctx()
    ctx.root = Path(tempfile.mkdtemp(prefix="test-kafka-broker-"))
    main_ok = True
    try:
        for t in TESTS:
            name = t.__name__
            if t in NEEDS_MAIN and not main_ok:
                print(f"FAIL {name}: broker did not start", flush=True)
                failed += 1
                continue
            t0 = time.monotonic()
            try:
                t(ctx)
            except Exception as e:
                failed += 1
                if t is test_start:
                    main_ok = False
                print(f"FAIL {name} ({time.monotonic() - t0:.1f} s): {e}", flush=True)
                traceback.print_exc()
                kb = getattr(ctx, "kb", None)
                if kb is not None and t in NEEDS_MAIN | {test_start}:
                    print("---- broker log tail:\n" + kb.log_tail(), flush=True)
            else:
                passed += 1
                print(f"PASS {name} ({time.monotonic() - t0:.1f} s)", flush=True)
    finally:
        kb = getattr(ctx, "kb", None)
        if kb is not None:
            kb.stop()
        leftovers = broker_processes(ctx.root)
        if leftovers:
            failed += 1
            print(f"FAIL leftover broker processes: {leftovers}", flush=True)
            for pid in leftovers:
                os.kill(pid, signal.SIGKILL)
        if failed == 0:
            shutil.rmtree(ctx.root, ignore_errors=True)
        else:
            print(f"(kept {ctx.root} for inspection)")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
