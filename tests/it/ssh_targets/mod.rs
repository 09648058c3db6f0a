//! Targets on another host, against a real sshd on loopback with throwaway keys: SQLite
//! and directory round trips while the data changes, restores with move-aside on the
//! remote side, refused host and client keys, a connection killed mid-transfer and a
//! missing remote binary. Each failure must say why in plain words and leave nothing
//! that looks complete on either side.

mod directory;
mod drills;
mod faults;
mod sqlite;
mod trees;

use std::path::{Path, PathBuf};

use crate::common::sshd::{Sshd, keygen};
use crate::common::*;

/// A lifeboat home whose targets live on `sshd`'s host, under `remote`.
struct Setup {
    sshd: Sshd,
    home: Home,
    remote: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup::on(Sshd::start())
    }

    fn on(sshd: Sshd) -> Setup {
        let remote = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(remote.path().join("data")).unwrap();
        std::fs::create_dir_all(remote.path().join("restores")).unwrap();
        let home = Home::new();
        let setup = Setup { sshd, home, remote };
        setup.write_config(&setup.sshd.target_keys());
        setup
    }

    fn remote(&self, rel: &str) -> PathBuf {
        self.remote.path().join(rel)
    }

    /// Targets `app-db` (sqlite) and `files` (directory) with the given SSH keys.
    fn write_config(&self, ssh_keys: &str) {
        let r = self.remote.path().display();
        self.home.write_config(&format!(
            "[targets.app-db]\nkind = \"sqlite\"\npath = \"{r}/data/app.db\"\nstore = \"local\"\n\
             restore_roots = [\"{r}/restores\"]\n{ssh_keys}\n\
             [targets.files]\nkind = \"directory\"\npath = \"{r}/data/tree\"\nstore = \"local\"\n\
             exclude = [\"cache\", \"*.tmp\"]\nrestore_roots = [\"{r}/restores\"]\n{ssh_keys}\n"
        ));
    }

    /// The same targets, backed up into a restic-format repository store `vault`.
    fn use_repository(&self) -> PathBuf {
        self.use_repository_with("")
    }

    /// The same, with `extra` lines in the directory target's table.
    fn use_repository_with(&self, extra: &str) -> PathBuf {
        let r = self.remote.path().display();
        let keys = self.sshd.target_keys();
        let vault = self.home.path("vault");
        self.home.write_config(&format!(
            "[stores.vault]\nkind = \"repository\"\nlocation = \"{}\"\n\
             password = \"${{LIFEBOAT_REPO_PASSWORD}}\"\n\n\
             [targets.app-db]\nkind = \"sqlite\"\npath = \"{r}/data/app.db\"\nstore = \"vault\"\n\
             restore_roots = [\"{r}/restores\"]\n{keys}\n\
             [targets.files]\nkind = \"directory\"\npath = \"{r}/data/tree\"\nstore = \"vault\"\n\
             restore_roots = [\"{r}/restores\"]\n{extra}{keys}\n",
            vault.display()
        ));
        vault
    }

    /// Files lifeboat left in the remote data directory besides the data itself.
    fn remote_leftovers(&self) -> Vec<String> {
        let mut found: Vec<String> = std::fs::read_dir(self.remote("data"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.contains("lifeboat"))
            .collect();
        found.extend(
            std::fs::read_dir("/tmp")
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with(".lifeboat-backup.") || n.starts_with(".lifeboat-pin.")),
        );
        found
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.home.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "lifeboat {args:?} should fail:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stderr(&out)
    }

    fn nothing_stored(&self, target: &str) {
        assert!(
            self.home.store_files(target).is_empty(),
            "{:?}",
            self.home.store_files(target)
        );
        assert_eq!(
            self.home.json(&["list", target]).as_array().unwrap().len(),
            0
        );
    }
}

/// A tree with what a remote archive must keep: nesting, a quoted name, a symlink, an
/// executable, and excluded files (cache/, *.tmp).
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("docs/deep/er")).unwrap();
    std::fs::create_dir_all(root.join("cache/sub")).unwrap();
    std::fs::write(root.join("docs/readme.md"), "hello\n").unwrap();
    std::fs::write(root.join("docs/deep/er/data.bin"), vec![7u8; 300_000]).unwrap();
    std::fs::write(root.join("it's a \"file\" $(id).txt"), "quoted name\n").unwrap();
    std::fs::write(root.join("scratch.tmp"), "excluded\n").unwrap();
    std::fs::write(root.join("cache/sub/big"), vec![1u8; 100_000]).unwrap();
    std::os::unix::fs::symlink("docs/readme.md", root.join("readme-link")).unwrap();
    let script = root.join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o750)).unwrap();
}
