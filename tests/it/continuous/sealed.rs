//! Continuous replication into a repository store, on a local path and in S3 (moto's and rclone's servers): the
//! segments and records sealed with the repository's key in `lifeboat/` beside restic's
//! folders, while a real application writes. A restore to a middle moment has exactly
//! the rows committed by then; a marker the application wrote is in no file of the
//! repository in plaintext (nor in anything that decompresses as zstd); a flipped byte
//! in a sealed segment fails verify and restore naming the object, changing nothing; a
//! wrong password is refused; the real restic's `check --read-data` and `prune` pass and
//! leave `lifeboat/` as it was.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::chain::texts;
use super::*;
use crate::common::moto::{S3Kind, S3Server};
use crate::common::vault::Vault;

impl Lifeboat for Vault {
    fn cmd(&self, args: &[&str]) -> Command {
        self.command(args)
    }
}

/// Where a repository's bytes are, for looking at them behind lifeboat's back.
trait RepositoryBytes {
    /// Every file (object) of the repository, by its path under the location.
    fn files(&self) -> BTreeMap<String, Vec<u8>>;
    fn put(&self, rel: &str, bytes: &[u8]);
}

struct OnDisk(PathBuf);

impl RepositoryBytes for OnDisk {
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut todo = vec![self.0.clone()];
        while let Some(dir) = todo.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    let rel = p
                        .strip_prefix(&self.0)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    fn put(&self, rel: &str, bytes: &[u8]) {
        std::fs::write(self.0.join(rel), bytes).unwrap();
    }
}

struct InBucket<'a> {
    server: &'a S3Server,
    bucket: &'static str,
    prefix: &'static str,
}

impl RepositoryBytes for InBucket<'_> {
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let c = self.server.client();
        self.server.rt.block_on(async {
            let mut out = BTreeMap::new();
            let mut token = None;
            loop {
                let page = c
                    .list_objects_v2()
                    .bucket(self.bucket)
                    .set_continuation_token(token)
                    .send()
                    .await
                    .unwrap();
                for o in page.contents() {
                    let key = o.key().unwrap();
                    let body = c.get_object().bucket(self.bucket).key(key).send().await;
                    let bytes = body.unwrap().body.collect().await.unwrap().into_bytes();
                    let rel = key.strip_prefix(self.prefix).unwrap_or_else(|| {
                        panic!("{key}: an object outside the repository's prefix")
                    });
                    out.insert(rel.to_string(), bytes.to_vec());
                }
                token = page.next_continuation_token().map(str::to_string);
                if token.is_none() {
                    return out;
                }
            }
        })
    }

    fn put(&self, rel: &str, bytes: &[u8]) {
        let c = self.server.client();
        let key = format!("{}{rel}", self.prefix);
        self.server
            .rt
            .block_on(
                c.put_object()
                    .bucket(self.bucket)
                    .key(key)
                    .body(bytes.to_vec().into())
                    .send(),
            )
            .unwrap();
    }
}

const MARKER: &str = "sealed-marker-7f3c9e1ab04d5562-never-in-plaintext";

/// Whether `bytes` hold the marker as they are, or once decompressed when they are zstd.
fn shows_marker(bytes: &[u8]) -> bool {
    let plain = |b: &[u8]| b.windows(MARKER.len()).any(|w| w == MARKER.as_bytes());
    plain(bytes)
        || (bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
            && zstd::decode_all(bytes).is_ok_and(|d| plain(&d)))
}

/// The marker committed by another process, in a table of its own; when it committed.
fn write_marker(db: &Path) -> f64 {
    let script = format!(
        "import sqlite3, time; c = sqlite3.connect({db:?}, isolation_level=None); c.execute('CREATE TABLE IF NOT EXISTS secret(v TEXT)'); c.execute('INSERT INTO secret VALUES (?)', ({MARKER:?} * 40,)); print(time.time()); c.close()",
        db = db.display().to_string()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().parse().unwrap()
}

fn digests(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(k, v)| (k.clone(), hex::encode(Sha256::digest(v))))
        .collect()
}

