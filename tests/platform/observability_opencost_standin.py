#!/usr/bin/env python3
"""OpenCost STAND-IN for test_50_observability.sh (stdlib only).

OpenCost itself cannot run here (it needs a Kubernetes cluster with running
pods, nodes and a cloud pricing API), so this tiny http.server serves a few of
OpenCost's metric names, with OpenCost's label names, at fixed values: three
nodes (two m6i.2xlarge, one p5.48xlarge with 8 GPUs) and the containers
allocated on them. Only the dashboard's OpenCost panels read it; nothing here
pretends to be the exporter under test.

  observability_opencost_standin.py [--port N]   prints "listening on HOST:PORT"

Import it and call start(port=0) -> (server, port) to run it in a thread.
"""

import argparse
import http.server
import sys
import threading

NODE_LABELS = ("instance", "node", "instance_type", "region", "provider_id", "arch")
CONTAINER_LABELS = ("container", "instance", "namespace", "node", "pod")

# node, instance type, vCPUs, GiB, GPUs, $/vCPU-h, $/GiB-h, $/GPU-h (totals add up:
# 8 x 0.0315 + 32 x 0.0042 = 0.3864; 192 x 0.025 + 2048 x 0.001 + 8 x 6.024 = 55.04)
NODES = [
    ("ip-10-0-1-17", "m6i.2xlarge", 8, 32, 0, "0.0315", "0.0042", "0", "0.3864"),
    ("ip-10-0-1-42", "m6i.2xlarge", 8, 32, 0, "0.0315", "0.0042", "0", "0.3864"),
    ("ip-10-0-2-5", "p5.48xlarge", 192, 2048, 8, "0.025", "0.001", "6.024", "55.04"),
]
GIB = 1024 ** 3
# namespace, pod, container, node, cores, bytes, GPUs
CONTAINERS = [
    ("finops", "finops-ai-finops-exporter-6d9c7b5f4-x2kqp", "ai-finops-exporter", "ip-10-0-1-17", "0.5", 256 * 1024 ** 2, 0),
    ("kafka", "ai-kafka-dual-role-0", "kafka", "ip-10-0-1-17", "2", 8 * GIB, 0),
    ("kafka", "ai-kafka-dual-role-1", "kafka", "ip-10-0-1-42", "2", 8 * GIB, 0),
    ("kafka", "ai-kafka-dual-role-2", "kafka", "ip-10-0-1-42", "2", 8 * GIB, 0),
    ("monitoring", "prometheus-kps-prometheus-0", "prometheus", "ip-10-0-1-42", "1", 4 * GIB, 0),
    ("opencost", "opencost-5b8f9c6d7-7hz4w", "opencost", "ip-10-0-1-42", "0.1", 128 * 1024 ** 2, 0),
    ("ml-training", "pretrain-worker-0", "trainer", "ip-10-0-2-5", "96", 1024 * GIB, 8),
]


def _labels(names, values):
    return "{" + ",".join('%s="%s"' % (n, v) for n, v in zip(names, values)) + "}"


def exposition():
    out = []

    def family(name, help_text, rows):
        out.append("# HELP %s %s" % (name, help_text))
        out.append("# TYPE %s gauge" % name)
        out.extend("%s%s %s" % (name, labels, value) for labels, value in rows)

    def node_rows(pick):
        rows = []
        for n in NODES:
            node, itype = n[0], n[1]
            labels = _labels(NODE_LABELS, (node, node, itype, "us-east-1", "aws:///us-east-1a/" + node, "amd64"))
            rows.append((labels, pick(n)))
        return rows

    family("node_cpu_hourly_cost", "node_cpu_hourly_cost hourly cost for each cpu on this node", node_rows(lambda n: n[5]))
    family("node_ram_hourly_cost", "node_ram_hourly_cost hourly cost for each gb of ram on this node", node_rows(lambda n: n[6]))
    family("node_gpu_hourly_cost", "node_gpu_hourly_cost hourly cost for each gpu on this node", node_rows(lambda n: n[7]))
    family("node_gpu_count", "node_gpu_count count of gpu on this node", node_rows(lambda n: str(n[4])))
    family("node_total_hourly_cost", "node_total_hourly_cost Total node cost per hour", node_rows(lambda n: n[8]))

    def container_rows(pick):
        return [(_labels(CONTAINER_LABELS, (c[2], c[3], c[0], c[3], c[1])), pick(c)) for c in CONTAINERS]

    family("container_cpu_allocation", "container_cpu_allocation Percent of a single CPU used in a minute",
           container_rows(lambda c: c[4]))
    family("container_memory_allocation_bytes", "container_memory_allocation_bytes Bytes of RAM used",
           container_rows(lambda c: str(c[5])))
    family("container_gpu_allocation", "container_gpu_allocation GPU used",
           [r for r, c in zip(container_rows(lambda c: str(c[6])), CONTAINERS) if c[6]])
    return ("\n".join(out) + "\n").encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404)
            return
        body = exposition()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def start(port=0):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="opencost-standin", daemon=True).start()
    return server, server.server_address[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
