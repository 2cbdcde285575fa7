# syntax=docker/dockerfile:1
# tablegate: a PostgreSQL-wire permission proxy.
#
#   docker build -t tablegate .
#   docker run -p 6432:6432 -p 8080:8080 \
#       -v /srv/tablegate/config:/etc/tablegate:ro \
#       -v tablegate-data:/var/lib/tablegate \
#       tablegate
#
# /etc/tablegate holds tablegate.toml and the policies folder (relative paths in the file start
# there, and that mount is read-only). Inside a container the file must set
#   listen = "0.0.0.0:6432"  and  http_listen = "0.0.0.0:8080"
# (the defaults listen on 127.0.0.1 only), and put what tablegate writes in the data volume:
#   [directory] sqlite = "/var/lib/tablegate/directory.db"
# Reload policies with `docker kill --signal=HUP <container>` (edits to a mounted policies folder
# are also picked up by themselves). See docs/configuration.md and docs/operations.md.

# --- build ---------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep downloaded crates and compiled dependencies between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tablegate \
    && cp target/release/tablegate /usr/local/bin/tablegate

# --- run -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# CA certificates: tablegate checks WeCom's HTTPS certificate against the system's.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tablegate \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/tablegate \
        --shell /usr/sbin/nologin tablegate \
    && mkdir -p /etc/tablegate /var/lib/tablegate \
    && chown tablegate:tablegate /var/lib/tablegate
COPY --from=build /usr/local/bin/tablegate /usr/local/bin/tablegate
# Numeric, so that orchestrators can verify it is not root (Kubernetes' runAsNonRoot).
USER 10001:10001
WORKDIR /var/lib/tablegate
VOLUME ["/var/lib/tablegate"]
# 6432: PostgreSQL clients; 8080: WeCom login pages, admin API, /healthz, /metrics.
EXPOSE 6432 8080
ENV RUST_LOG=info
ENTRYPOINT ["tablegate"]
CMD ["serve", "--config", "/etc/tablegate/tablegate.toml"]