fn under_lifeboat(files: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    files
        .iter()
        .filter(|(k, _)| k.starts_with("lifeboat/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The whole story on one repository store `vault` holding the continuous target `app`.
fn sealed_replication(v: &Vault, repo: &dyn RepositoryBytes) {
    let db = v.path("data/app.db");
    create_db(&db, true);
    let mut rep = Replicator::start(v.command(&["replicate", "app"]));
    rep.wait_for("replicating app every 200ms");
    let log = v.path("data/commits.log");
    finish(writer(&db, 1500, &log, &[]));
    let marked = write_marker(&db);
    let rows = commits(&log);
    v.wait_replicated_past(marked);
    rep.wait_for("compacted");

    // A moment in the middle: exactly the rows committed by then, from the repository's
    // base snapshot and the sealed segments.
    let at = (rows[899].committed + rows[900].began) / 2.0;
    let middle = v.path("restores/middle.db");
    let plan = v.restore_at(&rfc3339(at), &middle);
    assert_exactly_by(&restored_ids(&middle), &rows, at, slack());
    // The base copy the generation record names is the repository's own snapshot.
    let base = plan["backup"]["id"].as_str().unwrap().to_string();
    let snapshots = v.restic_ok(&["snapshots", "--json"]);
    assert!(
        snapshots.contains(&format!("id={base}")),
        "{base}: {snapshots}"
    );
    assert!(rep.stop().success());
    let newest = v.status()["replicated_to"].as_str().unwrap().to_string();
    let all = v.path("restores/all.db");
    v.restore_at(&newest, &all);
    assert_eq!(restored_ids(&all).len(), rows.len());

    // The marker is in the restored database, and the scan finds it there, also
    // compressed; in the repository it is nowhere, and lifeboat's objects are all sealed.
    let restored = std::fs::read(&all).unwrap();
    assert!(shows_marker(&restored) && shows_marker(&zstd::encode_all(&restored[..], 3).unwrap()));
    let files = repo.files();
    let mine: Vec<&String> = files
        .keys()
        .filter(|k| k.starts_with("lifeboat/"))
        .collect();
    assert!(
        mine.iter()
            .any(|k| k.starts_with("lifeboat/app.wal/") && k.ends_with("-m.seg.zst")),
        "merged segments beside the repository: {mine:?}"
    );
    assert!(
        mine.iter().any(|k| k.ends_with("/generation.json")),
        "{mine:?}"
    );
    assert!(files.contains_key("config") && files.keys().any(|k| k.starts_with("data/")));
    let showing: Vec<&String> = files
        .iter()
        .filter(|(_, bytes)| shows_marker(bytes))
        .map(|(name, _)| name)
        .collect();
    assert!(showing.is_empty(), "the marker in plaintext in {showing:?}");
    for (name, bytes) in files.iter().filter(|(k, _)| k.starts_with("lifeboat/")) {
        assert!(bytes.starts_with(b"lbseal01"), "{name} is not sealed");
    }
    eprintln!(
        "{} files in the repository, {} of them lifeboat's sealed objects",
        files.len(),
        mine.len()
    );

    // The real restic (and lifeboat's own store check): the repository checks whole with
    // every pack read, a prune passes, and neither touches lifeboat's objects; replication's
    // history still proves whole.
    let before = digests(&files);
    v.restic_ok(&["check", "--read-data"]);
    v.ok(&["store", "check", "vault", "--read-data"]);
    v.restic_ok(&["prune"]);
    let after = digests(&repo.files());
    assert_eq!(under_lifeboat(&before), under_lifeboat(&after));
    let (ok, report) = super::chain::verify_with(|a| v.run(a));
    assert!(ok, "{report}");
    let proved = texts(&report["chain"]["proved"]);
    assert!(
        proved.contains("with no gap") && proved.contains("integrity_check ok"),
        "{proved}"
    );

    // A wrong password: refused, saying so, and nothing written or restored.
    let before = digests(&repo.files());
    let wrong = v.path("restores/wrong.db");
    let out = v
        .command(&[
            "restore",
            "app",
            "--at",
            &newest,
            "--to",
            wrong.to_str().unwrap(),
            "--yes",
        ])
        .env("LIFEBOAT_REPO_PASSWORD", "not the password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the password does not open"),
        "{}",
        stderr(&out)
    );
    let out = v
        .command(&["replicate", "app"])
        .env("LIFEBOAT_REPO_PASSWORD", "not the password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the password does not open"),
        "{}",
        stderr(&out)
    );
    assert!(!wrong.exists());
    assert_eq!(digests(&repo.files()), before);

    // One flipped byte in the middle of a sealed segment: verify and restore fail naming
    // it, and change nothing.
    let segments: Vec<String> = before
        .keys()
        .filter(|k| k.starts_with("lifeboat/app.wal/") && k.ends_with(".seg.zst"))
        .cloned()
        .collect();
    let victim = segments[segments.len() / 2].clone();
    let key = victim.strip_prefix("lifeboat/").unwrap();
    let kept = repo.files()[&victim].clone();
    let mut bad = kept.clone();
    bad[kept.len() / 2] ^= 0x20;
    repo.put(&victim, &bad);
    let damaged = digests(&repo.files());
    let (ok, report) = super::chain::verify_with(|a| v.run(a));
    assert!(!ok, "{report}");
    let problems = texts(&report["problems"]);
    assert!(
        problems.contains(&format!("segment {key} (")) && problems.contains("is damaged"),
        "{problems}"
    );
    let flipped = v.path("restores/flipped.db");
    let out = v.run(&[
        "restore",
        "app",
        "--at",
        &newest,
        "--to",
        flipped.to_str().unwrap(),
        "--yes",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(key) && stderr(&out).contains("damaged"),
        "{}",
        stderr(&out)
    );
    assert!(!flipped.exists());
    assert_eq!(
        digests(&repo.files()),
        damaged,
        "nothing in the repository changed"
    );
    repo.put(&victim, &kept);
    assert!(super::chain::verify_with(|a| v.run(a)).0, "whole again");
}

fn config() -> String {
    format!("{}continuous_compact = \"1s\"\n", target("vault"))
}

#[test]
fn replication_into_a_local_repository_is_sealed_and_restores_a_moment() {
    let v = Vault::local(&config());
    let repo = OnDisk(PathBuf::from(&v.location));
    sealed_replication(&v, &repo);
}

fn on_s3(kind: S3Kind) {
    let server = S3Server::on(kind);
    server.create_bucket("vaults", false);
    let location = format!("s3:{}/vaults/vault", server.url());
    let v = Vault::with(Home::new(), location, &config(), true);
    let repo = InBucket {
        server: &server,
        bucket: "vaults",
        prefix: "vault/",
    };
    sealed_replication(&v, &repo);
}

#[test]
fn replication_into_a_repository_on_s3_is_sealed_and_restores_a_moment() {
    on_s3(S3Kind::Moto);
}

#[test]
fn replication_into_a_repository_on_rclones_s3_is_sealed_and_restores_a_moment() {
    on_s3(S3Kind::Rclone);
}

#[test]
fn a_192_mib_transaction_is_sealed_in_bounded_memory() {
    use super::faults::{one_192_mib_transaction, peak_rss_mib};
    let v = Vault::local(&target("vault"));
    let db = v.path("data/app.db");
    create_db(&db, true);
    let mut rep = Replicator::start(v.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    // After the start: the key derivation and the base snapshot are behind it.
    let idle = peak_rss_mib(rep.child.id());
    let committed = one_192_mib_transaction(&db);
    let status = v.wait_replicated_past(committed);
    let peak = peak_rss_mib(rep.child.id());
    let sealed: u64 = OnDisk(PathBuf::from(&v.location))
        .files()
        .iter()
        .filter(|(k, _)| k.ends_with(".seg.zst"))
        .map(|(_, b)| b.len() as u64)
        .sum();
    eprintln!(
        "a 192 MiB transaction sealed into {:.0} MiB of segments: peak RSS {peak:.1} MiB, {idle:.1} MiB before",
        sealed as f64 / 1048576.0
    );
    // Rows of hex text of random bytes: zstd halves them, no more.
    assert!(
        sealed > 90 << 20,
        "the segments hold the transaction: {sealed}"
    );
    assert!(
        peak - idle < 32.0,
        "the replicator grew by {} MiB sealing a 192 MiB transaction",
        peak - idle
    );
    assert!(rep.stop().success());
    let all = v.path("restores/all.db");
    v.restore_at(status["replicated_to"].as_str().unwrap(), &all);
    assert_eq!(restored_ids(&all), (1..=192).collect::<Vec<i64>>());
}

/// The generation folders holding objects under the local repository's
/// `lifeboat/app.wal/` (their names are generation ids, readable without the key),
/// oldest first.
fn generations(v: &Vault) -> Vec<String> {
    let dir = PathBuf::from(&v.location).join("lifeboat/app.wal");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_dir(e.path()).is_ok_and(|mut files| files.next().is_some())
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn a_new_generation_a_drill_and_history_past_its_end_through_a_repository_store() {
    let config = format!(
        "{}continuous_history = \"1h\"\ncontinuous_compact = \"1s\"\n[targets.app.retention]\nlast = 1\n",
        target("vault")
    );
    let v = Vault::local(&config);
    let db = v.path("data/app.db");
    create_db(&db, true);
    let mut rep = Replicator::start(v.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let log = v.path("data/commits.log");
    finish(writer(&db, 300, &log, &["noauto"]));
    let before = commits(&log);
    v.wait_replicated_past(before.last().unwrap().committed);
    rep.kill();
    // Nothing of the first generation is shipped after this.
    let killed = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    // The log truncated while no replicator runs: the next one starts a new generation,
    // reading the sealed position and generation records to find out.
    finish(writer(&db, 100, &log, &["noauto", "truncate=400"]));
    let mut rep = Replicator::start(v.command(&["replicate", "app"]));
    rep.wait_for("new replication generation");
    let rows = commits(&log);
    v.wait_replicated_past(rows.last().unwrap().committed);
    assert!(rep.stop().success());
    let gens = generations(&v);
    assert_eq!(gens.len(), 2, "{gens:?}");

    // A drill restores the newest moment from the repository's snapshot and the
    // sealed segments.
    let out = v.run(&["drill", "app", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    assert!(
        out.status.success() && report["restore_ok"] == true,
        "{report}"
    );

    // Within continuous_history, prune keeps the first base copy (a snapshot).
    let out = v.ok(&["prune", "app"]);
    assert!(out.contains("base of kept continuous history"), "{out}");
    let in_first = (before[149].committed + before[150].began) / 2.0;
    let copy = v.path("restores/first.db");
    v.restore_at(&rfc3339(in_first), &copy);
    assert_exactly_by(&restored_ids(&copy), &rows, in_first, slack());

    // Past it, the first generation goes whole: its sealed objects and its snapshot.
    super::history::set_config(
        &v.home,
        "continuous_history = \"1h\"",
        "continuous_history = \"2s\"",
    );
    while (chrono::Utc::now().timestamp_micros() as f64 / 1e6) < killed + 2.5 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = v.ok(&["prune", "app"]);
    assert!(
        out.contains("removed shipped history of generation"),
        "{out}"
    );
    assert_eq!(generations(&v), gens[1..], "{out}");
    assert_eq!(v.ok(&["list", "app"]).lines().count() - 1, 1, "{out}");
    let refused = v.run(&[
        "restore",
        "app",
        "--at",
        &rfc3339(in_first),
        "--to",
        "/tmp/never",
    ]);
    assert!(
        stderr(&refused).contains("past the kept history"),
        "{}",
        stderr(&refused)
    );
    let newest = v.status()["replicated_to"].as_str().unwrap().to_string();
    let all = v.path("restores/all.db");
    v.restore_at(&newest, &all);
    assert_eq!(restored_ids(&all), (1..=400).collect::<Vec<i64>>());
    // The repository after lifeboat's own prune, checked by restic with every pack read.
    v.restic_ok(&["check", "--read-data"]);
}
