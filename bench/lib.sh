# Helpers shared by the benchmark scripts in bench/ (source it, do not run it): tools,
# the release build, the generated data sets, and GNU time around each measured command.
# Expects the caller to have `set -euo pipefail` and REPO_DIR set to the checkout.

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'bench: error: %s\n' "$*" >&2
    exit 1
}

# bench_tools CMD...: install the Debian packages of the missing commands (the package is
# named like the command; /usr/bin/time comes from `time`).
bench_tools() {
    local need=() c
    for c in "$@"; do
        if [[ $c == time ]]; then
            [[ -x /usr/bin/time ]] || need+=(time)
        else
            command -v "$c" >/dev/null || need+=("$c")
        fi
    done
    ((${#need[@]})) || return 0
    log "installing missing tools: ${need[*]}"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root or sudo to install: ${need[*]}"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null ||
        die "apt-get install ${need[*]} failed"
}

# bench_build: the release binary into LB (or LIFEBOAT_BIN when given), REVISION.
bench_build() {
    REVISION=$(git -C "$REPO_DIR" describe --always --dirty 2>/dev/null || echo unknown)
    if [[ -n ${LIFEBOAT_BIN:-} ]]; then
        LB=$(realpath "$LIFEBOAT_BIN")
    else
        log "building lifeboat (release)"
        (cd "$REPO_DIR" && cargo build --release --locked --quiet --bin lifeboat) ||
            die "cargo build --release failed in $REPO_DIR (see the compiler output above)"
        local target_dir=${CARGO_TARGET_DIR:-$REPO_DIR/target}
        [[ $target_dir = /* ]] || target_dir=$REPO_DIR/$target_dir
        LB=$target_dir/release/lifeboat
    fi
    [[ -x $LB ]] || die "lifeboat binary not found at $LB"
}

# bench_sqlite_db PATH SIZE_MB BLOBS: a deterministic SQLite database (WAL) of about
# SIZE_MB MiB: an `events` table of log-like text rows (~3:1 compressible) and 50,000
# users. BLOBS=1 adds an `attachment` column of 200–1800 random bytes per row (like
# thumbnails or compressed documents). Reused while PATH.stamp matches.
bench_sqlite_db() {
    local db=$1 size_mb=$2 blobs=$3 stamp="v1 size_mb=$2 blobs=$3" t0=$SECONDS
    if [[ -f $db && "$(cat "$db.stamp" 2>/dev/null)" == "$stamp" ]]; then
        log "reusing database $db"
        return
    fi
    log "generating a ${size_mb} MiB SQLite database (WAL mode) at $db"
    mkdir -p "$(dirname "$db")"
    rm -f "$db" "$db-wal" "$db-shm" "$db.stamp" "$db.gen" "$db.gen-wal" "$db.gen-shm"
    python3 - "$db.gen" "$size_mb" "$blobs" <<'PY'
import random, re, sqlite3, sys
path, size_mb, blobs = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
rng = random.Random(0x11FEB0A7)  # fixed seed: the same bytes every time
letters = "abcdefghijklmnopqrstuvwxyz"
vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(400)]
templates = [
    "request {w} for /api/v1/{w}/{n} completed with status {c} in {n} ms",
    "user {n} signed in from {w} using {w} client version 4.{n}",
    "cache miss for key {w}:{n}, fetching from upstream {w}",
    "payment {n} authorised for customer {n} amount {n}.{n} EUR",
    "slow query on table {w} took {n} ms, rows examined {n}",
    "retrying delivery of message {n} to queue {w} (attempt {c})",
    "session {n} expired after {n} seconds of inactivity",
    "scheduled job {w} finished, {n} items processed, {c} skipped",
]
parts, total = [], 0
while total < 4_000_000:  # ~4 MB of log-like text, sliced into rows
    t = rng.choice(templates)
    t = re.sub(r"\{w\}", lambda m: rng.choice(vocab), t)
    t = re.sub(r"\{n\}", lambda m: str(rng.randint(1, 99999)), t)
    t = re.sub(r"\{c\}", lambda m: str(rng.choice([200, 201, 204, 301, 404, 500])), t)
    parts.append(t + ". ")
    total += len(parts[-1])
pool = "".join(parts)
plen = len(pool)
kinds = ["login", "logout", "purchase", "refund", "view", "search", "error", "signup"]
hosts = [f"web-{i:02d}.eu-west.example.net" for i in range(24)]
con = sqlite3.connect(path, isolation_level=None)
con.execute("PRAGMA journal_mode=WAL")
con.execute("PRAGMA synchronous=OFF")
con.execute("PRAGMA cache_size=-65536")
con.execute(f"""CREATE TABLE events(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL,
    kind TEXT NOT NULL, host TEXT NOT NULL, user_id INTEGER NOT NULL, token TEXT NOT NULL,
    message TEXT NOT NULL, payload TEXT NOT NULL{', attachment BLOB NOT NULL' if blobs else ''})""")
con.execute("CREATE INDEX events_kind_ts ON events(kind, ts)")
con.execute("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, created INTEGER NOT NULL)")
con.execute("BEGIN")
con.executemany("INSERT INTO users VALUES (?,?,?,?)",
                ((i, f"user {i}", f"user{i}@example.com", 1600000000 + i * 37) for i in range(1, 50001)))
con.execute("COMMIT")
page_size = con.execute("PRAGMA page_size").fetchone()[0]
target = size_mb * 1024 * 1024
insert = f"INSERT INTO events VALUES (?,?,?,?,?,?,?,?{',?' if blobs else ''})"
ts, rid = 1700000000, 0
while True:
    rows = []
    for _ in range(5000):
        rid += 1
        ts += rng.randint(0, 3)
        off = rng.randrange(plen - 1024)
        row = (rid, ts, rng.choice(kinds), rng.choice(hosts), rng.randint(1, 50000),
               rng.randbytes(16).hex(), pool[off:off + rng.randint(200, 600)],
               '{"v":2,"trace":"' + rng.randbytes(rng.randint(50, 180)).hex() + '"}')
        rows.append(row + (rng.randbytes(rng.randint(200, 1800)),) if blobs else row)
    con.execute("BEGIN")
    con.executemany(insert, rows)
    con.execute("COMMIT")
    if con.execute("PRAGMA page_count").fetchone()[0] * page_size >= target:
        break
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
print(f"{rid} event rows", file=sys.stderr)
PY
    [[ "$(sqlite3 "$db.gen" 'PRAGMA journal_mode')" == wal ]] || die "generated database is not in WAL mode"
    rm -f "$db.gen-wal" "$db.gen-shm"
    mv "$db.gen" "$db"
    echo "$stamp" >"$db.stamp"
    log "database generated in $((SECONDS - t0)) s"
}

# bench_tree PATH SIZE_MB: a deterministic directory of about SIZE_MB MiB: ~8 % many
# small files (mostly text), ~30 % medium files (half random), four large files (two
# text, two random), symlinks (one dangling) and empty directories. Reused while
# PATH.stamp matches.
bench_tree() {
    local tree=$1 size_mb=$2 stamp="v1 size_mb=$2" t0=$SECONDS
    if [[ -d $tree && "$(cat "$tree.stamp" 2>/dev/null)" == "$stamp" ]]; then
        log "reusing directory tree $tree"
        return
    fi
    log "generating a ${size_mb} MiB directory tree at $tree"
    mkdir -p "$(dirname "$tree")"
    rm -rf "$tree" "$tree.gen" "$tree.stamp"
    python3 - "$tree.gen" "$size_mb" <<'PY'
import os, random, sys
root, size_mb = sys.argv[1], int(sys.argv[2])
rng = random.Random(0xD1EC7081)  # fixed seed: the same tree every time
total = size_mb * 1024 * 1024
letters = "abcdefghijklmnopqrstuvwxyz"
vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(600)]
lines = []
for i in range(40000):  # ~3 MB of source-code / log-like lines
    w = rng.choices(vocab, k=rng.randint(3, 12))
    lines.append(f"{'    ' * rng.randint(0, 3)}{w[0]} = {w[1]}({', '.join(w[2:])})  # {i}\n")
pool = "".join(lines).encode()
plen = len(pool)
MTIME = 1_700_000_000

def text(n):
    out, have = [], 0
    while have < n:
        off = rng.randrange(plen - 65536)
        chunk = pool[off:off + min(65536, n - have)]
        out.append(chunk)
        have += len(chunk)
    return b"".join(out)

def write(path, n, random_bytes, chunk=1 << 20):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = n
        while left > 0:
            k = min(chunk, left)
            f.write(rng.randbytes(k) if random_bytes else text(k))
            left -= k
    os.utime(path, (MTIME, MTIME + rng.randint(0, 10_000_000)))

written = 0
# ~8%: many small files (0.5-8 KiB), 90% text, 50 to a directory, two levels deep
budget, i = total * 8 // 100, 0
while written < budget:
    n = rng.randint(512, 8192)
    rnd = rng.random() < 0.1
    d = f"small/d{i // 2500:02d}/e{(i // 50) % 50:02d}"
    write(os.path.join(root, d, f"f{i:06d}.{'bin' if rnd else 'txt'}"), n, rnd)
    written += n
    i += 1
small_files = i
# ~30%: medium files (64 KiB - 4 MiB), half random
budget += total * 30 // 100
j = 0
while written < budget:
    n = rng.randint(64 << 10, 4 << 20)
    rnd = j % 2 == 1
    write(os.path.join(root, f"medium/m{j % 8}", f"part{j:04d}.{'dat' if rnd else 'log'}"), n, rnd)
    written += n
    j += 1
# the rest: four large files, two compressible, two random
rest = max(total - written, 4)
for k, (name, rnd) in enumerate([("dump.sql", False), ("media.bin", True), ("app.log", False), ("blobs.pack", True)]):
    write(os.path.join(root, "large", name), rest // 4, rnd)
# links (relative, inside the tree; one dangling) and empty directories
os.makedirs(os.path.join(root, "links"), exist_ok=True)
os.symlink("../small/d00/e00/f000000.txt", os.path.join(root, "links", "first.txt"))
os.symlink("../large", os.path.join(root, "links", "large-dir"))
os.symlink("../medium/m0/part0000.log", os.path.join(root, "links", "medium.log"))
os.symlink("no-such-file", os.path.join(root, "links", "dangling"))
for d in ("empty/a", "empty/b/c", "medium/m0/empty"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
print(f"{small_files} small files, {j} medium files, 4 large files", file=sys.stderr)
PY
    mv "$tree.gen" "$tree"
    echo "$stamp" >"$tree.stamp"
    log "tree generated in $((SECONDS - t0)) s"
}

# bench_cache_setup: drop the page cache before every measured command when root may
# (CACHE_DROP=yes); otherwise warm the given sources once so every command reads warm
# ones. Warns when other work loads the machine. Sets LOAD_BEFORE.
bench_cache_setup() {
    CACHE_DROP=no
    if ((EUID == 0)) && { sync; echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
        CACHE_DROP=yes
    else
        log "page cache cannot be dropped; warming the sources instead"
        local s
        for s in "$@"; do
            if [[ -d $s ]]; then tar -cf - -C "$s" . >/dev/null; else cat "$s" >/dev/null; fi
        done
    fi
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    if awk -v l="${LOAD_BEFORE%% *}" -v n="$(nproc)" 'BEGIN{exit !(l > n / 2)}'; then
        log "warning: load average is $LOAD_BEFORE on $(nproc) cores; other work will skew the timings"
    fi
}

# bench_prepare: dirty pages written out (no command pays for another's writeback), and
# the page cache dropped when bench_cache_setup could.
bench_prepare() {
    sync
    if [[ ${CACHE_DROP:-no} == yes ]]; then
        { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null || true
    fi
}

# bench_time TIMEFILE LOGFILE COMMAND...: run it under GNU time; TIMEFILE's last line is
# "wall-seconds peak-RSS-KiB user-seconds system-seconds". Returns the command's status.
bench_time() {
    local tf=$1 lf=$2
    shift 2
    /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$lf" 2>&1
}

# bench_same_tree SOURCE RESTORED: "ok (<files> <bytes>)" when both hold as many regular
# files of the same total size, else "MISMATCH (...)".
bench_same_tree() {
    local a b
    a=$(cd "$1" && find . -type f -printf '%s\n' | awk '{n++; s+=$1} END {printf "%d %.0f\n", n, s}')
    if [[ -d $2 ]]; then
        b=$(cd "$2" && find . -type f -printf '%s\n' | awk '{n++; s+=$1} END {printf "%d %.0f\n", n, s}')
    else
        b=missing
    fi
    if [[ $a == "$b" ]]; then echo "ok ($a files/bytes)"; else echo "MISMATCH (source $a, restored $b)"; fi
}

# bench_machine: one line describing the machine.
bench_machine() {
    echo "$(nproc) cores, $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/{printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
}
