# syntax=docker/dockerfile:1
# Every Switchyard binary in one image: switchyard-router, switchyard-registry, switchyardctl,
# switchyard-plugin-bridge, switchyard-seed-plugin. No ENTRYPOINT: the Helm chart sets `command`.
#   docker build -t switchyard:dev .
#   docker run --rm switchyard:dev switchyard-router --check-config

FROM rust:1.95-bookworm AS builder
# librdkafka (rdkafka-sys, features ssl + libz + zstd) builds from source: a C toolchain, cmake, OpenSSL
# headers. SCRAM and PLAIN need only OpenSSL, not Cyrus SASL (the gssapi feature is off).
# Debian stable packages are not version-pinned: their security updates are wanted at each build.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libssl-dev zlib1g-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
      -p switchyard-router -p switchyard-registry -p switchyard-plugin-runtime -p switchyard-plugins \
 && mkdir -p /out \
 && cp target/release/switchyard-router target/release/switchyard-registry target/release/switchyardctl \
       target/release/switchyard-plugin-bridge target/release/switchyard-seed-plugin /out/

FROM debian:bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 switchyard \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin switchyard
COPY --from=builder /out/ /usr/local/bin/
USER 10001:10001
# Router admin, registry HTTP, plugin worker admin.
EXPOSE 9100 8080 9200
