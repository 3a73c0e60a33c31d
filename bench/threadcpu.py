"""CPU seconds of a process from /proc, whole or split between librdkafka's
own threads (named "rdk:...": fetching, decompressing, building messages)
and the rest (the application's: polling, and whatever it does with each
message). Shared by bench/kafka_drain.py and bench/python_baseline.py;
raw_drain.c does the same in C. Linux /proc only; threads that already
exited are not counted in the split, so read it before the consumer is
closed."""

import os


def _stat_seconds(path):
    """utime + stime of a /proc/.../stat file, in seconds."""
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3): utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_seconds(pid):
    """CPU seconds of the whole process, exited threads included."""
    return _stat_seconds("/proc/%d/stat" % pid)


def librdkafka_seconds(pid="self"):
    """CPU seconds of the process's librdkafka threads; the rest of its
    CPU (process_seconds) is the application's."""
    base = "/proc/%s/task" % pid
    rdk = 0
    for tid in os.listdir(base):
        try:
            with open("%s/%s/comm" % (base, tid)) as f:
                if f.read().startswith("rdk:"):
                    rdk += _stat_seconds("%s/%s/stat" % (base, tid))
        except OSError:
            continue  # the thread ended meanwhile
    return rdk
