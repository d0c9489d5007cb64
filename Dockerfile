# Images of the whole system, one target each:
#
#   docker build --target inventory -t resilient-shop/inventory .   (also: pricing, order, identity)
#   docker build --target client    -t resilient-shop/client .      (web client + gateway on :8080)
#
# docker-compose.yml builds all four. The three services share one builder stage: the
# dependencies are compiled in a layer of their own (from the manifests and stub sources),
# so a change to the code rebuilds only the workspace crates, not the ~250 dependencies.
# Runtime images are distroless (no shell, no package manager) and run as uid 65532;
# the gateway runs as nginx's uid 101 and writes only under /tmp.

ARG VERSION=0.1.0

# ---------------------------------------------------------------------------------------
# Builder: all three release binaries in one `cargo build`.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src

# 1. Dependencies only. The manifests plus empty stand-ins for every crate's sources are
#    enough for cargo to resolve and compile the whole dependency graph; this layer is
#    reused until Cargo.toml or Cargo.lock changes. (A new workspace member needs its
#    manifest listed here.)
# The four services and what they use (not the test kit).
ENV SERVICES="-p inventory -p pricing -p order -p identity"
COPY Cargo.toml Cargo.lock ./
# Build settings shared with local builds (the trimmed bundled SQLite).
COPY .cargo .cargo
COPY shared/config/Cargo.toml shared/config/
COPY shared/http/Cargo.toml shared/http/
COPY shared/auth/Cargo.toml shared/auth/
COPY shared/rate-limit/Cargo.toml shared/rate-limit/
COPY shared/chaos/Cargo.toml shared/chaos/
COPY shared/server/Cargo.toml shared/server/
COPY shared/db/Cargo.toml shared/db/
COPY shared/events/Cargo.toml shared/events/
COPY shared/resilience/Cargo.toml shared/resilience/
COPY shared/vocabulary/Cargo.toml shared/vocabulary/
COPY shared/history/Cargo.toml shared/history/
COPY shared/testkit/Cargo.toml shared/testkit/
COPY inventory/Cargo.toml inventory/
COPY pricing/Cargo.toml pricing/
COPY order/Cargo.toml order/
COPY identity/Cargo.toml identity/
RUN for crate in shared/*; do mkdir -p "$crate/src" && touch "$crate/src/lib.rs"; done \
    && for crate in inventory pricing order identity; do \
         mkdir -p "$crate/src" && touch "$crate/src/lib.rs" && echo 'fn main() {}' > "$crate/src/main.rs"; \
       done \
    && cargo build --release --locked $SERVICES \
    && rm -rf shared/*/src inventory/src pricing/src order/src identity/src

# 2. The real sources (tests are left out by .dockerignore). COPY keeps the files' own
#    modification times, which can be older than the stand-ins' build: touching them makes
#    sure cargo rebuilds the workspace crates instead of shipping the empty stand-ins.
COPY shared shared
COPY inventory inventory
COPY pricing pricing
COPY order order
COPY identity identity
RUN find shared inventory pricing order identity -type f -exec touch {} + \
    && cargo build --release --locked $SERVICES \
    && mkdir -p /out/data \
    && cp target/release/inventory target/release/pricing target/release/order \
          target/release/identity /out/

# ---------------------------------------------------------------------------------------
# What the three service images have in common.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION
LABEL org.opencontainers.image.source="https://github.com/example/resilient-shop" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.vendor="resilient-shop"
# DATA_DIR is only written when a service runs on its embedded SQLite store (no
# DATABASE_URL). /data belongs to the runtime user, so that works out of the box; on a
# read-only root filesystem mount a volume there. No VOLUME: with PostgreSQL nothing is
# written at all, and an anonymous volume per container would only leave litter behind.
ENV HOST=0.0.0.0 \
    DATA_DIR=/data
COPY --from=builder --chown=65532:65532 /out/data /data
USER 65532:65532

FROM runtime AS inventory
LABEL org.opencontainers.image.title="resilient-shop inventory" \
      org.opencontainers.image.description="Items, stock and expiring stock reservations (HTTP on 7001)"
COPY --from=builder /out/inventory /usr/local/bin/inventory
ENV PORT=7001
EXPOSE 7001
# The binary probes its own /health/ready: no shell or curl needed in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/inventory", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/inventory"]

FROM runtime AS pricing
LABEL org.opencontainers.image.title="resilient-shop pricing" \
      org.opencontainers.image.description="Prices, discounts, quantity tiers and bulk quotes (HTTP on 7003)"
COPY --from=builder /out/pricing /usr/local/bin/pricing
ENV PORT=7003
EXPOSE 7003
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/pricing", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/pricing"]

FROM runtime AS order
LABEL org.opencontainers.image.title="resilient-shop order" \
      org.opencontainers.image.description="Orders taken as a saga over inventory and pricing, behind circuit breakers (HTTP on 7002)"
