# syntax=docker/dockerfile:1
#
# lifeboat container image.
#
#   docker build -t lifeboat .
#   docker run -d --name lifeboat -p 8080:8080 -v lifeboat-data:/var/lib/lifeboat lifeboat
#
# State, scratch space and the default local backup store live in the
# /var/lib/lifeboat volume. To use your own config, mount it over
# /etc/lifeboat/lifeboat.toml (relative paths in it resolve against /etc/lifeboat) and
# pass secrets as environment variables (-e SLACK_BOT_TOKEN=... etc.).
# Targets on other hosts (`host = "ssh://..."`) use the image's ssh client: mount the key
# and known_hosts read-only, e.g.
#   -v /srv/lifeboat/ssh:/var/lib/lifeboat/.ssh:ro
# and name them in the target (`ssh_identity`, `ssh_known_hosts`).

############################ build ############################
FROM rust:1-bookworm AS builder
WORKDIR /build

# Build the dependencies alone first, against a placeholder crate, so this layer is
# reused as long as Cargo.toml and Cargo.lock don't change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src \
      target/release/lifeboat \
      target/release/deps/lifeboat-* \
      target/release/deps/liblifeboat-* \
      target/release/.fingerprint/lifeboat-*

# The real sources. config/ is needed at compile time: the default config is embedded
# in the binary.
COPY src ./src
COPY config ./config
RUN cargo build --release --locked \
 && install -m 0755 target/release/lifeboat /usr/local/bin/lifeboat

############################ runtime ############################
FROM debian:bookworm-slim

# ca-certificates for HTTPS (Slack, Discord, S3, GCP); openssh-client for targets on
# other hosts; sqlite3 for operators' manual checks of databases and restored copies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates openssh-client sqlite3 \
 && rm -rf /var/lib/apt/lists/*

# An unprivileged user with a fixed uid/gid, so volume ownership is predictable.
RUN groupadd --system --gid 10001 lifeboat \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/lifeboat \
      --no-create-home --shell /usr/sbin/nologin lifeboat \
 && mkdir -p /var/lib/lifeboat /etc/lifeboat \
 && chown lifeboat:lifeboat /var/lib/lifeboat

COPY --from=builder /usr/local/bin/lifeboat /usr/local/bin/lifeboat
COPY config/docker.toml /etc/lifeboat/lifeboat.toml

ENV LIFEBOAT_CONFIG=/etc/lifeboat/lifeboat.toml

# Declared after the chown so a fresh named volume starts out owned by lifeboat.
VOLUME ["/var/lib/lifeboat"]
WORKDIR /var/lib/lifeboat
USER lifeboat:lifeboat
EXPOSE 8080

# `serve` handles SIGTERM itself (finishes or cleanly interrupts running jobs), so the
# binary runs as PID 1 via the exec form. No HEALTHCHECK: the image has no HTTP client;
# probe GET /healthz from outside (orchestrator, load balancer).
ENTRYPOINT ["lifeboat"]
CMD ["serve"]
