#!/usr/bin/env bash
# setup.sh - installs what building and testing ai-finops-exporter needs on a
# Debian machine: compilers, the C libraries, promtool, kcat, Java and Maven
# for the local Kafka broker. Idempotent: installs only what is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  librdkafka-dev libcjson-dev libmicrohttpd-dev libyaml-dev libcmocka-dev
  zlib1g-dev libxxhash-dev libjemalloc-dev libgnutls28-dev libcrypt-dev
  prometheus kafkacat curl python3 procps
)
command -v javac >/dev/null 2>&1 || packages+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || packages+=(maven)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
# The prometheus package would start a server through policy-rc.d-aware
# scripts; we only need promtool, and nothing is started in containers.
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
