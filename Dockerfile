# syntax=docker/dockerfile:1
# Release build of the one rolecall binary, copied onto a distroless base (CA certificates and
# glibc, no shell), run as a non-root user.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked && cp target/release/rolecall /rolecall

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="rolecall" \
      org.opencontainers.image.description="Kubernetes operator that reconciles AWS IAM intent" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /rolecall /usr/local/bin/rolecall
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/rolecall"]
