#!/usr/bin/env bash
# Benchmark: back up a remote SQLite database over loopback SSH with lifeboat, beside the
# shell equivalent (remote `sqlite3 .backup` into a temp file, then `ssh cat | zstd`), in
# the same run, and print both times and their ratio. Then a remote directory into a
# repository store (a native tree): a first backup, a small change, a re-backup; the file
# content bytes that came through the connection (counted by lifeboat, in the manifest)
# beside the bytes changed, and the listing bytes apart. Not a test: run it by hand.
#
#   bash bench/ssh.sh                  # 1 GiB database, 2 runs each, best of each
#   BENCH_MB=256 BENCH_RUNS=3 bash bench/ssh.sh
#   BENCH_DB=0 BENCH_TREE_MB=512 bash bench/ssh.sh   # only the directory, of 512 MiB
#   BENCH_TREE_MB=0 bash bench/ssh.sh                # only the database
#
# Needs root (sshd logs in as root on 127.0.0.1), openssh-server, sqlite3 and zstd.
# Builds the release binary into $CARGO_TARGET_DIR (default target/), or runs
# LIFEBOAT_BIN when given.
set -euo pipefail
cd "$(dirname "$0")/.."

MB=${BENCH_MB:-1024}
RUNS=${BENCH_RUNS:-2}
WITH_DB=${BENCH_DB:-1}
TREE_MB=${BENCH_TREE_MB:-1024}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

for cmd in /usr/sbin/sshd ssh ssh-keygen sqlite3 zstd; do
  command -v "$cmd" >/dev/null || { echo "missing $cmd (apt install openssh-server openssh-client sqlite3 zstd)" >&2; exit 2; }
done
if [ -n "${LIFEBOAT_BIN:-}" ]; then
  LIFEBOAT=$(realpath "$LIFEBOAT_BIN")
else
  cargo build --release --locked --quiet
  LIFEBOAT="$TARGET_DIR/release/lifeboat"
fi

WORK=$(mktemp -d /tmp/lifeboat-bench.XXXXXX)
SSHD_PID=
cleanup() {
  [ -z "$SSHD_PID" ] || kill "$SSHD_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- a throwaway sshd on a free loopback port -------------------------------------------
ssh-keygen -q -t ed25519 -N "" -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N "" -f "$WORK/client_key"
cp "$WORK/client_key.pub" "$WORK/authorized_keys"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/sshd_config" <<CFG
Port $PORT
ListenAddress 127.0.0.1
HostKey $WORK/host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
CFG
mkdir -p /run/sshd
/usr/sbin/sshd -t -f "$WORK/sshd_config"
/usr/sbin/sshd -D -e -f "$WORK/sshd_config" 2>"$WORK/sshd.log" &
SSHD_PID=$!
echo "[127.0.0.1]:$PORT $(cat "$WORK/host_key.pub")" > "$WORK/known_hosts"
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

SSH=(ssh -o BatchMode=yes -o UserKnownHostsFile="$WORK/known_hosts" -o IdentitiesOnly=yes
     -i "$WORK/client_key" -p "$PORT" root@127.0.0.1)

mkdir -p "$WORK/remote" "$WORK/home/config"
now() { date +%s.%N; }

# --- a remote directory into a repository store: what a re-backup sends ----------------
if ((TREE_MB > 0)); then
  TREE="$WORK/remote/tree"
  echo "==> generating a ${TREE_MB} MiB directory on the \"remote\" side"
  python3 - "$TREE" "$TREE_MB" <<'PY'
import os, random, sys
root, mb = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
left, i = mb << 20, 0
while left > 0:
    # Mostly small files, some large: 4 KiB .. 4 MiB, half of each random (incompressible).
    size = min(left, rng.choice([4 << 10, 32 << 10, 256 << 10, 1 << 20, 4 << 20]))
    d = os.path.join(root, "d%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.bin" % i), "wb") as f:
        f.write(rng.randbytes(size // 2) + b"x" * (size - size // 2))
    left -= size
    i += 1
PY
  cat > "$WORK/home/config/tree.toml" <<CFG
[server]
state = "../var/tree.db"
[stores.vault]
kind = "repository"
location = "$WORK/vault"
password = "\${LIFEBOAT_REPO_PASSWORD}"
[targets.remote-tree]
kind = "directory"
host = "ssh://root@127.0.0.1:$PORT"
ssh_identity = "$WORK/client_key"
ssh_known_hosts = "$WORK/known_hosts"
path = "$TREE"
store = "vault"
CFG
  export LIFEBOAT_REPO_PASSWORD=bench-password
  TREE_CFG=(--config "$WORK/home/config/tree.toml")
  "$LIFEBOAT" "${TREE_CFG[@]}" store init vault >/dev/null
  tree_backup() { # label
    local t0 t1
    t0=$(now)
    "$LIFEBOAT" "${TREE_CFG[@]}" backup remote-tree --json > "$WORK/tree-backup.json"
    t1=$(now)
    python3 - "$WORK/tree-backup.json" "$1" "$(echo "$t1 - $t0" | bc)" "${2:-0}" <<'PY'
import json, sys
m, label, secs, changed = json.load(open(sys.argv[1])), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
t = m["directory"]["tree"]
sent = t["content_bytes_fetched"]
print(f"{label}: {secs:.2f}s, {t['files_read']} files read, {t['files_unchanged']} unchanged; "
      f"file content through the connection {sent} bytes, listings {t['listing_bytes_fetched']} bytes")
if changed:
    print(f"    changed bytes {changed}: content sent = {sent / changed:.2f}x the changed bytes (target: at most 2x)")
PY
  }
  tree_backup "dir first backup over SSH"
  # A small change: 5 files rewritten, one new 1 MiB file.
  CHANGED=$(python3 - "$TREE" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(2)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
changed = 0
for p in rng.sample(files, 5):
    n = os.path.getsize(p)
    with open(p, "wb") as f:
        f.write(rng.randbytes(n))
    changed += n
with open(os.path.join(root, "d000", "new.bin"), "wb") as f:
    f.write(rng.randbytes(1 << 20))
print(changed + (1 << 20))
PY
)
  tree_backup "dir re-backup over SSH, small change" "$CHANGED"
fi
((WITH_DB)) || exit 0

# --- the "remote" database: about $MB MiB, roughly 3:1 compressible ---------------------
DB="$WORK/remote/app.db"
ROWS=$((MB * 1024 * 1024 / 530))
echo "==> generating a ${MB} MiB SQLite database ($ROWS rows)"
t0=$(date +%s.%N)
sqlite3 "$DB" <<SQL
PRAGMA journal_mode=WAL;
CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, body BLOB);
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
INSERT INTO users SELECT value, 'user ' || value FROM generate_series(1, 1000);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT $ROWS)
INSERT INTO events SELECT x, 'kind-' || (x % 17), randomblob(160) || zeroblob(320) FROM c;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
t1=$(date +%s.%N)
printf '    %s bytes in %.1fs\n' "$(stat -c %s "$DB")" "$(echo "$t1 - $t0" | bc)"

