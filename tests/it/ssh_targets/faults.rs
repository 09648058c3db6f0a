//! What goes wrong with SSH, in plain words and leaving nothing complete: a changed host
//! key, a refused client key, an unreachable host, a connection killed mid-transfer and
//! a missing remote binary.

use std::process::Stdio;

use super::*;
use crate::common::*;

#[test]
fn a_changed_host_key_is_refused() {
    let s = Setup::new();
    drop(make_app_db(&s.remote("data/app.db"), 10));
    // known_hosts names this host and port with some other machine's key.
    let other = keygen(&s.home.path("config/other_host"));
    let key = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let kh = s.home.path("config/known_hosts");
    std::fs::write(&kh, format!("[127.0.0.1]:{} {key}", s.sshd.port)).unwrap();
    s.write_config(&format!(
        "host = \"{}\"\nssh_identity = \"{}\"\nssh_known_hosts = \"known_hosts\"\n",
        s.sshd.url(),
        s.sshd.client_key().display()
    ));
    let err = s.fails(&["backup", "app-db"]);
    assert!(err.contains("host key does not match"), "{err}");
    assert!(err.contains(kh.to_str().unwrap()), "{err}");
    s.nothing_stored("app-db");

    // A host missing from known_hosts is refused too, naming the line to add.
    std::fs::write(&kh, "").unwrap();
    let err = s.fails(&["backup", "app-db"]);
    assert!(err.contains("has no matching key"), "{err}");
    assert!(
        err.contains(&format!("[127.0.0.1]:{}", s.sshd.port)),
        "{err}"
    );
    let check = s.home.run(&["config", "check"]);
    assert_ne!(check.status.code(), Some(0));
    assert!(
        stderr(&check).contains("has no key for"),
        "{}",
        stderr(&check)
    );
}

#[test]
fn a_refused_client_key_and_an_unreachable_host_fail_in_plain_words() {
    let s = Setup::new();
    drop(make_app_db(&s.remote("data/app.db"), 10));
    let stranger = keygen(&s.home.path("config/stranger"));
    s.write_config(&format!(
        "host = \"{}\"\nssh_identity = \"{}\"\nssh_known_hosts = \"{}\"\n",
        s.sshd.url(),
        stranger.display(),
        s.sshd.known_hosts().display()
    ));
    let err = s.fails(&["backup", "app-db"]);
    assert!(err.contains("refused lifeboat's key"), "{err}");
    assert!(err.contains("authorized_keys"), "{err}");
    s.nothing_stored("app-db");

    // Nobody listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kh = s.home.path("config/kh2");
    std::fs::write(&kh, format!("[127.0.0.1]:{port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFrZWtleWZvcnRlc3Rzb25seWZha2VrZXlmb3J0\n")).unwrap();
    s.write_config(&format!(
        "host = \"ssh://root@127.0.0.1:{port}\"\nssh_identity = \"{}\"\nssh_known_hosts = \"{}\"\n",
        s.sshd.client_key().display(),
        kh.display()
    ));
    let err = s.fails(&["backup", "app-db"]);
    assert!(err.contains("refused the connection"), "{err}");
    s.nothing_stored("app-db");
}

#[test]
fn a_connection_killed_mid_transfer_leaves_nothing_complete() {
    let s = Setup::new();
    make_big_db(&s.remote("data/app.db"), 96);
    let child = s
        .home
        .command(&["backup", "app-db"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let writing = || {
        std::fs::read_dir(s.home.path("backups/app-db"))
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
            })
            .unwrap_or(false)
    };
    wait_for(60, "the artifact to be written", writing);
    assert!(s.sshd.kill_connections() > 0, "no connection to kill");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("connection to root@127.0.0.1") && err.contains("was lost"),
        "{err}"
    );
    s.nothing_stored("app-db");
    // The host's shell removed its temporary copy when the stream broke.
    wait_for(30, "the remote temporary copy to be removed", || {
        s.remote_leftovers().is_empty()
    });
    // The next backup works.
    assert_eq!(s.home.json(&["backup", "app-db"])["status"], "complete");
}

#[test]
fn a_missing_remote_binary_is_named() {
    // The host's PATH offers every command of /usr/bin except sqlite3 and tar.
    let bin = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("/usr/bin").unwrap().flatten() {
        let name = entry.file_name();
        if name != "sqlite3" && name != "tar" {
            let _ = std::os::unix::fs::symlink(entry.path(), bin.path().join(&name));
        }
    }
    let sshd = Sshd::start_with(&format!("SetEnv PATH={}", bin.path().display()));
    let s = Setup::on(sshd);
    drop(make_app_db(&s.remote("data/app.db"), 10));
    make_tree(&s.remote("data/tree"));

    let err = s.fails(&["backup", "app-db"]);
    assert!(err.contains("has no `sqlite3` command"), "{err}");
    assert!(err.contains("apt install sqlite3"), "{err}");
    s.nothing_stored("app-db");
    let err = s.fails(&["backup", "files"]);
    assert!(err.contains("has no `tar` command"), "{err}");
    s.nothing_stored("files");
    assert!(
        s.remote_leftovers().is_empty(),
        "{:?}",
        s.remote_leftovers()
    );
}
