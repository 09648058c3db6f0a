"""An application writing to a DuckDB database the way seed 001's analytics app does:
batches of rows committed one after another, with a CHECKPOINT every few batches (the
moment DuckDB folds its `.wal` into the `.duckdb` file). Driven by the tests over stdin,
one command a line, each answered with one line on stdout:

  checkpoint   commit one more batch, CHECKPOINT, answer "ok <rows>"
  pause        CHECKPOINT, stop writing, answer "ok <rows>" (the files are quiet now)
  resume       start writing again, answer "ok <rows>"
  wait <n>     answer "ok <rows>" once at least n rows are committed
  stop         close the database and exit, answer "ok <rows>"

Every batch also updates a one-row `tally` (rows, sum of ids) in the same transaction,
so a copy whose contents are consistent has `tally` equal to what `events` holds.

  duckdb_writer.py write <db> [--checkpoint-every N]   the writer (prints "ready <rows>")
  duckdb_writer.py check <db>                          open a copy, print "ok <rows>" or fail
  duckdb_writer.py parquet <file> <rows>               write a parquet extract
"""

import select
import sys

import duckdb

BATCH = 200


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def rows(con):
    return con.execute("SELECT n FROM tally").fetchone()[0]


def write_batch(con):
    con.execute("BEGIN TRANSACTION")
    start = con.execute("SELECT n FROM tally").fetchone()[0]
    con.execute(
        "INSERT INTO events SELECT i, 'event ' || i || repeat('x', 64) FROM range(?, ?) t(i)",
        [start, start + BATCH],
    )
    con.execute(
        "UPDATE tally SET n = n + ?, total = total + (SELECT sum(i) FROM range(?, ?) t(i))",
        [BATCH, start, start + BATCH],
    )
    con.execute("COMMIT")


def write(db, checkpoint_every):
    con = duckdb.connect(db)
    # The app's own rhythm decides when DuckDB checkpoints, not the WAL's size.
    con.execute("SET checkpoint_threshold = '1GB'")
    con.execute("CREATE TABLE IF NOT EXISTS events (id BIGINT PRIMARY KEY, payload VARCHAR)")
    con.execute("CREATE TABLE IF NOT EXISTS tally (n BIGINT, total HUGEINT)")
    if con.execute("SELECT count(*) FROM tally").fetchone()[0] == 0:
        con.execute("INSERT INTO tally VALUES (0, 0)")
    write_batch(con)
    con.execute("CHECKPOINT")
    say(f"ready {rows(con)}")
    paused = False
    waiting = None  # (rows wanted) for a pending "wait"
    batches = 0
    while True:
        # Writing: only look at commands between batches; paused: block on them.
        ready, _, _ = select.select([sys.stdin], [], [], None if paused else 0)
        if ready:
            line = sys.stdin.readline()
            if not line:
                return  # the test went away
            word, *args = line.split()
            if word == "checkpoint":
                write_batch(con)
                con.execute("CHECKPOINT")
                say(f"ok {rows(con)}")
            elif word == "pause":
                con.execute("CHECKPOINT")
                paused = True
                say(f"ok {rows(con)}")
            elif word == "resume":
                paused = False
                say(f"ok {rows(con)}")
            elif word == "wait":
                waiting = int(args[0])
            elif word == "stop":
                n = rows(con)
                con.close()
                say(f"ok {n}")
                return
            else:
                say(f"error unknown command {word!r}")
        if waiting is not None and rows(con) >= waiting:
            say(f"ok {rows(con)}")
            waiting = None
        if not paused:
            write_batch(con)
            batches += 1
            if checkpoint_every and batches % checkpoint_every == 0:
                con.execute("CHECKPOINT")


def check(db):
    """Open a restored copy (replaying its WAL as DuckDB does) and compare the tally."""
    try:
        con = duckdb.connect(db)
        n, total = con.execute("SELECT n, total FROM tally").fetchone()
        count, ids = con.execute("SELECT count(*), coalesce(sum(id), 0) FROM events").fetchone()
        con.close()
    except Exception as e:  # DuckDB refusing the copy is the finding, not a crash
        say(f"unusable: {e}")
        return 1
    if (n, total) != (count, ids):
        say(f"inconsistent: tally says {n} rows (sum {total}), events holds {count} (sum {ids})")
        return 1
    say(f"ok {n}")
    return 0


def parquet(path, n):
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT i AS id, 'extract ' || i AS name FROM range({int(n)}) t(i)) TO '{path}' (FORMAT parquet)"
    )
    say("ok")


def main():
    mode = sys.argv[1]
    if mode == "write":
        every = 0
        if "--checkpoint-every" in sys.argv:
            every = int(sys.argv[sys.argv.index("--checkpoint-every") + 1])
        write(sys.argv[2], every)
    elif mode == "check":
        sys.exit(check(sys.argv[2]))
    elif mode == "parquet":
        parquet(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
