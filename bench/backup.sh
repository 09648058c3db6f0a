#!/usr/bin/env bash
# Benchmark (not a test): lifeboat backup/restore of a ~1 GiB SQLite database and a
# ~1 GiB directory tree, against the seeds' shell pipeline (sqlite3 .backup | zstd |
# sha256sum, tar | zstd) and restic, all measured in the same run on the same data.
#
# Usage: bench/backup.sh
#   BENCH_SIZE_MB  size of each data set in MiB (default 1024)
#   BENCH_ROUNDS   rounds (default 3); each tool runs once per round, every round from
#                  empty outputs, and the table shows each tool's fastest round
#   BENCH_DIR      work dir (default /tmp/lifeboat-bench); generated data under src/ is
#                  kept and reused when its size matches, everything under out/ is
#                  rebuilt on every run
#   CARGO_TARGET_DIR  honoured when building and locating the lifeboat binary
#   BENCH_PARTS    which data sets: "db dir" (default), "db" or "dir"
#   LIFEBOAT_BIN_BEFORE  another lifeboat binary (e.g. a release build of the commit
#                  before a change) measured beside this one in every round, as
#                  "lifeboat … (before)": a change's cost, under the same drift
#
# Each measured command runs after `sync` (and, as root, a best-effort page-cache drop,
# applied identically before every command); wall time, CPU time and peak RSS come from
# GNU time. On a shared machine the speed available drifts by tens of percent from minute
# to minute; interleaving the tools round by round exposes them all to the same drift,
# and the fastest round is the one least disturbed. Every round's time is printed too.
# Ratios compare with lifeboat's time for the same operation (lifeboat = 1.00): below
# 1.00 the peer is faster. Compare ratios, not absolute times, on noisy machines.
set -euo pipefail

SIZE_MB=${BENCH_SIZE_MB:-1024}
ROUNDS=${BENCH_ROUNDS:-3}
PARTS=${BENCH_PARTS:-db dir}
BEFORE=${LIFEBOAT_BIN_BEFORE:-}
[[ -z $BEFORE || -x $BEFORE ]] || die "LIFEBOAT_BIN_BEFORE is not an executable: $BEFORE"
WORK=${BENCH_DIR:-/tmp/lifeboat-bench}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO_DIR/bench/lib.sh"

[[ $SIZE_MB =~ ^[0-9]+$ ]] && ((SIZE_MB >= 16)) || die "BENCH_SIZE_MB must be an integer >= 16 (got '$SIZE_MB')"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer (got '$ROUNDS')"
START_SECONDS=$SECONDS

# --- 1. tools, build, data ---------------------------------------------------------------
bench_tools sqlite3 zstd restic time
command -v python3 >/dev/null || die "python3 is required to generate the data"
python3 -c 'import sqlite3' 2>/dev/null || die "python3 lacks the sqlite3 module"
command -v cargo >/dev/null || die "cargo is required to build lifeboat"
bench_build
SRC=$WORK/src
DB=$SRC/bench.db
TREE=$SRC/tree
bench_sqlite_db "$DB" "$SIZE_MB" 0
bench_tree "$TREE" "$SIZE_MB"

# --- 4. config and output area -----------------------------------------------------------
OUT=$WORK/out
log "removing outputs of earlier runs ($OUT)"
rm -rf "$OUT"
mkdir -p "$OUT/logs" "$OUT/restore" # restore_roots must exist for config check
CFG=$OUT/lifeboat.toml
cat >"$CFG" <<CONF
# Written by bench/backup.sh; rewritten on every run.
[server]
state = "$OUT/state/lifeboat.db"
scratch = "$OUT/state/scratch"

[stores.bench]
kind = "local"
path = "$OUT/store"

[targets.bench-db]
kind = "sqlite"
path = "$DB"
store = "bench"
restore_roots = ["$OUT/restore"]

[targets.bench-dir]
kind = "directory"
path = "$TREE"
store = "bench"
restore_roots = ["$OUT/restore"]
CONF
# The binary measured as "(before)" keeps its state and backups apart.
CFG_BEFORE=$OUT/lifeboat-before.toml
sed -e "s|$OUT/state/|$OUT/state-before/|" -e "s|$OUT/store\"|$OUT/store-before\"|" "$CFG" >"$CFG_BEFORE"
"$LB" --config "$CFG" config check >"$OUT/logs/config-check.log" 2>&1 ||
    { cat "$OUT/logs/config-check.log" >&2; die "lifeboat config check failed"; }
