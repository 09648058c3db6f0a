//! One file back: `ls` and `diff` from the manifests, partial restores (`--path`, chat
//! `/restore ... path ...`) from a local store, an S3 bucket (moto) and a restic-format
//! repository, with the refusals (paths not in the backup, `..`, absolute paths, an
//! existing `--to`, a destination outside `restore_roots`, kinds without paths, a file
//! whose stored bytes differ from the manifest), approvals from chat like any restore,
//! and `/backup ls` paged. Over SSH: `ssh_targets::directory`.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use crate::common::fakes::*;
use crate::common::vault::Vault;
use crate::common::*;
use serde_json::Value;

const ADMIN1: &str = "U0ADMIN1";
const ADMIN2: &str = "U0ADMIN2";
const OPS: &str = "U0OPS1";
const VIEWER: &str = "U0VIEW1";
const OPS_CHANNEL: &str = "C0OPS";

const TARGET: &str = "[targets.site]\nkind = \"directory\"\npath = \"../data/site\"\n\
                      restore_roots = [\"../restores\"]\n";

/// A site tree: a file with a space in its name, a folder with a subfolder, a link, and
/// a bigger file the partial restores must leave out.
fn make_site(root: &Path) {
    fs::create_dir_all(root.join("docs/sub")).unwrap();
    fs::write(root.join("a b.txt"), b"hello with a space\n").unwrap();
    fs::write(root.join("docs/x.md"), b"# x\n").unwrap();
    fs::write(root.join("docs/sub/y.bin"), vec![9u8; 5000]).unwrap();
    fs::set_permissions(
        root.join("docs/sub/y.bin"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    symlink("x.md", root.join("docs/latest.md")).unwrap();
    fs::write(root.join("big.bin"), vec![1u8; 200_000]).unwrap();
}

fn local_home(extra: &str) -> Home {
    let home = Home::new();
    home.write_config(&format!("{TARGET}store = \"local\"\n{extra}"));
    make_site(&home.path("data/site"));
    home
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// Every file under `root`, relative, sorted.
fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn ls_shows_a_folder_of_a_backup_and_diff_what_changed_between_two() {
    let home = local_home("");
    let first = id(&home.json(&["backup", "site"]));
    let site = home.path("data/site");
    fs::write(site.join("a b.txt"), b"changed, and longer than before\n").unwrap();
    fs::remove_file(site.join("docs/x.md")).unwrap();
    fs::write(site.join("new.txt"), b"new\n").unwrap();
    let second = id(&home.json(&["backup", "site"]));

    // The root of the newest backup, folders with what they hold.
    let root = home.json(&["ls", "site"]);
    assert_eq!(root["backup"], second.as_str());
    assert_eq!(root["path"], "");
    let entries = root["entries"].as_array().unwrap();
    let paths: Vec<&str> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a b.txt", "big.bin", "docs", "new.txt"]);
    let docs = &entries[2];
    assert_eq!(docs["type"], "dir");
    assert_eq!(
        (docs["files"].as_u64(), docs["size"].as_u64()),
        (Some(1), Some(5000))
    );
    assert_eq!(entries[1]["size"], 200_000);
    assert_eq!(entries[1]["type"], "file");
    assert!(entries[1]["mode"].as_u64().is_some());

    // A folder of the first backup, by id; the text form names its entries.
    let docs = home.json(&["ls", "site", "docs", "--backup", &first]);
    let paths: Vec<&str> = docs["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["docs/latest.md", "docs/sub", "docs/x.md"]);
    let link = &docs["entries"][0];
    assert_eq!(
        (link["type"].as_str(), link["link"].as_str()),
        (Some("symlink"), Some("x.md"))
    );
    let text = home.ok(&["ls", "site", "docs/sub"]);
    assert_contains_all(&text, &["docs/sub/y.bin", "4.9 KiB", &second]);

    // A path the backup does not hold is named, with where to look.
    let out = home.run(&["ls", "site", "docs/x.md"]);
    assert!(!out.status.success());
    assert_contains_all(
        &stderr(&out),
        &["\"docs/x.md\" is not in backup", "lifeboat ls site"],
    );

    // diff: added, removed and changed paths with their sizes.
    let d = home.json(&["diff", "site", &first, "latest"]);
    assert_eq!(
        (d["from"].as_str(), d["to"].as_str()),
        (Some(first.as_str()), Some(second.as_str()))
    );
    assert_eq!(
        d["added"],
        serde_json::json!([{"path": "new.txt", "type": "file", "size_after": 4}])
    );
    assert_eq!(
        d["removed"],
        serde_json::json!([{"path": "docs/x.md", "type": "file", "size_before": 4}])
    );
    assert_eq!(
        d["changed"],
        serde_json::json!([{"path": "a b.txt", "type": "file", "size_before": 19,
            "size_after": 32, "what": ["content"]}])
    );
    let text = home.ok(&["diff", "site", &first, &second]);
    assert_contains_all(
        &text,
        &[
            "1 added, 1 removed, 1 changed",
            "+ new.txt",
            "- docs/x.md",
            "~ a b.txt  19 B -> 32 B",
        ],
    );
    let same = home.json(&["diff", "site", &second, &second]);
    assert!(
        same["added"].as_array().unwrap().is_empty()
            && same["changed"].as_array().unwrap().is_empty()
    );
}

#[test]
fn a_partial_restore_brings_back_one_file_and_one_folder_and_nothing_else() {
    let marker = tempfile::tempdir().unwrap();
    let hook_ran = marker.path().join("before_restore ran");
    let home = local_home(&format!(
        "[targets.site.hooks]\nbefore_restore = [[\"/bin/sh\", \"-c\", \"touch '{}'\"]]\n",
        hook_ran.display()
    ));
    home.json(&["backup", "site"]);
    // The live tree moves on; a partial restore must not touch it.
    let live = home.path("data/site/a b.txt");
    fs::write(&live, b"edited since\n").unwrap();

    let to = home.path("restores/back");
    let to_s = to.to_str().unwrap();
    let args = [
        "restore",
        "site",
        "--path",
        "a b.txt",
        "--path",
        "docs/sub/",
        "--to",
        to_s,
    ];
    let plan = home.ok(&args);
    assert_contains_all(
        &plan,
        &[
            "path:        a b.txt (file, 19 B)",
            "path:        docs/sub (folder, 1 file, 4.9 KiB)",
            "restores:    2 files",
            "Nothing was changed",
        ],
    );
    assert!(
        !plan.contains("hook:"),
        "a partial restore runs no restore hooks: {plan}"
    );
    assert!(!to.exists(), "a plan writes nothing");

    let mut yes = args.to_vec();
    yes.extend(["--yes"]);
    let done = home.json(&yes);
    assert_eq!(done["ok"], true);
    assert_eq!(files_under(&to), ["a b.txt", "docs/sub/y.bin"]);
    assert_eq!(
        fs::read(to.join("a b.txt")).unwrap(),
        b"hello with a space\n"
    );
    assert_eq!(
        fs::read(to.join("docs/sub/y.bin")).unwrap(),
        vec![9u8; 5000]
    );
    let mode = fs::metadata(to.join("docs/sub/y.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "modes are kept");
    assert_eq!(
        fs::read(&live).unwrap(),
        b"edited since\n",
        "the live tree is untouched"
    );
    assert!(
        !hook_ran.exists(),
        "before_restore is for in-place restores only"
    );
    let leftovers: Vec<String> = fs::read_dir(home.path("restores"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(leftovers, ["back"], "no staging left behind");
}

#[test]
fn partial_restores_refuse_bad_paths_and_destinations_and_write_nothing() {
    let home = local_home(
        "[targets.db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"local\"\nrestore_roots = [\"../restores\"]\n",
    );
    drop(make_app_db(&home.path("data/app.db"), 10));
    let backup = id(&home.json(&["backup", "site"]));
    home.json(&["backup", "db"]);
    let to = home.path("restores/new");
    let to_s = to.to_str().unwrap();
    let refused = |args: &[&str], needles: &[&str]| {
        let out = home.run(args);
        assert!(!out.status.success(), "{args:?} should be refused");
        assert_contains_all(&stderr(&out), needles);
    };
    refused(
        &[
            "restore", "site", "--path", "nope.txt", "--to", to_s, "--yes",
        ],
        &["\"nope.txt\" is not in backup", &backup, "lifeboat ls site"],
    );
    refused(
        &[
            "restore",
            "site",
            "--path",
            "docs/../../etc",
            "--to",
            to_s,
            "--yes",
        ],
        &["`..` is not allowed"],
    );
    refused(
        &[
            "restore",
            "site",
            "--path",
            "/etc/passwd",
            "--to",
            to_s,
            "--yes",
        ],
        &["absolute paths are not allowed"],
    );
    refused(
        &["restore", "site", "--path", "a b.txt", "--yes"],
        &["--to <dir>"],
    );
    fs::create_dir(home.path("restores/taken")).unwrap();
    refused(
        &[
            "restore",
            "site",
            "--path",
            "a b.txt",
            "--to",
            home.path("restores/taken").to_str().unwrap(),
            "--yes",
        ],
        &["already exists"],
    );
    let outside = tempfile::tempdir().unwrap();
    let outside_to = outside.path().join("x");
    refused(
        &[
            "restore",
            "site",
            "--path",
            "a b.txt",
            "--to",
            outside_to.to_str().unwrap(),
            "--yes",
        ],
        &["may only write under"],
    );
    refused(
        &["restore", "db", "--path", "x", "--to", to_s, "--yes"],
        &["db is a sqlite target", "directory targets"],
    );
    refused(&["ls", "db"], &["db is a sqlite target"]);
    assert!(!to.exists() && !outside_to.exists(), "nothing was written");
}

#[test]
fn a_partial_restore_reads_from_a_restic_format_repository() {
    let v = Vault::local(&format!("{TARGET}store = \"vault\"\n"));
    make_site(&v.path("data/site"));
    v.ok(&["store", "init", "vault"]);
    let first = id(&v.backup("site"));
    fs::write(v.path("data/site/docs/x.md"), b"# x, second edition\n").unwrap();
    v.backup("site");
    let to = v.path("restores/docs-then");
    v.ok(&[
        "restore",
        "site",
        &first,
        "--path",
        "docs",
        "--to",
        to.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(
        files_under(&to),
        ["docs/latest.md", "docs/sub/y.bin", "docs/x.md"]
    );
    assert_eq!(fs::read(to.join("docs/x.md")).unwrap(), b"# x\n");
    assert_eq!(
        fs::read_link(to.join("docs/latest.md")).unwrap(),
        Path::new("x.md")
    );
    // The first entry of the tree: the repository's reader is dropped mid-stream.
    let one = v.path("restores/one");
    v.ok(&[
        "restore",
        "site",
        "--path",
        "a b.txt",
        "--to",
        one.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(
        fs::read(one.join("a b.txt")).unwrap(),
        b"hello with a space\n"
    );
    let d = v.json(&["diff", "site", &first, "latest"]);
    assert_eq!(d["changed"][0]["path"], "docs/x.md");
    assert_eq!(d["changed"][0]["size_after"], 20);
}

fn chat_home(api: &FakeApi) -> Home {
    let home = Home::with_config(
        &ConfigBuilder::new()
            .admins(&["slack:U0ADMIN1", "slack:U0ADMIN2"])
            .operators(&["slack:U0OPS1"])
            .viewers(&["slack:U0VIEW1"])
            .channels(&["slack:C0OPS"])
            .slack(api, Some(OPS_CHANNEL))
            .directory_target("site", "../data/site")
            .with("restore_approvals = 1")
            .with("restore_roots = [\"../restores\"]"),
    );
    make_site(&home.path("data/site"));
    for i in 0..30 {
        fs::write(home.path(&format!("data/site/many-{i:02}.txt")), b"x").unwrap();
    }
    home
}

fn ack_text(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    v["text"].as_str().unwrap().to_string()
}

#[test]
fn chat_restores_a_quoted_path_after_approval_and_pages_backup_ls() {
    let api = FakeApi::start();
    let home = chat_home(&api);
    home.json(&["backup", "site"]);
    let serve = Serve::start(&home);

    // `/backup ls`: operators, one short page and the way to the rest.
    let (_, body) = slack_command(&serve, OPS, OPS_CHANNEL, "/backup", "ls site");
    let page = ack_text(&body);
    assert_contains_all(
        &page,
        &[
            "site: the top folder in backup",
            "33 entries",
            "… and 13 more",
            "lifeboat ls site",
        ],
    );
    assert!(page.lines().count() <= 23, "{page}");
    let (_, body) = slack_command(&serve, OPS, OPS_CHANNEL, "/backup", "ls site \"docs/sub\"");
    assert!(ack_text(&body).contains("docs/sub/y.bin"), "{body}");
    let (_, body) = slack_command(&serve, VIEWER, OPS_CHANNEL, "/backup", "ls site");
    assert!(
        ack_text(&body).contains("needs the operator role"),
        "{body}"
    );

    // A partial restore from chat waits for another admin, like any restore.
    let to = home.path("restores/from-chat");
    let text = format!("site latest path \"a b.txt\" to {}", to.display());
    let (_, body) = slack_command(&serve, ADMIN1, OPS_CHANNEL, "/restore", &text);
    assert!(ack_text(&body).contains("posted"), "{body}");
    let calls = api.wait_until(10, "the approval request", |c| {
        c.iter().any(|c| c.path.ends_with("chat.postMessage"))
    });
    let post = calls
        .iter()
        .find(|c| c.path.ends_with("chat.postMessage"))
        .unwrap();
    let plan = texts(std::slice::from_ref(post)).pop().unwrap();
    assert_contains_all(
        &plan,
        &["Paths: `a b.txt` (file, 19 B)", "Restores: 1 file, 19 B"],
    );
    let value = post.body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap()["elements"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    home.wait_approvals_posted(1);
    assert!(!to.exists(), "nothing before the approval");
    slack_click(
        &serve,
        ADMIN2,
        OPS_CHANNEL,
        "1700000000.001001",
        "approve",
        &value,
    );
    api.wait_update(30, "✅ restored");
    assert_eq!(files_under(&to), ["a b.txt"]);
    assert_eq!(
        fs::read(to.join("a b.txt")).unwrap(),
        b"hello with a space\n"
    );
}

/// From an S3 bucket (moto): the first entry of the tree comes back without the rest of
/// the backup being read (the download is dropped mid-stream), and a folder after it.
#[test]
fn a_partial_restore_reads_from_an_s3_bucket_and_stops_early() {
    use crate::common::moto::{S3Home, S3Kind, S3Server};
    let s3 = S3Server::on(S3Kind::Moto);
    s3.create_bucket("backups", false);
    let home = S3Home::new(
        &s3.url(),
        "backups",
        "",
        &format!("{TARGET}store = \"offsite\"\n"),
    );
    make_site(&home.path("data/site"));
    let backup = id(&home.json(&["backup", "site"]));
    let listing = home.json(&["ls", "site", "docs/sub"]);
    assert_eq!(listing["entries"][0]["path"], "docs/sub/y.bin");
    let first = home.path("restores/first");
    home.ok(&[
        "restore",
        "site",
        &backup,
        "--path",
        "a b.txt",
        "--to",
        first.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(files_under(&first), ["a b.txt"]);
    let docs = home.path("restores/docs");
    home.ok(&[
        "restore",
        "site",
        "latest",
        "--path",
        "docs",
        "--to",
        docs.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(
        files_under(&docs),
        ["docs/latest.md", "docs/sub/y.bin", "docs/x.md"]
    );
    assert_eq!(
        fs::read(docs.join("docs/sub/y.bin")).unwrap(),
        vec![9u8; 5000]
    );
}

/// A file whose bytes in the store differ from the manifest (re-compressed so the
/// archive still reads) is refused, and nothing is left at or beside `--to`.
#[test]
fn a_file_differing_from_its_manifest_is_refused_and_nothing_is_left() {
    let home = local_home("");
    let backup = id(&home.json(&["backup", "site"]));
    let artifact = home.path(&format!("backups/site/{backup}.tar.zst"));
    let tar = zstd::decode_all(&fs::read(&artifact).unwrap()[..]).unwrap();
    let original = b"hello with a space\n";
    let at = tar
        .windows(original.len())
        .position(|w| w == original)
        .expect("the file's bytes are in the archive");
    let mut tampered = tar.clone();
    tampered[at] = b'H';
    fs::write(&artifact, zstd::encode_all(&tampered[..], 3).unwrap()).unwrap();

    let to = home.path("restores/back");
    let out = home.run(&[
        "restore",
        "site",
        "--path",
        "a b.txt",
        "--to",
        to.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_contains_all(
        &stderr(&out),
        &["a b.txt", "SHA-256 mismatch", "nothing was changed"],
    );
    assert!(!to.exists());
    assert_eq!(
        fs::read_dir(home.path("restores")).unwrap().count(),
        0,
        "no staging left"
    );
}
