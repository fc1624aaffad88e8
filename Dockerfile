# syntax=docker/dockerfile:1.7
# oxbadge: multi-stage build. The runtime image is Debian slim with the one binary, running as an
# unprivileged user, its data (SQLite file, development KEK) on the /data volume.
#
#   docker build -t oxbadge .
#   docker run -p 8080:8080 -v oxbadge-data:/data -e OXBADGE_KEK="kek-1:$(openssl rand -base64 32)" oxbadge
#
# Configure with OXBADGE_* variables (README.md, "Configuration"); DATABASE_URL=postgres://… for
# PostgreSQL. Without OXBADGE_KEK / OXBADGE_KEK_FILE a development KEK is generated into /data.

ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin oxbadge \
 && install -Dm755 target/release/oxbadge /out/oxbadge

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 oxbadge \
 && useradd --system --uid 10001 --gid oxbadge --home-dir /data --shell /usr/sbin/nologin oxbadge \
 && mkdir -p /data && chown oxbadge:oxbadge /data
COPY --from=build /out/oxbadge /usr/local/bin/oxbadge
USER oxbadge:oxbadge
WORKDIR /data
VOLUME ["/data"]
ENV OXBADGE_DATA_DIR=/data \
    OXBADGE_LISTEN=0.0.0.0:8080 \
    OXBADGE_LOG_FORMAT=json
EXPOSE 8080
# Liveness over plain HTTP with bash's /dev/tcp (no curl in the image).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/oxbadge"]
CMD ["serve"]