export RESTIC_REPOSITORY=$OUT/restic RESTIC_PASSWORD=lifeboat-bench RESTIC_CACHE_DIR=$OUT/restic-cache

# Every round starts from empty outputs: no tool reuses what an earlier round stored
# (restic would otherwise find every chunk already in its repository).
fresh_outputs() {
    rm -rf "$OUT/state" "$OUT/store" "$OUT/state-before" "$OUT/store-before" "$OUT/restore" "$OUT/seeds" "$RESTIC_REPOSITORY" "$RESTIC_CACHE_DIR"
    mkdir -p "$OUT/state" "$OUT/store" "$OUT/state-before" "$OUT/store-before" "$OUT/restore" "$OUT/seeds"
    restic init --repository-version 2 -q >"$OUT/logs/restic-init.log" 2>&1 ||
        { cat "$OUT/logs/restic-init.log" >&2; die "restic init failed"; }
    sync
}

# --- 5. measurements --------------------------------------------------------------------
bench_cache_setup "$DB" "$TREE"

# One line per measured command, tab-separated:
# round, operation, tool, seconds, peak RSS KiB, user s, system s, sync s, output bytes, status
RESULTS=$OUT/results.tsv
: >"$RESULTS"
FAILED=0
N=0
ROUND=0
# measure OP TOOL OUTPUT_PATH -- COMMAND...  (OUTPUT_PATH: what the command writes, or -)
measure() {
    local op=$1 tool=$2 output=$3
    shift 4
    N=$((N + 1))
    local tf=$OUT/logs/$N.time lf=$OUT/logs/$N.log status=ok secs kb user sys s0 s1 size=-
    log "[round $ROUND/$ROUNDS] $op: $tool"
    bench_prepare
    if ! bench_time "$tf" "$lf" "$@"; then
        status=FAILED
        FAILED=$((FAILED + 1))
        printf 'bench: %s (%s) failed; its output (%s):\n' "$tool" "$op" "$lf" >&2
        tail -n 20 "$lf" | sed 's/^/    /' >&2
    fi
    read -r secs kb user sys < <(tail -n 1 "$tf" 2>/dev/null) || true
    s0=$(date +%s.%N)
    sync
    s1=$(date +%s.%N)
    if [[ $output != - && -e $output ]]; then
        size=$(du -sb "$output" | cut -f1)
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$op" "$tool" "$secs" "$kb" "$user" "$sys" \
        "$(awk -v a="$s0" -v b="$s1" 'BEGIN{printf "%.2f", b-a}')" "$size" "$status" >>"$RESULTS"
}

LB_DB_RESTORE=$OUT/restore/lifeboat-db.sqlite
LB_DIR_RESTORE=$OUT/restore/lifeboat-dir
SEED_COPY=$OUT/seeds/copy.db

