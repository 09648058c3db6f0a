"""bench/pitr.sh's helper: the writer, the replica-file watcher and the analysis, as subcommands."""
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
