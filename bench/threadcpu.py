"""CPU seconds of a process's threads, split between librdkafka's own threads
(named "rdk:...": fetching, decompressing, building messages) and the rest
(the application's: polling, and whatever it does with each message).
Shared by bench/kafka_drain.py and bench/python_baseline.py; raw_drain.c
does the same in C. Linux /proc only; threads that already exited are not
counted, so read it before the consumer is closed."""

import os


def librdkafka_seconds(pid="self"):
    """CPU seconds of the process's librdkafka threads; the rest of its
    CPU (/proc/PID/stat) is the application's."""
    tick = os.sysconf("SC_CLK_TCK")
    base = "/proc/%s/task" % pid
    rdk = 0
    for tid in os.listdir(base):
        try:
            with open("%s/%s/comm" % (base, tid)) as f:
                comm = f.read()
            with open("%s/%s/stat" % (base, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        # fields[0] is the state (field 3): utime is field 14, stime field 15
        if comm.startswith("rdk:"):
            rdk += (int(fields[11]) + int(fields[12])) / tick
    return rdk