for ROUND in $(seq "$ROUNDS"); do
    fresh_outputs
    # A part left out adds nothing to restic's repository.
    RESTIC_AFTER_DB=$(du -sb "$RESTIC_REPOSITORY" | cut -f1) RESTIC_BEFORE=$RESTIC_AFTER_DB RESTIC_AFTER_DIR=$RESTIC_AFTER_DB
    if [[ $PARTS == *db* ]]; then
    measure "DB backup" "lifeboat backup" "$OUT/store/bench-db" -- \
        "$LB" --config "$CFG" backup bench-db
    measure "DB backup" "sqlite3 .backup | zstd -3 -T0 | sha256sum" "$SEED_COPY.zst" -- \
        bash -c 'set -euo pipefail; sqlite3 "$1" ".backup \"$2\""; zstd -3 -T0 -q "$2"; sha256sum "$2.zst" >"$2.zst.sha256"' _ "$DB" "$SEED_COPY"
    RESTIC_BEFORE=$(du -sb "$RESTIC_REPOSITORY" | cut -f1)
    measure "DB backup" "restic backup" - -- \
        restic backup -q "$DB"
    RESTIC_AFTER_DB=$(du -sb "$RESTIC_REPOSITORY" | cut -f1)

    measure "DB restore" "lifeboat restore" - -- \
        "$LB" --config "$CFG" restore bench-db --to "$LB_DB_RESTORE" --yes
    measure "DB restore" "zstd -d (seeds' reverse)" - -- \
        zstd -d -q "$SEED_COPY.zst" -o "$OUT/restore/seeds-db.sqlite"
    measure "DB restore" "restic restore" - -- \
        restic restore latest --path "$DB" --target "$OUT/restore/restic-db" -q
    fi
    if [[ $PARTS == *dir* ]]; then

    # The binary before a change goes first in every other round: neither gains from its
    # place in the order. Each has a store of its own, empty at the start of the round.
    if [[ -n $BEFORE ]] && ((ROUND % 2 == 0)); then
        measure "dir backup" "lifeboat backup (before)" "$OUT/store-before/bench-dir" -- \
            "$BEFORE" --config "$CFG_BEFORE" backup bench-dir
    fi
    measure "dir backup" "lifeboat backup" "$OUT/store/bench-dir" -- \
        "$LB" --config "$CFG" backup bench-dir
    if [[ -n $BEFORE ]] && ((ROUND % 2 == 1)); then
        measure "dir backup" "lifeboat backup (before)" "$OUT/store-before/bench-dir" -- \
            "$BEFORE" --config "$CFG_BEFORE" backup bench-dir
    fi
    measure "dir backup" "tar | zstd -3 -T0" "$OUT/seeds/dir.tar.zst" -- \
        bash -c 'set -euo pipefail; tar -cf - -C "$1" . | zstd -3 -T0 -q >"$2"' _ "$TREE" "$OUT/seeds/dir.tar.zst"
    measure "dir backup" "restic backup" - -- \
        restic backup -q "$TREE"
    RESTIC_AFTER_DIR=$(du -sb "$RESTIC_REPOSITORY" | cut -f1)

    measure "dir restore" "lifeboat restore" - -- \
        "$LB" --config "$CFG" restore bench-dir --to "$LB_DIR_RESTORE" --yes
    measure "dir restore" "zstd -d | tar -x" - -- \
        bash -c 'set -euo pipefail; mkdir "$2"; zstd -d -q -c "$1" | tar -xf - -C "$2"' _ "$OUT/seeds/dir.tar.zst" "$OUT/restore/seeds-dir"
    measure "dir restore" "restic restore" - -- \
        restic restore latest --path "$TREE" --target "$OUT/restore/restic-dir" -q
    fi

    # What restic stored for each data set: the repository's growth.
    awk -F'\t' -v OFS='\t' -v r="$ROUND" -v db=$((RESTIC_AFTER_DB - RESTIC_BEFORE)) -v dir=$((RESTIC_AFTER_DIR - RESTIC_AFTER_DB)) \
        '$1 == r && $3 == "restic backup" { $9 = ($2 == "DB backup") ? db : dir } { print }' \
        "$RESULTS" >"$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"
done

# Sanity checks on the last round's restored copies (not timed).
CHECKS=()
check_same_tree() { # name path: same file count and byte total as the source tree
    local r
    r=$(bench_same_tree "$TREE" "$2")
    CHECKS+=("$1: $r")
}
check_db() {
    local r
    if [[ -f $2 ]] && r=$(sqlite3 "$2" 'PRAGMA quick_check; SELECT count(*) FROM events;' 2>&1 | tr '\n' ' '); then
        CHECKS+=("$1: $r")
    else
        CHECKS+=("$1: FAILED (${r:-missing})")
    fi
}
if [[ $PARTS == *db* ]]; then
    check_db "lifeboat DB restore" "$LB_DB_RESTORE"
    check_db "restic DB restore" "$OUT/restore/restic-db$DB"
fi
if [[ $PARTS == *dir* ]]; then
    check_same_tree "lifeboat dir restore" "$LB_DIR_RESTORE"
    check_same_tree "tar dir restore" "$OUT/restore/seeds-dir"
    check_same_tree "restic dir restore" "$OUT/restore/restic-dir$TREE"
