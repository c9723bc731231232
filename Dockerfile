# syntax=docker/dockerfile:1
# Every Switchyard binary in one image: switchyard-router, switchyard-registry, switchyardctl,
# switchyard-plugin-bridge, switchyard-seed-plugin (release profile: debuginfo stripped, symbols kept). No
# ENTRYPOINT: the Helm chart sets `command`. No image is published: build it and push it where the cluster
# pulls from (helm/switchyard/README.md).
#   make image                        # scripts/image: docker, podman or buildah; tag switchyard:<version>
#   docker run --rm switchyard:0.1.0 switchyard-router --check-config
# scripts/helm-check runs hadolint on it and checks that it copies every binary of the packages it builds.

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
