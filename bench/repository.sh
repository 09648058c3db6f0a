#!/usr/bin/env bash
# Benchmark (not a test): lifeboat's repository store (`kind = "repository"`, restic
# format) beside the real `restic` and beside lifeboat's full-copy store (`kind =
# "local"`, one zstd artifact per backup), in the same run on the same data:
#
#   1 GiB SQLite database (text and blob rows): first backup; UPDATE 1 % of the rows
#   (ids spread at random), re-backup; UPDATE another 10 %, re-backup; restore.
#   2 GiB directory of mixed files: first backup; a small change, re-backup; restore;
#   one file of it restored alone (lifeboat `restore --path`, `restic restore --include`).
#   200,000 small text files (about 100 MB in 2,000 folders): first backup; one file
#   changed, re-backup.
#
# For every step and tool: wall time, CPU (user + system), peak RSS (GNU time's %M; for
# a shell pipeline the largest single process) and the bytes the step added to its
# repository or store (du -sb before and after). Then the issue's targets, met or not.
#
#   bash bench/repository.sh                  # 1 GiB database, 2 GiB directory
#   bash bench/repository.sh --quick          # SIZE_MB=64 unless SIZE_MB is set
#   SIZE_MB=256 bash bench/repository.sh      # database SIZE_MB MiB, directory 2 × SIZE_MB
#   WITH_DB=0 bash bench/repository.sh        # skip the database steps
#   WITH_DIR=0 bash bench/repository.sh       # skip the 2 GiB directory's steps
#   WITH_DB=0 WITH_DIR=0 bash bench/repository.sh   # the small-files tree alone
#   SMALL_FILES=20000 bash bench/repository.sh  # the small-files tree's size (0: skip it)
#   REPOSITORY=0 bash bench/repository.sh     # skip lifeboat's repository store
#                                             # (default auto: on when `config check` takes it)
#   BENCH_DIR=/tmp/x ...                      # work dir (default /tmp/lifeboat-bench-repository);
#                                             # generated data in src/ is reused, out/ is rebuilt
#   LIFEBOAT_BIN=target/release/lifeboat ...  # a binary already built
#
# restic is given what a restic user backing up SQLite does: a consistent copy made with
# SQLite's backup API (`sqlite3 db ".backup copy"`), then `restic backup copy`, then the
# copy removed; its time includes the copy, as lifeboat's includes its own consistent
# read (a read transaction pinning the file, plus its quick_check and row counts). The
# copy keeps one path, so restic finds its parent snapshot each time, as it would in a
# nightly job. (`restic backup --stdin` of the copy would read the same bytes once more
# through a pipe, and `.dump` would back up SQL text instead of the database.) The
# directory goes to restic as it is (`restic backup dir`, which skips unchanged files by
# their metadata); lifeboat's repository store keeps a directory as a native tree and
# skips unchanged files the same way (its full-copy store writes one tar per backup). restic's
# repository is version 2 with its default compression (auto); one restic repository
# holds both data sets, as lifeboat's one repository store does.
#
# "Changed bytes" of an UPDATE is the size of what the statement rewrote: the updated
# rows' token, message, payload and attachment (same lengths before and after, new
# content), summed with SQLite's length(). The SQLite pages that differ between the file
# before and after are printed beside it: with ids spread at random nearly every
# content-defined chunk of the file holds a changed row, which is what both restic and
# lifeboat then store again.
#
# Each measured command runs after `sync` and, as root, a page-cache drop; the tools run
# in the same order at every step, once each (one round: the full size takes long on a
# 2-core machine; compare ratios within the run).
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$REPO_DIR/bench/lib.sh"

[[ ${1:-} == --quick ]] && SIZE_MB=${SIZE_MB:-64}
SIZE_MB=${SIZE_MB:-1024}
TREE_MB=$((SIZE_MB * 2))
REPOSITORY=${REPOSITORY:-auto}
WITH_DB=${WITH_DB:-1}
WITH_DIR=${WITH_DIR:-1}
SMALL_FILES=${SMALL_FILES:-200000}
WORK=${BENCH_DIR:-/tmp/lifeboat-bench-repository}
[[ $SIZE_MB =~ ^[0-9]+$ ]] && ((SIZE_MB >= 16)) || die "SIZE_MB must be an integer >= 16 (got '$SIZE_MB')"
[[ $REPOSITORY =~ ^(auto|0|1)$ ]] || die "REPOSITORY must be auto, 0 or 1 (got '$REPOSITORY')"
[[ $WITH_DB =~ ^(0|1)$ ]] || die "WITH_DB must be 0 or 1 (got '$WITH_DB')"
[[ $WITH_DIR =~ ^(0|1)$ ]] || die "WITH_DIR must be 0 or 1 (got '$WITH_DIR')"
[[ $SMALL_FILES =~ ^[0-9]+$ ]] || die "SMALL_FILES must be an integer (got '$SMALL_FILES')"
START_SECONDS=$SECONDS