fi

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 6. report ---------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN{ if (b == "-" || b == "") print "-"; else printf "%.1f", b / 1048576 }'; }
DB_BYTES=$(stat -c %s "$DB")
TREE_BYTES=$(du -sb "$TREE" | cut -f1)
TREE_FILES=$(find "$TREE" -type f | wc -l)
TREE_LINKS=$(find "$TREE" -type l | wc -l)
TREE_DIRS=$(find "$TREE" -type d | wc -l)
DB_ROWS=$(sqlite3 "$DB" 'SELECT count(*) FROM events')

echo
echo "## lifeboat backup benchmark"
echo
echo "- machine: $(bench_machine)"
echo "- load average (1/5/15 min) before measuring: $LOAD_BEFORE; after: $LOAD_AFTER"
echo "- tools: lifeboat $("$LB" --version | awk '{print $2}') (release build of $REVISION, $LB), $(sqlite3 --version | awk '{print "sqlite3 " $1}'), $(zstd --version | grep -o 'v[0-9.]*' | head -1 | sed 's/^/zstd /'), $(restic version | awk '{print $1, $2}')"
echo "- database: $(mib "$DB_BYTES") MiB, WAL mode, $DB_ROWS event rows ($DB)"
echo "- directory: $(mib "$TREE_BYTES") MiB, $TREE_FILES files, $TREE_DIRS directories, $TREE_LINKS symlinks ($TREE)"
echo "- page cache dropped before each command: $CACHE_DROP$([[ $CACHE_DROP == no ]] && echo ' (sources warmed in cache instead)')"
echo "- $ROUNDS round(s), each tool once per round in the order shown, every round from empty outputs"
echo "- sync after each command is not in 'seconds'; it is shown separately ('sync s')"
echo
python3 - "$RESULTS" <<'PY'
import collections, sys

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
runs = collections.OrderedDict()  # (operation, tool) -> list of rounds
for rnd, op, tool, secs, kb, user, system, sync_s, size, status in rows:
    runs.setdefault((op, tool), []).append(dict(
        secs=float(secs or "nan"), kb=int(kb or 0), cpu=float(user or 0) + float(system or 0),
        sync=sync_s, size=size, ok=status == "ok"))

def best(rounds):
    good = [r for r in rounds if r["ok"]]
    return min(good, key=lambda r: r["secs"]) if good else None

base = {op: best(rs)["secs"] for (op, tool), rs in runs.items()
        if tool.startswith("lifeboat") and not tool.endswith("(before)") and best(rs)}
print("| operation | tool | best s | ratio | CPU s | every round s | peak RSS (MiB) | sync s | output MiB | status |")
print("|---|---|---:|---:|---:|---|---:|---:|---:|---|")
for (op, tool), rounds in runs.items():
    b = best(rounds)
    lifeboat = tool.startswith("lifeboat")
    every = " ".join(f"{r['secs']:.2f}" if r["ok"] else "failed" for r in rounds)
    peak = max(r["kb"] for r in rounds) / 1024
    mem = f"**{peak:.0f}**" if lifeboat else f"{peak:.0f}"
    status = "ok" if all(r["ok"] for r in rounds) else "FAILED"
    if b is None:
        print(f"| {op} | {tool.replace('|', chr(92) + '|')} | - | - | - | {every} | {mem} | - | - | {status} |")
        continue
    ratio = f"{b['secs'] / base[op]:.2f}" if base.get(op) else "-"
    size = f"{int(b['size']) / 2**20:.1f}" if b["size"] not in ("-", "") else "-"
    print(f"| {op} | {tool.replace('|', chr(92) + '|')} | {b['secs']:.2f} | {ratio} | {b['cpu']:.2f} | {every} "
          f"| {mem} | {b['sync']} | {size} | {status} |")
print()
print("best s = the fastest round; ratio = best s / lifeboat's best s for the same operation "
      "(lifeboat = 1.00; < 1 means faster than lifeboat); CPU s = user + system time of that round.")
print("Peak RSS is GNU time's %M over all rounds: for shell pipelines it is the largest single process, not the sum.")
PY
echo
echo "Restore checks (not timed, last round):"
for c in "${CHECKS[@]}"; do echo "- $c"; done
echo
echo "Total script time: $((SECONDS - START_SECONDS)) s. Logs: $OUT/logs"

if ((FAILED)); then
    echo "bench: $FAILED measured command(s) failed; see above" >&2
    exit 1
fi
exit 0
