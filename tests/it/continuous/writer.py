# A real application writing to a SQLite database in WAL mode: numbered rows, one per
# transaction, each line of the log "id began committed" (Unix seconds) written after the
# commit returned. Options: noauto (no automatic checkpoints), gate=<row>:<file> (before
# that row, wait for the file to exist), truncate=<row> (after that row, run
# PRAGMA wal_checkpoint(TRUNCATE) and log its result as "# truncate busy log done"),
# noclose (end without closing the connection, as an application that is still running
# would: a last connection's close checkpoints and removes the log).
import os, sqlite3, sys, time

db, count, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
opts = dict(o.split("=", 1) if "=" in o else (o, "") for o in sys.argv[4:])
conn = sqlite3.connect(db, isolation_level=None, timeout=60)
if "noauto" in opts:
    conn.execute("PRAGMA wal_autocheckpoint=0")
gate_row, gate_file = (opts["gate"].split(":", 1) if "gate" in opts else ("-1", ""))
gate_row = int(gate_row)
truncate = int(opts.get("truncate", "-1"))
first = conn.execute("SELECT coalesce(max(id), 0) FROM t").fetchone()[0] + 1
with open(log, "a") as out:
    for row in range(first, first + count):
        if row == gate_row:
            while not os.path.exists(gate_file):
                time.sleep(0.005)
        began = time.time()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t(id, v) VALUES (?, ?)", (row, os.urandom(150).hex()))
        conn.execute("COMMIT")
        out.write(f"{row} {began:.6f} {time.time():.6f}\n")
        out.flush()
        if row == truncate:
            busy, wal, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            out.write(f"# truncate {busy} {wal} {done}\n")
            out.flush()
        time.sleep(0.002)
if "noclose" in opts:
    os._exit(0)
conn.close()
