#!/usr/bin/env bash
# Run every lifeboat test on a fresh machine: installs what the tests need, then checks
# formatting and lints, then runs the whole suite. Used as is by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: mount/umount (util-linux) for the disk-full test,
# promtool (prometheus) to check the /metrics output.
APT_PACKAGES=(util-linux prometheus)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "==> installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "note: some tests mount a tmpfs (a real full disk) and need root; they will fail otherwise" >&2
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --locked --lib --bins --tests
