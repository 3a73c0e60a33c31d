"""A real single-node Apache Kafka broker for integration tests (stdlib only).

Drives scripts/kafka-local.sh, which runs Kafka (KRaft, broker+controller in
one JVM) on 127.0.0.1 from jars cached from Maven Central::

    from kafka_broker import KafkaBroker

    with KafkaBroker() as kb:              # temp dir, removed afterwards
        kb.create_topics({"ai-costs": 4, "ai-costs-dlq": 1})
        run_exporter(brokers=kb.bootstrap)
        kb.stop(); kb.restart()            # same port, same data

The broker is stopped whatever happens: by ``__exit__`` (also on
exceptions), by an atexit hook, by SIGTERM/SIGINT/SIGHUP handlers (which then
defer to the previous handler), and by a small watchdog process that stops it
if the test process dies without running any of those (e.g. SIGKILL).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(os.environ.get("KAFKA_LOCAL_SCRIPT", REPO_ROOT / "scripts" / "kafka-local.sh"))

# Seconds. The first start may have to download Kafka with Maven.
FETCH_TIMEOUT = 1200
CMD_TIMEOUT = 180


class KafkaBrokerError(RuntimeError):
    """A kafka-local.sh command failed; the message holds its stderr."""


_live: "set[KafkaBroker]" = set()
_live_lock = threading.Lock()
_hooks_installed = False
_prev_handlers: Dict[int, object] = {}


def _stop_all_live() -> None:
    with _live_lock:
        brokers = list(_live)
    for b in brokers:
        try:
            b.stop()
        except Exception as e:  # keep going: stop the others too
            print(f"kafka_broker: stopping {b.workdir} failed: {e}", file=sys.stderr)


def _on_signal(signum, frame):
    _stop_all_live()
    prev = _prev_handlers.get(signum, signal.SIG_DFL)
    if callable(prev):
        prev(signum, frame)  # e.g. default_int_handler -> KeyboardInterrupt
    elif prev == signal.SIG_IGN:
        return
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_stop_all_live)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            prev = signal.getsignal(sig)
            if prev == signal.SIG_IGN:
                continue  # e.g. nohup: leave it ignored
            _prev_handlers[sig] = prev
            signal.signal(sig, _on_signal)
        except (ValueError, OSError):
            pass


# Runs detached (own session); once its parent, the test process, is gone
# (re-parenting changes getppid), it stops the broker of DIR and exits. On a
# normal stop the owner kills it.
_WATCHDOG = r"""
import os, subprocess, sys, time
script, workdir, parent = sys.argv[1], sys.argv[2], int(sys.argv[3])
while os.getppid() == parent and os.path.isdir(workdir):
    time.sleep(0.5)
if os.path.isdir(workdir):
    subprocess.run(["bash", script, "stop", workdir], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)
"""


class KafkaBroker:
    """One broker living in ``workdir`` (a fresh temp dir when None)."""

    def __init__(self, workdir: Optional[os.PathLike] = None, *, keep_workdir: Optional[bool] = None,
                 start_timeout: int = 300, env: Optional[Dict[str, str]] = None):
        if workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="kafka-broker-"))
            self._keep = False if keep_workdir is None else keep_workdir
        else:
            self.workdir = Path(workdir).resolve()
            self._keep = True if keep_workdir is None else keep_workdir
        self.start_timeout = start_timeout
        self.bootstrap: Optional[str] = None
        self._env = dict(os.environ)
        self._env["KAFKA_LOCAL_START_TIMEOUT"] = str(start_timeout)
        if env:
            self._env.update(env)
        self._watchdog: Optional[subprocess.Popen] = None

    # -- plumbing ---------------------------------------------------------

    def _run(self, *args: str, timeout: float = CMD_TIMEOUT) -> str:
        cmd = ["bash", str(SCRIPT), *args]
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, env=self._env, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise KafkaBrokerError(f"{' '.join(cmd)} timed out after {timeout} s") from e
        err = p.stderr.decode(errors="replace")
        if p.returncode != 0:
            raise KafkaBrokerError(f"{' '.join(cmd)} exited {p.returncode}:\n{err}")
        self.last_stderr = err
        return p.stdout.decode(errors="replace")

    def _track(self) -> None:
        _install_hooks()
        with _live_lock:
            _live.add(self)
        if self._watchdog is None or self._watchdog.poll() is not None:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, str(SCRIPT), str(self.workdir), str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)  # survives signals sent to our group

    def _untrack(self) -> None:
        with _live_lock:
            _live.discard(self)
        if self._watchdog is not None:
            if self._watchdog.poll() is None:
                self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None

    # -- API --------------------------------------------------------------

    @staticmethod
    def fetch() -> None:
        """Downloads/caches the Kafka jars (no-op once cached)."""
        subprocess.run(["bash", str(SCRIPT), "fetch"], check=True, stdin=subprocess.DEVNULL,
                       timeout=FETCH_TIMEOUT)

    def start(self) -> str:
        """Formats ``workdir``, starts the broker, returns 'host:port'."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._track()  # before starting, so an interrupt mid-start still cleans up
        try:
            out = self._run("start", str(self.workdir), timeout=FETCH_TIMEOUT + self.start_timeout)
        except BaseException:
            self.stop()
            raise
        self.bootstrap = out.strip().splitlines()[-1]
        return self.bootstrap

    def restart(self) -> str:
        """(Re)starts the broker on the same data and port; stops it first if running."""
        self._track()
        try:
            out = self._run("restart", str(self.workdir), timeout=CMD_TIMEOUT + self.start_timeout)
        except BaseException:
            self.stop()
            raise
        self.bootstrap = out.strip().splitlines()[-1]
        return self.bootstrap

    def create_topics(self, topics: Dict[str, int]) -> None:
        """Creates topics {name: partitions} (replication 1) in one JVM; existing ones are kept."""
        if topics:
            self._run("create-topic", str(self.workdir), *[f"{n}:{p}" for n, p in topics.items()])

    def create_topic(self, name: str, partitions: int = 1) -> None:
        self.create_topics({name: partitions})

    def stop(self) -> None:
        """Stops the broker (SIGTERM, then SIGKILL after 30 s). Safe when not running."""
        try:
            if (self.workdir / "broker.pid").exists():
                try:
                    self._run("stop", str(self.workdir))
                except KafkaBrokerError:
                    self._kill_from_pidfile()
                    raise
        finally:
            self._untrack()

    def _kill_from_pidfile(self) -> None:
        try:
            pid = int((self.workdir / "broker.pid").read_text().strip())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def is_running(self) -> bool:
        p = subprocess.run(["bash", str(SCRIPT), "status", str(self.workdir)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=self._env,
                           timeout=CMD_TIMEOUT)
        return p.returncode == 0

    @property
    def pid(self) -> Optional[int]:
        try:
            return int((self.workdir / "broker.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def log_file(self) -> Path:
        return self.workdir / "logs" / "server.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        """Stops the broker and removes a temp workdir this object created."""
        try:
            self.stop()
        finally:
            if not self._keep:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "KafkaBroker":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False


def broker_processes(workdir: os.PathLike) -> List[int]:
    """PIDs of live (non-zombie) Kafka broker JVMs whose command line mentions workdir."""
    needle = str(Path(workdir).resolve()).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if b"kafka.Kafka" in cmd and needle in cmd and state != b"Z":
            found.append(int(entry))
    return found


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """True once pid no longer runs (or is a zombie) within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return True
        except OSError:
            return True
        time.sleep(0.1)
    return False
