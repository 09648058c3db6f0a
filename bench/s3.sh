#!/usr/bin/env bash
# Benchmark: upload and download of a 1 GiB backup to a local S3 server (moto), by
# lifeboat (release build) beside `aws s3 cp` of the same bytes to the same server in the
# same run; prints times, throughput, the ratio and peak memory (max RSS).
#
#   bash bench/s3.sh                 # 1 GiB
#   SIZE_MIB=256 bash bench/s3.sh    # smaller, e.g. when the server is slow
#   ROUNDS=3 bash bench/s3.sh        # upload rounds (default 3)
#   TLS=0 bash bench/s3.sh           # plain HTTP instead of HTTPS
#
# The server speaks HTTPS by default, with a certificate from a private CA made for the
# run, as every real S3 endpoint does. Over HTTPS both tools leave the request signature
# off the part bodies (TLS protects them, and each part carries a CRC32 the server
# checks); over plain HTTP both hash every byte once more to sign it.
#
# Uploads alternate (lifeboat, aws, lifeboat, aws, ...) for ROUNDS rounds and each tool's
# fastest round is reported: on a shared 2-core machine the Python server's speed drifts
# by tens of percent between minutes, and alternating exposes both tools to the same
# drift. Downloads run once each (aws's take minutes against moto).
#
# The data is incompressible (random), so zstd cannot shrink it and both tools move the
# same number of bytes. lifeboat's figures include what it does on top of the transfer:
# tar, zstd, SHA-256 of content and stored bytes, and on download the checks and writing
# the restored file.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB="${SIZE_MIB:-1024}"
ROUNDS="${ROUNDS:-3}"
TLS="${TLS:-1}"
for spec in "moto[server]==5.1.22" "awscli"; do
  name="${spec%%[*}"
  name="${name%%=*}"
  python3 -m pip show "$name" >/dev/null 2>&1 ||
    python3 -m pip install -q "$spec" || python3 -m pip install -q --break-system-packages "$spec"
done
command -v pyenv >/dev/null && pyenv rehash
hash -r

echo "==> building lifeboat (release)"
cargo build --release --locked --bin lifeboat >/dev/null
BIN="${CARGO_TARGET_DIR:-target}/release/lifeboat"

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
if [[ "$TLS" == 1 ]]; then
  # A private CA and a certificate for 127.0.0.1; both tools are told to trust the CA.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=lifeboat bench CA" \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$WORK/server.ext"
  openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
    -days 2 -extfile "$WORK/server.ext" -out "$WORK/server.pem" 2>/dev/null
  moto_server -H 127.0.0.1 -p "$PORT" -s -c "$WORK/server.pem" -k "$WORK/server.key" >"$WORK/moto.log" 2>&1 &
  export SSL_CERT_FILE="$WORK/ca.pem" AWS_CA_BUNDLE="$WORK/ca.pem"
  SCHEME=https
else
  moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
  SCHEME=http
fi
MOTO=$!
cleanup() {
  kill "$MOTO" 2>/dev/null || true
  wait "$MOTO" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 100); do
  (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.2
done

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent
ENDPOINT="$SCHEME://127.0.0.1:$PORT"
aws --endpoint-url "$ENDPOINT" s3api create-bucket --bucket bench >/dev/null

mkdir -p "$WORK/config" "$WORK/data/volume" "$WORK/restores"
echo "==> making $SIZE_MIB MiB of random data"
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$WORK/data/volume/blob.bin"
cat >"$WORK/config/lifeboat.toml" <<EOF
[server]
state = "../var/lifeboat.db"
[stores.offsite]
kind = "s3"
bucket = "bench"
prefix = "lifeboat/"
endpoint = "$ENDPOINT"
[targets.volume]
kind = "directory"
path = "../data/volume"
store = "offsite"
restore_roots = ["../restores"]
EOF

# Run a command; print "<seconds> <max RSS in MiB>". Dirty pages left by the step before
# (the generated data, moto's copies of the last upload, the last restore) are written
# out first, so that no step pays for another's writeback.
measure() {
  sync
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
dt = time.monotonic() - t
if r.returncode != 0:
    sys.exit(f"failed: {sys.argv[1:]}")
print(f"{dt:.2f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f}")
PY
}

LB=("$BIN" --config "$WORK/config/lifeboat.toml")
# The fastest of several rounds, alternating tools; peak RSS is the largest seen.
best() { sort -n | head -1; }
lb_ups=() aws_ups=() lb_up_mem=0 aws_up_mem=0
for round in $(seq "$ROUNDS"); do
  echo "==> round $round/$ROUNDS: lifeboat backup (upload)"
  read -r t mem < <(measure "${LB[@]}" backup volume)
  lb_ups+=("$t")
  if ((mem > lb_up_mem)); then lb_up_mem=$mem; fi
  echo "==> round $round/$ROUNDS: aws s3 cp (upload)"
  read -r t mem < <(measure aws --endpoint-url "$ENDPOINT" s3 cp --only-show-errors "$WORK/data/volume/blob.bin" "s3://bench/awscli/blob-$round.bin")
  aws_ups+=("$t")
  if ((mem > aws_up_mem)); then aws_up_mem=$mem; fi
done
echo "lifeboat upload rounds (s): ${lb_ups[*]}; aws s3 cp upload rounds (s): ${aws_ups[*]}"
lb_up=$(printf '%s\n' "${lb_ups[@]}" | best)
aws_up=$(printf '%s\n' "${aws_ups[@]}" | best)
artifact="$("${LB[@]}" list volume --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["artifact"])')"
stored="$(aws --endpoint-url "$ENDPOINT" s3api head-object --bucket bench --key "lifeboat/$artifact" --query ContentLength --output text)"
echo "==> lifeboat restore (download)"
read -r lb_down lb_down_mem < <(measure "${LB[@]}" restore volume --to "$WORK/restores/volume" --yes)
cmp "$WORK/data/volume/blob.bin" "$WORK/restores/volume/blob.bin"
rm -rf "$WORK/restores/volume"

echo "==> aws s3 cp (download)"
read -r aws_down aws_down_mem < <(measure aws --endpoint-url "$ENDPOINT" s3 cp --only-show-errors s3://bench/awscli/blob-1.bin "$WORK/restores/blob.bin")
cmp "$WORK/data/volume/blob.bin" "$WORK/restores/blob.bin"

python3 - "$SCHEME" "$SIZE_MIB" "$stored" "$lb_up" "$lb_up_mem" "$lb_down" "$lb_down_mem" \
  "$aws_up" "$aws_up_mem" "$aws_down" "$aws_down_mem" <<'PY'
import sys
scheme, size, stored = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lb_up, lb_up_mem, lb_down, lb_down_mem, aws_up, aws_up_mem, aws_down, aws_down_mem = map(float, sys.argv[4:])
mib = stored / 2**20
print(f"\n{size} MiB of random data ({mib:.0f} MiB stored by lifeboat) to moto_server on loopback ({scheme})")
print(f"{'':22}{'seconds':>9}{'MiB/s':>9}{'peak RSS MiB':>14}")
for name, t, mem in [("lifeboat backup", lb_up, lb_up_mem), ("aws s3 cp upload", aws_up, aws_up_mem),
                     ("lifeboat restore", lb_down, lb_down_mem), ("aws s3 cp download", aws_down, aws_down_mem)]:
    print(f"{name:22}{t:9.2f}{mib / t:9.1f}{mem:14.0f}")
print(f"upload speed ratio lifeboat/aws:   {aws_up / lb_up:.2f}x")
print(f"download speed ratio lifeboat/aws: {aws_down / lb_down:.2f}x")
PY
