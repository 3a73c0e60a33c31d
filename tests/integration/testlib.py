"""Small helpers shared by the end-to-end test scripts: PASS/FAIL
bookkeeping that ends in the 'N passed, N failed' line, and free loopback
ports."""
import socket
import sys

# The metric families the end-to-end tests compare exactly.
COST = "ai_finops_cost_dollars_total"
TOKENS = "ai_finops_tokens_total"
GPU = "ai_finops_gpu_seconds_total"
EVENTS = "ai_finops_events_total"
REJECTED = "ai_finops_events_rejected_total"


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.tests = []  # (name, ok, seconds), for scripts that time tests

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("PASS %s%s" % (name, (": " + str(detail)) if detail else ""))
        else:
            self.failed += 1
            print("FAIL %s%s" % (name, (":\n    " + str(detail).replace("\n", "\n    "))
                                 if detail else ""))
        sys.stdout.flush()
        return ok


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