# --- tools, build, data ------------------------------------------------------------------
bench_tools sqlite3 restic time
command -v python3 >/dev/null || die "python3 is required to generate the data"
bench_build
((WITH_DB)) && bench_sqlite_db "$WORK/src/bench.db" "$SIZE_MB" 1
((WITH_DIR)) && bench_tree "$WORK/src/tree" "$TREE_MB"
# small_tree DIR FILES: FILES text files of about 500 bytes in FILES/100 folders (fixed
# seed; reused when already made with the same count).
small_tree() {
    local tree=$1 files=$2 stamp="v1 files=$2"
    if [[ -d $tree && "$(cat "$tree.stamp" 2>/dev/null)" == "$stamp" ]]; then
        log "reusing the small-files tree $tree"
        return
    fi
    log "generating $files small files at $tree"
    rm -rf "$tree" "$tree.stamp"
    python3 - "$tree" "$files" <<'PY'
import os, random, sys
root, files = sys.argv[1], int(sys.argv[2])
rng = random.Random(0x5A11)
words = [("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))) for _ in range(800)]
for i in range(files):
    d = os.path.join(root, f"d{i // 100:04d}")
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    n = rng.randint(300, 700)
    text = " ".join(rng.choices(words, k=n // 5 + 1))[:n] + "\n"
    with open(os.path.join(d, f"f{i % 100:03d}.txt"), "w") as f:
        f.write(text)
PY
    echo "$stamp" >"$tree.stamp"
}
((SMALL_FILES)) && small_tree "$WORK/src/small" "$SMALL_FILES"

OUT=$WORK/out
log "removing outputs of earlier runs ($OUT)"
rm -rf "$OUT"
mkdir -p "$OUT"/{logs,restore,data,state,full,restic-scratch}
# The steps change the data, so they work on copies; the generated sources stay pristine.
log "copying the data sets into $OUT/data"
DB=$OUT/data/app.db
TREE=$OUT/data/tree
if ((WITH_DB)); then cp "$WORK/src/bench.db" "$DB"; else : >"$DB"; fi
if ((WITH_DIR)); then cp -a "$WORK/src/tree" "$TREE"; else mkdir -p "$TREE"; fi
SMALL=$OUT/data/small
((SMALL_FILES)) && cp -a "$WORK/src/small" "$SMALL"

# --- config ------------------------------------------------------------------------------
export LIFEBOAT_REPO_PASSWORD=lifeboat-bench
export RESTIC_REPOSITORY=$OUT/restic RESTIC_PASSWORD=lifeboat-bench RESTIC_CACHE_DIR=$OUT/restic-cache
CFG=$OUT/lifeboat.toml
write_config() { # with_repository (0/1)
    {
        printf '# Written by bench/repository.sh; rewritten on every run.\n'
        printf '[server]\nstate = "%s"\nscratch = "%s"\n\n' "$OUT/state/lifeboat.db" "$OUT/state/scratch"
        printf '[stores.full]\nkind = "local"\npath = "%s"\n\n' "$OUT/full"
        if (($1)); then
            # shellcheck disable=SC2016 # the ${...} is lifeboat's, read from the environment
            printf '[stores.vault]\nkind = "repository"\nlocation = "%s"\npassword = "${LIFEBOAT_REPO_PASSWORD}"\n\n' "$OUT/vault"
        fi
        local store kind path
        for store in full vault; do
            [[ $store == vault ]] && ! (($1)) && continue
            for kind in db dir small; do
                case $kind in db) path=$DB ;; dir) path=$TREE ;; small) path=$SMALL ;; esac
                printf '[targets.%s-%s]\nkind = "%s"\npath = "%s"\nstore = "%s"\nrestore_roots = ["%s"]\n\n' \
                    "$kind" "$store" "$([[ $kind == db ]] && echo sqlite || echo directory)" "$path" "$store" "$OUT/restore"
            done
        done
    } >"$CFG"
}
LBC=("$LB" --config "$CFG")
restic init --repository-version 2 -q >"$OUT/logs/restic-init.log" 2>&1 ||
    { cat "$OUT/logs/restic-init.log" >&2; die "restic init failed"; }
# The repository store is in when the config takes it and the store answers: initialised
# here, untimed as restic's is (or, without `store init`, listed: a first use).
WITH_REPO=0
if [[ $REPOSITORY != 0 ]]; then
    write_config 1
    if "${LBC[@]}" config check >"$OUT/logs/vault-probe.log" 2>&1 &&
        { "${LBC[@]}" store init vault >>"$OUT/logs/vault-probe.log" 2>&1 ||
            "${LBC[@]}" list db-vault >>"$OUT/logs/vault-probe.log" 2>&1; }; then
        WITH_REPO=1
    elif [[ $REPOSITORY == 1 ]]; then
        cat "$OUT/logs/vault-probe.log" >&2
        die "the repository store does not work in this lifeboat (REPOSITORY=1)"
    else
        log "no repository store in this lifeboat ($(tail -1 "$OUT/logs/vault-probe.log")); measuring restic and the full-copy store only"
        rm -rf "$OUT/vault"
    fi
fi
if ((!WITH_REPO)); then
    write_config 0
    "${LBC[@]}" config check >"$OUT/logs/config-check.log" 2>&1 ||
        { cat "$OUT/logs/config-check.log" >&2; die "lifeboat config check failed"; }
fi

# --- measuring ---------------------------------------------------------------------------
bench_cache_setup "$DB" "$TREE"
# One line per measured command, tab-separated: step, tool, seconds, peak RSS KiB,
# user s, system s, bytes added, load average at the start, status
RESULTS=$OUT/results.tsv
: >"$RESULTS"
FAILED=0
N=0
# measure STEP TOOL STORE_PATH -- COMMAND...   (STORE_PATH: where it stores, or -)
measure() {
    local step=$1 tool=$2 store=$3 before=0 after=0 added=- status=ok secs kb user sys load
    shift 4
    N=$((N + 1))
    local tf=$OUT/logs/$N.time lf=$OUT/logs/$N.log
    log "$step: $tool"
    [[ $store != - && -e $store ]] && before=$(du -sb "$store" | cut -f1)
    bench_prepare
    load=$(cut -d' ' -f1 /proc/loadavg)
    if ! bench_time "$tf" "$lf" "$@"; then
        status=FAILED
        FAILED=$((FAILED + 1))
        printf 'bench: %s (%s) failed; its output (%s):\n' "$tool" "$step" "$lf" >&2
        tail -n 20 "$lf" | sed 's/^/    /' >&2
    fi
    read -r secs kb user sys < <(tail -n 1 "$tf" 2>/dev/null) || true
    if [[ $store != - ]]; then
        sync
        [[ -e $store ]] && after=$(du -sb "$store" | cut -f1)
        added=$((after - before))
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$step" "$tool" "$secs" "$kb" "$user" "$sys" "$added" "$load" "$status" >>"$RESULTS"
}
T_REPO="lifeboat → repository"
T_RESTIC="restic"
T_FULL="lifeboat → full copy"
COPY=$OUT/restic-scratch/app.db
backup_all() { # step kind(db|dir)
    if ((WITH_REPO)); then
        measure "$1" "$T_REPO" "$OUT/vault" -- "${LBC[@]}" backup "$2-vault"
    fi
    if [[ $2 == db ]]; then
        measure "$1" "$T_RESTIC" "$RESTIC_REPOSITORY" -- bash -c \
            'set -e; sqlite3 "$1" ".backup \"$2\""; restic backup -q --tag db "$2"; rm -f "$2"' _ "$DB" "$COPY"
    else
        local path=$TREE
        [[ $2 == small ]] && path=$SMALL
        measure "$1" "$T_RESTIC" "$RESTIC_REPOSITORY" -- restic backup -q --tag "$2" "$path"
    fi
    measure "$1" "$T_FULL" "$OUT/full" -- "${LBC[@]}" backup "$2-full"
}
restore_all() { # step kind(db|dir)
    local ext=sqlite
    [[ $2 == dir ]] && ext=d
    if ((WITH_REPO)); then
        measure "$1" "$T_REPO" - -- "${LBC[@]}" restore "$2-vault" --to "$OUT/restore/vault-$2.$ext" --yes
    fi
    measure "$1" "$T_RESTIC" - -- restic restore latest --tag "$2" --target "$OUT/restore/restic-$2" -q
    measure "$1" "$T_FULL" - -- "${LBC[@]}" restore "$2-full" --to "$OUT/restore/full-$2.$ext" --yes
}

# update_rows PERCENT SEED: rewrite PERCENT % of the event rows, ids drawn at random, with
# new content of the same lengths; prints "<rows> <changed bytes> <pages changed bytes>".
update_rows() {
    cp "$DB" "$OUT/before.db"
    python3 - "$DB" "$OUT/before.db" "$1" "$2" <<'PY'
import random, sqlite3, sys
path, before, percent, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
con = sqlite3.connect(path, isolation_level=None)
lo, hi = con.execute("SELECT min(id), max(id) FROM events").fetchone()
ids = rng.sample(range(lo, hi + 1), int((hi - lo + 1) * percent / 100))
words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()
changed = 0
con.execute("BEGIN")
for i in ids:
    tl, ml, pl, al = con.execute("SELECT length(token), length(message), length(payload), length(attachment) FROM events WHERE id = ?", (i,)).fetchone()
    msg = " ".join(rng.choices(words, k=ml // 4 + 1))[:ml].ljust(ml)
    payload = ('{"v":3,"trace":"' + rng.randbytes(pl).hex())[:pl - 2] + '"}'
    con.execute("UPDATE events SET token = ?, message = ?, payload = ?, attachment = ? WHERE id = ?",
                (rng.randbytes(tl).hex()[:tl], msg, payload, rng.randbytes(al), i))
    changed += tl + ml + pl + al
con.execute("COMMIT")
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
page = con.execute("PRAGMA page_size").fetchone()[0]
con.close()
pages = 0
with open(before, "rb") as a, open(path, "rb") as b:
    while True:
        x, y = a.read(page << 8), b.read(page << 8)
        if not x and not y:
            break
        if x != y:
            for o in range(0, max(len(x), len(y)), page):
                pages += x[o:o + page] != y[o:o + page]
print(len(ids), changed, pages * page)
PY
    rm -f "$OUT/before.db"
}

# change_tree: a small change, as a day in a project directory: 20 small files rewritten,
# 1 MiB appended to a large log, a new 512 KiB file, one small file deleted; prints the
# bytes written.
change_tree() {
    python3 - "$TREE" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
small = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "small")) for f in fs)
changed = 0
for p in rng.sample(small, 21)[:20]:
    n = os.path.getsize(p)
    with open(p, "wb") as f:
        f.write(("edited line %d\n" % rng.randint(0, 10**9)).encode() * (n // 20 + 1))
        f.truncate(n)
    changed += n
os.remove(small[-1])
with open(os.path.join(root, "large", "app.log"), "ab") as f:
    f.write(b"".join(b"%d request served in %d ms\n" % (i, rng.randint(1, 999)) for i in range(40000))[:1 << 20])
changed += 1 << 20
with open(os.path.join(root, "medium", "m0", "new.dat"), "wb") as f:
    f.write(rng.randbytes(512 << 10))
changed += 512 << 10
print(changed)
PY
}

SMALL_BYTES=0
((SMALL_FILES)) && SMALL_BYTES=$(du -sb "$SMALL" | cut -f1)
DB_BYTES=$(stat -c %s "$DB")
DB_ROWS=0
((WITH_DB)) && DB_ROWS=$(sqlite3 "$DB" 'SELECT count(*) FROM events')
TREE_BYTES=0 TREE_FILES=0
if ((WITH_DIR)); then
    TREE_BYTES=$(du -sb "$TREE" | cut -f1)
    TREE_FILES=$(find "$TREE" -type f | wc -l)
fi

U1_ROWS=0 U1_BYTES=0 U1_PAGES=0 U10_ROWS=0 U10_BYTES=0 U10_PAGES=0
if ((WITH_DB)); then
    backup_all "DB first backup" db
    log "updating 1 % of the rows"
    read -r U1_ROWS U1_BYTES U1_PAGES < <(update_rows 1 101)
    [[ -n ${U1_PAGES:-} ]] || die "the 1 % update failed"
    backup_all "DB re-backup, 1 % rows changed" db
    log "updating 10 % of the rows"
    read -r U10_ROWS U10_BYTES U10_PAGES < <(update_rows 10 110)
    [[ -n ${U10_PAGES:-} ]] || die "the 10 % update failed"
    backup_all "DB re-backup, 10 % rows changed" db
    restore_all "DB restore" db
fi

DIR_CHANGED=0
# One file back: the 512 KiB file the change made, alone.
ONE=medium/m0/new.dat
if ((WITH_DIR)); then
    backup_all "dir first backup" dir
    log "changing the directory a little"
    DIR_CHANGED=$(change_tree)
    backup_all "dir re-backup, small change" dir
    restore_all "dir restore" dir
    if ((WITH_REPO)); then
        measure "dir partial restore, one file" "$T_REPO" - -- "${LBC[@]}" restore dir-vault --path "$ONE" --to "$OUT/restore/vault-one" --yes
    fi
    measure "dir partial restore, one file" "$T_RESTIC" - -- restic restore latest --tag dir --target "$OUT/restore/restic-one" --include "$TREE/$ONE" -q
    measure "dir partial restore, one file" "$T_FULL" - -- "${LBC[@]}" restore dir-full --path "$ONE" --to "$OUT/restore/full-one" --yes
fi
if ((SMALL_FILES)); then
    backup_all "small files first backup" small
    log "changing one small file"
    echo "one more line" >>"$SMALL/d0000/f000.txt"
    backup_all "small files re-backup, one file changed" small
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- checks of the restored copies (not timed) ---------------------------------------------
CHECKS=()
db_facts() { sqlite3 "$1" 'PRAGMA quick_check; SELECT count(*), sum(length(message) + length(attachment)), max(ts) FROM events;' 2>&1 | tr '\n' ' '; }
WANT_DB=
((WITH_DB)) && WANT_DB=$(db_facts "$DB")
check_db() {
    local got
    got=$(db_facts "$2")
    if [[ $got == "$WANT_DB" ]]; then CHECKS+=("$1: ok ($got)"); else CHECKS+=("$1: MISMATCH (source $WANT_DB, restored $got)"); fi
}
if ((WITH_DB)); then
    ((WITH_REPO)) && check_db "$T_REPO DB restore" "$OUT/restore/vault-db.sqlite"
    check_db "restic DB restore" "$OUT/restore/restic-db$COPY"
    check_db "$T_FULL DB restore" "$OUT/restore/full-db.sqlite"
fi
check_one() { # name restored-file
    if cmp -s "$TREE/$ONE" "$2"; then CHECKS+=("$1: ok"); else CHECKS+=("$1: MISMATCH ($2)"); fi
}
if ((WITH_DIR)); then
    ((WITH_REPO)) && check_one "$T_REPO one file" "$OUT/restore/vault-one/$ONE"
    check_one "restic one file" "$OUT/restore/restic-one$TREE/$ONE"
    check_one "$T_FULL one file" "$OUT/restore/full-one/$ONE"
    ((WITH_REPO)) && CHECKS+=("$T_REPO dir restore: $(bench_same_tree "$TREE" "$OUT/restore/vault-dir.d")")
    CHECKS+=("restic dir restore: $(bench_same_tree "$TREE" "$OUT/restore/restic-dir$TREE")")
    CHECKS+=("$T_FULL dir restore: $(bench_same_tree "$TREE" "$OUT/restore/full-dir.d")")
fi

# --- report ------------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN{printf "%.1f", b / 1048576}'; }
echo
echo "## Repository store benchmark"
echo
echo "- machine: $(bench_machine)"
echo "- load average (1/5/15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER (1-min load at each command's start in the logs: $RESULTS)"
echo "- tools: lifeboat $("$LB" --version | awk '{print $2}') ($([[ -n ${LIFEBOAT_BIN:-} ]] && echo "$LB" || echo release build) of $REVISION), $(restic version | awk '{print $1, $2}'), $(sqlite3 --version | awk '{print "sqlite3 " $1}')"
if ((WITH_DB)); then
    echo "- database: $(mib "$DB_BYTES") MiB, WAL mode, $DB_ROWS event rows (text + a 200–1800 byte random blob each)"
    echo "- 1 % update: $U1_ROWS rows, $(mib "$U1_BYTES") MiB of row content rewritten, $(mib "$U1_PAGES") MiB of pages differ"
    echo "- 10 % update: $U10_ROWS rows, $(mib "$U10_BYTES") MiB of row content rewritten, $(mib "$U10_PAGES") MiB of pages differ"
fi
((WITH_DIR)) && echo "- directory: $(mib "$TREE_BYTES") MiB, $TREE_FILES files; small change: $(mib "$DIR_CHANGED") MiB written (20 small files, 1 MiB appended, one new 512 KiB file, one file deleted)"
((SMALL_FILES)) && echo "- small files: $SMALL_FILES files in $((SMALL_FILES / 100)) folders, $(mib "$SMALL_BYTES") MiB"
echo "- page cache dropped before each command: $CACHE_DROP; one run, tools in the order shown"
echo
python3 - "$RESULTS" "$U1_BYTES" "$WITH_REPO" "$T_REPO" "$T_RESTIC" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
u1, with_repo, t_repo, t_restic = int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
res = {}
for step, tool, secs, kb, user, system, added, load, status in rows:
    res[(step, tool)] = dict(secs=float(secs or "nan"), mib=int(kb or 0) / 1024, cpu=float(user or 0) + float(system or 0),
                             added=None if added == "-" else int(added), ok=status == "ok")
def mb(b): return "-" if b is None else f"{b / 2**20:.1f}"
def ratio(a, b): return "-" if a is None or not b else f"{a / b:.2f}"
print("| step | tool | wall s | CPU s | peak RSS MiB | added MiB | wall ÷ restic | added ÷ restic |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for (step, tool), r in res.items():
    base = res.get((step, t_restic))
    wall = f"{r['secs']:.2f}" if r["ok"] else "FAILED"
    rw = ratio(r["secs"], base["secs"]) if base and tool != t_restic else ""
    ra = ratio(r["added"], base["added"]) if base and tool != t_restic and r["added"] is not None else ""
    print(f"| {step} | {tool} | {wall} | {r['cpu']:.2f} | {r['mib']:.0f} | {mb(r['added'])} | {rw} | {ra} |")
print()
print("CPU s = user + system; peak RSS = GNU time's %M (for restic's DB step, the larger of sqlite3 and restic);")
print("added = growth of the repository or store (du -sb); ratios lifeboat ÷ restic for the same step (< 1: lifeboat less).")
print()
print("Targets (lifeboat → repository against restic):")
if not with_repo:
    print("- not measured: this lifeboat has no repository store")
    sys.exit(0)
def get(step, tool): return res.get((step, tool))
def line(name, ok, detail): print(f"- {name}: {'met' if ok else 'MISSED'} ({detail})")
def not_slower(step, factor=1.0):
    a, b = get(step, t_repo), get(step, t_restic)
    if a and b:
        line(f"{step} ≤ {factor:g} × restic's time", a["ok"] and a["secs"] <= factor * b["secs"],
             f"{a['secs']:.2f} s vs {b['secs']:.2f} s, {a['secs'] / b['secs']:.2f}×")
for step in ["DB first backup", "dir first backup", "small files first backup",
             "dir re-backup, small change", "small files re-backup, one file changed"]:
    not_slower(step)
s1 = "DB re-backup, 1 % rows changed"
a, b = get(s1, t_repo), get(s1, t_restic)
if a and b:
    not_slower(s1)
    line("re-backup after 1 % adds ≤ 2 × the changed bytes", a["added"] <= 2 * u1,
         f"{mb(a['added'])} MiB added, 2 × {mb(u1)} MiB = {mb(2 * u1)} MiB; restic added {mb(b['added'])} MiB")
for step in ["dir re-backup, small change", "small files re-backup, one file changed"]:
    a, b = get(step, t_repo), get(step, t_restic)
    if a and b:
        line(f"{step} adds ≤ 1.5 × restic's bytes", a["added"] <= 1.5 * b["added"],
             f"{mb(a['added'])} MiB vs {mb(b['added'])} MiB")
for step in ["DB restore", "dir restore"]:
    not_slower(step)
a = get("dir partial restore, one file", t_repo)
if a:
    line("partial restore of one file < 1 s", a["ok"] and a["secs"] < 1.0, f"{a['secs']:.2f} s; restic {get('dir partial restore, one file', t_restic)['secs']:.2f} s")
for kind in ["dir", "small files"]:
    mine = [r["mib"] for (s, t), r in res.items() if t == t_repo and s.startswith(kind)]
    theirs = [r["mib"] for (s, t), r in res.items() if t == t_restic and s.startswith(kind)]
    if mine and theirs:
        line(f"{kind}: peak RSS ≤ restic's", max(mine) <= max(theirs), f"largest {max(mine):.0f} MiB vs restic's {max(theirs):.0f} MiB")
PY
echo
echo "Restore checks (not timed):"
for c in "${CHECKS[@]}"; do echo "- $c"; done
echo
echo "Total script time: $((SECONDS - START_SECONDS)) s. Logs: $OUT/logs"
if ((FAILED)); then
    echo "bench: $FAILED measured command(s) failed; see above" >&2
    exit 1
fi