cat > "$WORK/home/config/lifeboat.toml" <<CFG
[server]
state = "../var/lifeboat.db"
[stores.local]
kind = "local"
path = "../backups"
[targets.remote-db]
kind = "sqlite"
host = "ssh://root@127.0.0.1:$PORT"
ssh_identity = "$WORK/client_key"
ssh_known_hosts = "$WORK/known_hosts"
path = "$DB"
store = "local"
CFG

run_lifeboat() {
  local t0 t1
  t0=$(now)
  "$LIFEBOAT" --config "$WORK/home/config/lifeboat.toml" backup remote-db >/dev/null
  t1=$(now)
  echo "$t1 - $t0" | bc
}
run_shell() {
  local t0 t1 tmp=/tmp/bench-shell-copy.db
  t0=$(now)
  "${SSH[@]}" "sqlite3 '$DB' '.backup $tmp'"
  "${SSH[@]}" "cat $tmp" | zstd -3 -T0 -q -f -o "$WORK/shell.zst"
  "${SSH[@]}" "rm -f $tmp"
  t1=$(now)
  echo "$t1 - $t0" | bc
}

cat "$DB" > /dev/null # both start from a warm page cache
best_l=; best_s=
for i in $(seq "$RUNS"); do
  l=$(run_lifeboat); s=$(run_shell)
  printf 'run %d: lifeboat %6.2fs   shell %6.2fs\n' "$i" "$l" "$s"
  if [ -z "$best_l" ] || (( $(echo "$l < $best_l" | bc) )); then best_l=$l; fi
  if [ -z "$best_s" ] || (( $(echo "$s < $best_s" | bc) )); then best_s=$s; fi
done
stored=$(find "$WORK/home/backups/remote-db" -name '*.zst' -printf '%s\n' | tail -1)
echo
printf 'database:       %s MiB (%s bytes)\n' "$MB" "$(stat -c %s "$DB")"
printf 'lifeboat best:  %.2fs  (stored %s bytes, with SHA-256s, quick_check and row counts)\n' "$best_l" "$stored"
printf 'shell best:     %.2fs  (stored %s bytes)\n' "$best_s" "$(stat -c %s "$WORK/shell.zst")"
printf 'ratio:          %.2fx the shell equivalent (target: at most 0.6x)\n' "$(echo "$best_l / $best_s" | bc -l)"