COPY --from=builder /out/order /usr/local/bin/order
ENV PORT=7002
EXPOSE 7002
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/order", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/order"]

FROM runtime AS identity
LABEL org.opencontainers.image.title="resilient-shop identity" \
      org.opencontainers.image.description="Accounts, sign-in and ES256 access tokens, JWKS and discovery (HTTP on 7004)"
COPY --from=builder /out/identity /usr/local/bin/identity
ENV PORT=7004
EXPOSE 7004
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/identity", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/identity"]

# ---------------------------------------------------------------------------------------
# The web client and its gateway: serves client/ and proxies /inventory/, /pricing/ and
# /order/ to the services, prefix stripped. Runs as a non-root user on a read-only root
# filesystem: everything it writes (pid file, temp files, the configuration rendered from
# its template at start) goes under /tmp, so /tmp is the one path to mount writable
# (tmpfs in compose, emptyDir in Kubernetes).
FROM nginx:1.27-bookworm AS client
ARG VERSION
LABEL org.opencontainers.image.title="resilient-shop client" \
      org.opencontainers.image.description="Web client of the shop and its gateway to the services (HTTP on 8080)" \
      org.opencontainers.image.source="https://github.com/example/resilient-shop" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.vendor="resilient-shop"
# The image's stock site is not served: our nginx.conf includes only the rendered gateway.
RUN rm -f /etc/nginx/conf.d/default.conf
COPY docker/gateway/nginx.conf /etc/nginx/nginx.conf
COPY docker/gateway/security-headers.conf /etc/nginx/security-headers.conf
COPY docker/gateway/gateway.conf.template /etc/nginx/templates/gateway.conf.template
COPY docker/gateway/service-ports.conf.template /etc/nginx/templates/service-ports.conf.template
COPY docker/gateway/service-port-common.conf /etc/nginx/service-port-common.conf
COPY --chmod=0755 docker/gateway/15-gateway-resolver.envsh /docker-entrypoint.d/15-gateway-resolver.envsh
COPY --chmod=0755 docker/gateway/16-gateway-trusted-proxies.envsh /docker-entrypoint.d/16-gateway-trusted-proxies.envsh
COPY --chmod=0755 docker/gateway/17-gateway-service-ports.envsh /docker-entrypoint.d/17-gateway-service-ports.envsh
COPY client/ /usr/share/nginx/html/
# Upstreams (host:port), overridden by compose / Kubernetes. They are resolved through the
# container's DNS server (15-gateway-resolver.envsh) and re-resolved every 10 s, so a
# restarted service is found at its new address, and the gateway starts, and serves the
# page, even while a service is down.
ENV INVENTORY_UPSTREAM=inventory:7001 \
    PRICING_UPSTREAM=pricing:7003 \
    ORDER_UPSTREAM=order:7002 \
    IDENTITY_UPSTREAM=identity:7004 \
    NGINX_ENVSUBST_OUTPUT_DIR=/tmp
# uid 101 is the image's own nginx user; numeric, so Kubernetes' runAsNonRoot can check it.
USER 101:101
# 8080: the page and /inventory/, /pricing/, /order/, /identity/; 7001-7004 only with
# GATEWAY_SERVICE_PORTS=on (compose): the services' own ports, spread over their replicas.
EXPOSE 8080 7001 7002 7003 7004
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]

# ---------------------------------------------------------------------------------------
# The load generator: simulated shoppers (Locust, loadgen/locustfile.py), run on demand
# (compose profile "loadgen", Kubernetes Job in the dev overlay). It goes through the
# gateway like a browser does. Prints a one-line SUMMARY and writes report.html into
# REPORT_DIR.
FROM debian:bookworm-slim AS loadgen
ARG VERSION
LABEL org.opencontainers.image.title="resilient-shop loadgen" \
      org.opencontainers.image.description="Simulated shoppers for the shop (Locust)" \
      org.opencontainers.image.source="https://github.com/example/resilient-shop" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.vendor="resilient-shop"
# Debian's python3 of the release; Locust itself is pinned in requirements.txt.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY loadgen/requirements.txt /opt/loadgen/requirements.txt
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r /opt/loadgen/requirements.txt
COPY loadgen/locustfile.py /opt/loadgen/locustfile.py
ENV PATH=/opt/venv/bin:$PATH \
    INVENTORY_URL=http://client:8080/inventory \
    PRICING_URL=http://client:8080/pricing \
    ORDER_URL=http://client:8080/order \
    REPORT_DIR=/tmp \
    USERS=20 SPAWN_RATE=5 RUN_TIME=2m
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["/bin/sh", "-c", "exec locust -f /opt/loadgen/locustfile.py --headless --only-summary --users \"$USERS\" --spawn-rate \"$SPAWN_RATE\" --run-time \"$RUN_TIME\" --html \"$REPORT_DIR/report.html\" \"$@\"", "locust"]
