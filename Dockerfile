# syntax=docker/dockerfile:1
# The rolecall operator image: a release build of the one binary on distroless/cc (glibc,
# libgcc, CA certificates; no shell, no package manager), run as the distroless nonroot user.
#
#   docker build -t rolecall:0.1.0 .
#
# The binary links glibc dynamically (ldd: libc, libm, libgcc_s; rustls with aws-lc-rs is
# compiled in), so it needs a glibc base, not scratch or distroless/static; both stages are
# Debian 12 (bookworm, glibc 2.36). Expected image size: about 55 MB (distroless/cc-debian12
# ~23 MB + the stripped, thin-LTO binary: 29,776,488 bytes measured outside Docker, most of it
# the AWS SDK's IAM, EC2 and STS clients and aws-lc).
# Base images are pinned by tag; pin by digest (FROM image:tag@sha256:...) in your registry
# mirror for reproducible builds.

ARG RUST_VERSION=1.95.0

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The cache mounts keep the registry and the target dir between builds; the binary is copied
# out of the mount because the mount is gone after this step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin rolecall \
    && install -m 0755 target/release/rolecall /rolecall

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="rolecall" \
      org.opencontainers.image.description="Kubernetes operator that reconciles AWS IAM policies, roles, instance profiles and EC2 instance profile associations" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/rolecall/rolecall" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=build /rolecall /usr/local/bin/rolecall
# 65532 is distroless's nonroot user; the chart's securityContext runs as the same ids.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/rolecall"]
CMD ["run"]
