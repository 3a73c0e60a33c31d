# Dockerfile - the ai-finops-exporter image: the daemon (ENTRYPOINT) and the
# load generator (/usr/local/bin/ai-finops-loadgen, the producer of the
# compose stack and of the Helm chart), with the bundled price tables in
# /usr/local/share/ai-finops-exporter/prices, where the installed binaries
# find them relative to themselves (no FINOPS_PRICES_DIR needed).
# Built like CI builds (scripts/test.sh): RelWithDebInfo, warnings as errors;
# the installed binaries are stripped. The final stage holds only the runtime
# libraries, runs as 65532:65532 and writes nothing, so it works with a
# read-only root filesystem.
#   podman build -t ai-finops-exporter .    (or docker build)
#   podman run --read-only --user 65532 --cap-drop=ALL -p 127.0.0.1:9400:9400 \
#     ai-finops-exporter --kafka.brokers=HOST:9092

# Debian trixie, not bookworm: bookworm's librdkafka 2.0.2 cannot log in with
# SASL/SCRAM to Kafka 4.x brokers (librdkafka#4895, fixed in 2.6.1; trixie has
# 2.8.0; docs/kafka-security.md). Both stages use the same release so the
# binaries are built against the libraries they run with.
FROM debian:trixie-slim AS build
# Debian's own packages of the release the image is built on: pinning their
# versions would break the build at the next point release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      librdkafka-dev libcjson-dev libmicrohttpd-dev libyaml-dev \
      libxxhash-dev zlib1g-dev libjemalloc-dev libgnutls28-dev libcrypt-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFINOPS_WERROR=ON \
      -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX=/usr/local \
 && cmake --build /build -j"$(nproc)" --target ai-finops-exporter ai-finops-loadgen \
 && DESTDIR=/out cmake --install /build --strip

FROM debian:trixie-slim
LABEL org.opencontainers.image.title="ai-finops-exporter" \
      org.opencontainers.image.description="Exact Prometheus counters of AI spend from Kafka cost events"
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      librdkafka1 libcjson1 libmicrohttpd12t64 libyaml-0-2 libxxhash0 zlib1g libjemalloc2 libgnutls30t64 libcrypt1 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/usr/local/ /usr/local/
# Fail the build, not the first start, if a runtime library is missing or the
# installed binaries cannot find their price tables.
RUN ["/usr/local/bin/ai-finops-loadgen", "--output", "/dev/null", "--count", "10", "--quiet", "--totals", "/dev/null"]
USER 65532:65532
EXPOSE 9400
ENTRYPOINT ["/usr/local/bin/ai-finops-exporter"]
