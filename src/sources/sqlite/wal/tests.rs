//! The WAL as SQLite writes it: headers, commits and checksums read back, a damaged
//! frame ends the valid log there.

use super::*;
use rusqlite::Connection;

fn wal_db(dir: &std::path::Path, transactions: usize) -> (Connection, std::path::PathBuf) {
    let path = dir.join("w.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x);")
        .unwrap();
    for i in 0..transactions {
        conn.execute("INSERT INTO t VALUES (?1)", [i as i64])
            .unwrap();
    }
    (conn, path)
}

#[test]
fn every_commit_of_a_live_log_is_found_and_checks_out() {
    let dir = tempfile::tempdir().unwrap();
    let (_conn, path) = wal_db(dir.path(), 5);
    let file = File::open(wal_path(&path)).unwrap();
    let header = read_header(&file).unwrap().expect("a header");
    assert_eq!(header.page_size, 4096);
    let found = scan(&file, Cursor::start(header), u64::MAX).unwrap();
    // CREATE TABLE and five inserts.
    assert_eq!(found.transactions, 6);
    assert_eq!(found.db_pages, 2);
    // Scanning on from the end finds nothing more.
    let again = scan(&file, found.committed, u64::MAX).unwrap();
    // A limit stops the scan before the frames past it.
    let two = scan(&file, Cursor::start(header), 2).unwrap();
    assert_eq!(two.committed.frames, 2);
    assert_eq!(again.transactions, 0);
    assert_eq!(again.committed, found.committed);
}

#[test]
fn a_damaged_frame_ends_the_valid_log_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (conn, path) = wal_db(dir.path(), 3);
    drop(conn);
    // Closing checkpoints and removes the log: write it again without closing.
    let (conn, path) = {
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
        for i in 0..4 {
            c.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        (c, path)
    };
    let wal = wal_path(&path);
    let file = File::open(&wal).unwrap();
    let header = read_header(&file).unwrap().unwrap();
    let whole = scan(&file, Cursor::start(header), u64::MAX).unwrap();
    assert_eq!(whole.transactions, 4);
    // Flip a byte in the third frame's page: only the first two commits stay valid.
    let bytes = std::fs::read(&wal).unwrap();
    let mut damaged = bytes.clone();
    let at = header.frame_offset(2) + FRAME_HEADER_BYTES + 100;
    damaged[at as usize] ^= 0xff;
    let copy = dir.path().join("damaged-wal");
    std::fs::write(&copy, &damaged).unwrap();
    let found = scan(&File::open(&copy).unwrap(), Cursor::start(header), u64::MAX).unwrap();
    assert_eq!(found.transactions, 2);
    assert_eq!(found.committed.frames, 2);
    drop(conn);
}

#[test]
fn a_header_that_does_not_check_out_is_no_header() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(read_header(&File::open(&empty).unwrap()).unwrap(), None);
    let (_conn, path) = wal_db(dir.path(), 1);
    let mut bytes = std::fs::read(wal_path(&path)).unwrap();
    bytes[17] ^= 1; // a salt byte: the header checksum no longer matches
    let bad = dir.path().join("bad");
    std::fs::write(&bad, &bytes[..32]).unwrap();
    assert_eq!(read_header(&File::open(&bad).unwrap()).unwrap(), None);
}
