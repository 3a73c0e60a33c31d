#!/usr/bin/env bash
# bench/run.sh - builds an optimized tree and prints every benchmark's
# figures. Each benchmark runs the exporter's path and its baseline side by
# side in one process and reports medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build-bench -j"$(nproc)" --target bench_ingest bench_render bench_kinds >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
./build-bench/bench/bench_ingest
./build-bench/bench/bench_render
./build-bench/bench/bench_kinds
